package sandbox

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// TestMain runs a package's tests inside the lab's namespace: call it from
// the package's TestMain (labtest.Main does, for tests that also start
// processes). The test binary is re-executed with the same flags, so `go
// test` output, -run, -race and -count all work unchanged. When namespaces
// are unavailable the tests fail, unless STATELAB_REQUIRE_TOOLS is unset,
// in which case they are skipped with the reason.
func TestMain(m *testing.M) {
	if err := Enter(); err != nil {
		var u *UnavailableError
		if errors.As(err, &u) && os.Getenv("STATELAB_REQUIRE_TOOLS") == "" {
			fmt.Fprintf(os.Stderr, "SKIP: %v\n", err)
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
