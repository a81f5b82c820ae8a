package dnsexp

import (
	"context"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m, roles) }

// experiment finds one of the package's experiments by name.
func experiment(t testing.TB, name string) lab.Experiment {
	t.Helper()
	for _, e := range Experiments() {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no experiment %s", name)
	return lab.Experiment{}
}

func runExperiment(t *testing.T, name string) *lab.Report {
	t.Helper()
	exp := experiment(t, name)
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

// Every experiment passes, judges its capture complete against the
// sources' counts before anything else, and comments every packet of it.
func TestExperimentsPass(t *testing.T) {
	for _, name := range []string{"dns/id-matching", "dns/spoofing", "dns/loss", "dns/server-restart", "dns/client-gone", "dns/cookies", "dns/truncation"} {
		t.Run(name, func(t *testing.T) {
			r := runExperiment(t, name)
			if len(r.Checks) == 0 || !strings.HasPrefix(r.Checks[0].Name, "capture complete") {
				t.Errorf("first check %+v, want capture complete", r.Checks[0])
			}
			for _, path := range r.Captures {
				f, err := capture.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				for i, p := range f.Packets {
					if len(p.Comments) == 0 {
						t.Errorf("%s: packet %d has no comment", path, i+1)
					}
				}
				checkFields(t, name, path, f)
			}
		})
	}
}
