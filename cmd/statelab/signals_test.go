package main

import (
	"bytes"
	"context"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A bench cut short by a stop signal exits as a cut-short run does,
// 128+signal, and says which signal; a context that ended otherwise (the
// command's own stop, a deadline) is not a stop.
func TestACommandStoppedByASignalExitsWith128PlusTheSignal(t *testing.T) {
	cases := []struct {
		name     string
		sig      syscall.Signal // sent to this process; 0: none
		end      func(stop context.CancelFunc)
		wantCode int
		wantSaid string
	}{
		{"SIGINT (Ctrl-C)", syscall.SIGINT, nil, 130, "statelab bench tcp: stopped by SIGINT before its rounds ended: no figures printed\n"},
		{"SIGTERM", syscall.SIGTERM, nil, 143, "statelab bench tcp: stopped by SIGTERM before"},
		{"SIGHUP, unless started under nohup", syscall.SIGHUP, nil, 129, "statelab bench tcp: stopped by SIGHUP before"},
		{"the command's own stop is not a signal", 0, func(stop context.CancelFunc) { stop() }, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.sig != 0 && !slices.Contains(stopSignals, os.Signal(c.sig)) {
				t.Skipf("%v is not a stop signal here (started under nohup)", c.sig)
			}
			var said bytes.Buffer
			old := stderr
			stderr = &said
			defer func() { stderr = old }()
			ctx, stop := stopContext()
			defer stop()
			if c.sig != 0 {
				if err := syscall.Kill(os.Getpid(), c.sig); err != nil {
					t.Fatal(err)
				}
			} else {
				c.end(stop)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("the context did not end after %v", c.sig)
			}
			if got := stopped(ctx, "bench tcp", benchCutShort); got != c.wantCode {
				t.Errorf("exit status %d, want %d", got, c.wantCode)
			}
			if !strings.HasPrefix(said.String(), c.wantSaid) || (c.wantSaid == "") != (said.Len() == 0) {
				t.Errorf("said %q, want it to begin %q", said.String(), c.wantSaid)
			}
			if c.sig != 0 && ctx.Err() != context.Canceled {
				t.Errorf("ctx.Err() = %v, want context.Canceled, as the benches' waits report it", ctx.Err())
			}
		})
	}
}
