package httpexp

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/labtest"
)

// An http experiment leaves nothing behind, whether it runs to its end or
// its run is cancelled (SIGINT, SIGTERM and SIGHUP cancel the context)
// while its servers run: no directory in TMPDIR (SQLite files, haproxy.cfg)
// and no process (server children, redis-server, haproxy).
func TestStoppedExperimentsLeaveNoTempFileOrProcess(t *testing.T) {
	labtest.NeedTool(t, "redis-server")
	labtest.NeedTool(t, "haproxy")
	tests := []struct {
		name     string
		exp      string
		cancelAt string // what, once started for the nth time, cancels the run; "" runs to the end
		nth      int
	}{
		{"load-balancing runs to its end", "http/load-balancing", "", 0},
		{"load-balancing cancelled once HAProxy runs", "http/load-balancing", "haproxy", 2},
		{"load-balancing cancelled mid-traffic", "http/load-balancing", "capture", 1},
		{"crash runs to its end", "http/crash", "", 0},
		{"crash cancelled once a server process runs", "http/crash", "server process", 3},
		{"crash cancelled mid-traffic", "http/crash", "capture", 1},
		{"calculator cancelled mid-traffic", "http/calculator", "capture", 1},
		{"features cancelled mid-traffic", "http/features", "capture", 1},
		{"store-failover cancelled once the second group's Sentinels run", "http/store-failover", "redis-sentinel", 4},
		{"store-failover cancelled once a backend runs", "http/store-failover", "server process", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			out := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pids []int
			seen := 0
			testHookStarted = func(what string, pid int) {
				if pid > 0 {
					pids = append(pids, pid)
				}
				if what == tt.cancelAt {
					if seen++; seen == tt.nth {
						cancel()
					}
				}
			}
			defer func() { testHookStarted = nil }()
			r := lab.RunOne(ctx, experiment(tt.exp), lab.Options{OutDir: out, Seed: 1, Timeout: time.Minute})
			switch {
			case tt.cancelAt == "" && !r.Passed:
				t.Errorf("the run failed: %s %+v", r.Error, r.Failed())
			case tt.cancelAt != "" && seen < tt.nth:
				t.Fatalf("%q started %d times, never a %dth", tt.cancelAt, seen, tt.nth)
			case tt.cancelAt != "" && r.Error == "":
				t.Errorf("cancelled, yet the run ended without an error")
			}
			left, err := os.ReadDir(tmp)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range left {
				t.Errorf("left in TMPDIR: %s", d.Name())
			}
			for _, pid := range pids {
				if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
					t.Errorf("process %d still there (kill 0: %v)", pid, err)
				}
			}
		})
	}
}
