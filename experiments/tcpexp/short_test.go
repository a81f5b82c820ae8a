package tcpexp

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// A capture short of the driver's records, empty or partial, fails the
// check "capture complete" and nothing else (every later check is not
// judged), and no ladder titled "as captured" is drawn from it: not even
// one filled with rows from the engine's records.
func TestShortCaptureFailsOnlyCaptureCompleteAndDrawsNoLadder(t *testing.T) {
	defer func(k func(*capture.Packet) bool, d time.Duration) { testCaptureKeep, captureDrain = k, d }(testCaptureKeep, captureDrain)
	captureDrain = 300 * time.Millisecond
	tests := []struct {
		name string
		keep func() func(*capture.Packet) bool
	}{
		{"empty capture", func() func(*capture.Packet) bool {
			return func(*capture.Packet) bool { return false }
		}},
		{"every other packet captured", func() func(*capture.Packet) bool {
			var n atomic.Int64
			return func(*capture.Packet) bool { return n.Add(1)%2 == 0 }
		}},
	}
	for _, exp := range []string{"tcp/handshake", "tcp/retransmit"} {
		e, ok := experiment(exp)
		if !ok {
			t.Fatalf("%s not registered", exp)
		}
		for _, tt := range tests {
			t.Run(e.Short()+"/"+tt.name, func(t *testing.T) {
				testCaptureKeep = tt.keep()
				r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
				if r.Passed || r.Error != "" || len(r.Checks) == 0 {
					t.Fatalf("passed %t, error %q, %d checks", r.Passed, r.Error, len(r.Checks))
				}
				failed := r.Failed()
				if len(failed) != 1 || failed[0].Name != "capture complete" {
					t.Errorf("failed checks %+v, want only \"capture complete\"", failed)
				}
				judged := true
				for _, c := range r.Checks {
					if c.Name == "capture complete" {
						judged = false
						continue
					}
					if !judged && c.NotJudged == "" {
						t.Errorf("check %q judged on a short capture", c.Name)
					}
				}
				for _, l := range r.Ladders {
					t.Errorf("ladder %q drawn from a short capture (%d rows)", l.Title, len(l.Rows))
				}
				if !strings.Contains(strings.Join(r.Notes, "\n"), "No ladder is drawn: the capture is incomplete") {
					t.Errorf("no note says why no ladder is drawn: %q", r.Notes)
				}
			})
		}
	}
}
