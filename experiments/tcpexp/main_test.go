package tcpexp

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestMain(m *testing.M) {
	// The experiments (and the bench) run in the lab's network namespace;
	// the analysis tests are pure and run the same inside it.
	labtest.Main(m, nil)
}
