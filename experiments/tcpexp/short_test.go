package tcpexp

import (
	"context"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
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
	for _, e := range Experiments() {
		if e.Group() != "tcp" {
			continue
		}
		for i, tt := range tests {
			if i == 0 && e.Name != "tcp/handshake" && e.Name != "tcp/retransmit" {
				continue // an empty capture: two experiments suffice
			}
			t.Run(e.Short()+"/"+tt.name, func(t *testing.T) {
				testCaptureKeep = tt.keep()
				r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
				labtest.WantShortCaptureVerdict(t, r, true)
			})
		}
	}
}

// The lab's state beside a ladder row or a plotted segment (the detail a
// reader sees on hover) uses sequence numbers relative to the
// connection's ISSs, as the capture's comments and the ladder's labels
// do, never the absolute ones.
func TestLadderAndPlotDetailsUseRelativeSequenceNumbers(t *testing.T) {
	field := regexp.MustCompile(`(snd\.una|snd\.nxt|rcv\.nxt)=(\d+)`)
	for _, exp := range []string{"tcp/handshake", "tcp/retransmit"} {
		e, ok := experiment(exp)
		if !ok {
			t.Fatalf("%s not registered", exp)
		}
		t.Run(e.Short(), func(t *testing.T) {
			r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: 1, Timeout: time.Minute})
			if !r.Passed {
				t.Fatalf("failed: %s %+v", r.Error, r.Failed())
			}
			var details []string
			for _, l := range r.Ladders {
				for _, row := range l.Rows {
					details = append(details, row.Detail)
				}
			}
			for _, p := range r.Plots {
				for _, s := range p.Series {
					for _, pt := range s.Points {
						details = append(details, pt.Detail)
					}
				}
			}
			n := 0
			for _, d := range details {
				for _, m := range field.FindAllStringSubmatch(d, -1) {
					n++
					if v, _ := strconv.ParseUint(m[2], 10, 32); v > 1<<20 {
						t.Errorf("%s=%s in %q: an absolute sequence number", m[1], m[2], d)
					}
				}
			}
			if n == 0 {
				t.Fatal("no detail gives the lab's sequence numbers")
			}
		})
	}
}
