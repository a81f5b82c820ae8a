// Package labtest holds what the packages' tests share: the rule for tests
// that need an outside tool, running an experiment as a test, and reading a
// capture back with tshark.
package labtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/lab/subproc"
)

// RequireEnv is the variable CI sets so that a missing tool fails a test
// instead of skipping it.
const RequireEnv = "STATELAB_REQUIRE_TOOLS"

// NeedTool returns the path of a tool a test needs. When it is missing the
// test is skipped, unless STATELAB_REQUIRE_TOOLS is set, when it fails: a
// test that skips in CI proves nothing.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path := LookTool(t, name)
	if path == "" {
		t.Skipf("%s not installed; set %s=1 to make this a failure", name, RequireEnv)
	}
	return path
}

// LookTool is NeedTool for a test that has more to check without the tool:
// when the tool is missing and not required it logs that and returns "",
// instead of skipping the whole test.
func LookTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is required (%s is set) but not installed: %v", name, RequireEnv, err)
	}
	t.Logf("%s not installed: this part is not checked; set %s=1 to make this a failure", name, RequireEnv)
	return ""
}

// RunExperiment runs an experiment with its captures in a temporary
// directory and fails the test with every failed check.
func RunExperiment(t testing.TB, e lab.Experiment, seed uint64) *lab.Report {
	t.Helper()
	name := e.Name
	r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: seed, Timeout: time.Minute})
	if !r.Passed {
		var b strings.Builder
		r.WriteText(&b)
		t.Fatalf("%s failed:\n%s", name, b.String())
	}
	return r
}

// Tshark runs tshark on a capture file and returns its standard output.
func Tshark(t testing.TB, path string, args ...string) string {
	t.Helper()
	bin := NeedTool(t, "tshark")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-n", "-r", path}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user profile
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TsharkCount counts the frames of a capture that match a display filter.
func TsharkCount(t testing.TB, path, filter string) int {
	t.Helper()
	out := strings.TrimSpace(Tshark(t, path, "-Y", filter, "-T", "fields", "-e", "frame.number"))
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}

// TsharkComments returns every packet comment tshark sees in a capture.
func TsharkComments(t testing.TB, path string) []string {
	t.Helper()
	// Wireshark 4.x calls the field frame.comment; older releases pkt_comment.
	out := Tshark(t, path, "-Y", "frame.comment", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=\\n", "-e", "frame.comment")
	var cs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			cs = append(cs, l)
		}
	}
	return cs
}

// Main runs a package's tests inside the lab's namespace, as
// sandbox.TestMain does, for tests that start processes: a test binary
// started as one of roles (a server an experiment kills) runs that role.
// Call it from the package's TestMain, with nil for no roles.
func Main(m *testing.M, roles subproc.Roles) {
	subproc.Dispatch(roles) // a child process of a test runs its role and exits here
	sandbox.TestMain(m)
}
