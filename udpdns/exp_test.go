package udpdns

import (
	"context"
	"testing"

	"github.com/statelab/statelab/internal/lab"
)

func runExperiment(t *testing.T, name string) *lab.Report {
	t.Helper()
	exp, ok := lab.Lookup(name)
	if !ok {
		t.Fatalf("%s not registered", name)
	}
	r := lab.RunOne(context.Background(), exp, lab.Options{OutDir: t.TempDir(), Seed: 1})
	if !r.Passed {
		for _, c := range r.Failed() {
			t.Errorf("FAIL %s: %s", c.Name, c.Detail)
		}
		if r.Error != "" {
			t.Errorf("error: %s", r.Error)
		}
		t.Fatalf("%s did not pass", name)
	}
	return r
}

func TestExperimentsPass(t *testing.T) {
	for _, name := range []string{"dns/id-matching", "dns/spoofing", "dns/loss", "dns/server-restart", "dns/client-gone"} {
		t.Run(name, func(t *testing.T) {
			if _, ok := lab.Lookup(name); !ok {
				t.Skip("not yet")
			}
			runExperiment(t, name)
		})
	}
}
