package httpexp

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// A capture short of the exchanges the servers and balancers counted
// fails the check "capture complete" and nothing else (every later check
// is not judged), and no ladder titled "as captured" is drawn from what
// it holds.
func TestShortCaptureFailsOnlyCaptureCompleteAndDrawsNoLadder(t *testing.T) {
	defer func(k func(*capture.Packet) bool, d time.Duration) { testCaptureKeep, captureDrain = k, d }(testCaptureKeep, captureDrain)
	captureDrain = 300 * time.Millisecond
	for _, name := range []string{"http/calculator", "http/mechanisms", "http/features", "http/load-balancing"} {
		e := experiment(name)
		t.Run(e.Short(), func(t *testing.T) {
			var n atomic.Int64
			testCaptureKeep = func(*capture.Packet) bool { return n.Add(1)%2 == 0 } // every other packet
			r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
			if r.Passed || r.Error != "" || len(r.Checks) == 0 {
				t.Fatalf("passed %t, error %q, %d checks", r.Passed, r.Error, len(r.Checks))
			}
			failed := r.Failed()
			if len(failed) != 1 || !strings.HasPrefix(failed[0].Name, "capture complete") {
				t.Errorf("failed checks %+v, want only \"capture complete\"", failed)
			}
			judged := true
			for _, c := range r.Checks {
				if strings.HasPrefix(c.Name, "capture complete") {
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
		})
	}
}
