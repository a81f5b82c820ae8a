package httpexp

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// A capture short of the exchanges the servers and balancers counted
// fails the check "capture complete" and nothing else (every later check
// is not judged), and no ladder titled "as captured" is drawn from what
// it holds.
func TestShortCaptureFailsOnlyCaptureCompleteAndDrawsNoLadder(t *testing.T) {
	defer func(k func(*capture.Packet) bool, d time.Duration) { testCaptureKeep, captureDrain = k, d }(testCaptureKeep, captureDrain)
	captureDrain = 300 * time.Millisecond
	for _, name := range []string{"http/calculator", "http/mechanisms", "http/features", "http/load-balancing",
		"http/crash", "http/signed-token", "http/store-failover"} {
		e := experiment(name)
		t.Run(e.Short(), func(t *testing.T) {
			if name == "http/store-failover" {
				labtest.NeedTool(t, "redis-server") // without it the experiment only notes so
			}
			var n atomic.Int64
			testCaptureKeep = func(*capture.Packet) bool { return n.Add(1)%2 == 0 } // every other packet
			r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
			labtest.WantShortCaptureVerdict(t, r, false)
		})
	}
}
