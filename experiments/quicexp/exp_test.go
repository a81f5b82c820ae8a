package quicexp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

func TestExperimentsPass(t *testing.T) {
	for _, tc := range []struct{ name, metric string }{
		{"quic/rebind-port", "transfer_bytes"},
		{"quic/rebind-addr", "transfer_bytes"},
		{"quic/migrate", "transfer_bytes"},
		{"quic/spoofed-path", "transfer_bytes"},
		{"quic/tcp-contrast", "quic_delivered_bytes"},
	} {
		t.Run(strings.TrimPrefix(tc.name, "quic/"), func(t *testing.T) {
			r := labtest.RunExperiment(t, experiment(tc.name), 1)
			if r.Metrics[tc.metric] != float64(transferSize) {
				t.Errorf("%s = %v, want %d", tc.metric, r.Metrics[tc.metric], transferSize)
			}
			if labtest.LookTool(t, "tshark") == "" {
				return
			}
			// Wireshark shows a comment on every packet of the capture.
			path := r.Captures[0]
			all, bare := labtest.TsharkCount(t, path, "frame"), labtest.TsharkCount(t, path, "!frame.comment")
			if all == 0 || bare != 0 {
				t.Errorf("%s: %d of %d packets carry no comment", path, bare, all)
			}
			checkFields(t, tc.name, path)
		})
	}
}

// A capture that misses a packet its sources counted fails the check
// "capture complete" and nothing else: every later check is not judged,
// and no ladder is drawn from it.
func TestShortCaptureFailsOnlyCaptureCompleteAndDrawsNoLadder(t *testing.T) {
	defer func(d time.Duration, n int) { captureDrain, testUncounted = d, n }(captureDrain, testUncounted)
	captureDrain, testUncounted = 300*time.Millisecond, 1
	for _, e := range Experiments() {
		name := e.Name
		t.Run(strings.TrimPrefix(name, "quic/"), func(t *testing.T) {
			r := lab.RunOne(context.Background(), experiment(name), lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
			labtest.WantShortCaptureVerdict(t, r, true)
			if !strings.HasPrefix(r.Checks[0].Name, "capture complete") {
				t.Errorf("first check %q, want \"capture complete\" before any other", r.Checks[0].Name)
			}
			if failed := r.Failed(); len(failed) == 1 && !strings.Contains(failed[0].Detail, "counted by") {
				t.Errorf("capture check %q names no source of its count", failed[0].Detail)
			}
			// What was captured is still commented, packet by packet.
			f, err := capture.ReadFile(r.Captures[0])
			if err != nil {
				t.Fatal(err)
			}
			bare := 0
			for _, p := range f.Packets {
				if len(p.Comments) == 0 {
					bare++
				}
			}
			if len(f.Packets) == 0 || bare != 0 {
				t.Errorf("%d of %d packets carry no comment", bare, len(f.Packets))
			}
		})
	}
}

func TestMain(m *testing.M) { labtest.Main(m, resetRoles) }

// experiment is the package's experiment called name.
func experiment(name string) lab.Experiment {
	for _, e := range Experiments() {
		if e.Name == name {
			return e
		}
	}
	panic("no experiment " + name)
}

// Experiments lists every quic/ experiment once, each runnable.
func TestExperimentsAreListedOnce(t *testing.T) {
	want := []string{"quic/rebind-port", "quic/rebind-addr", "quic/migrate", "quic/spoofed-path", "quic/tcp-contrast",
		"quic/retry", "quic/stateless-reset", "quic/resumption", "quic/load-balancer"}
	c, err := lab.NewCatalogue(Experiments())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(c.All()); got != len(want) {
		t.Fatalf("%d experiments, want %d", got, len(want))
	}
	for _, n := range want {
		if e, ok := c.Lookup(n); !ok || e.Run == nil || e.Summary == "" || e.Shows == "" {
			t.Errorf("%s: listed %t, with a body, a summary and what it shows: %+v", n, ok, e)
		}
	}
}
