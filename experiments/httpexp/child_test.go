package httpexp

import (
	"context"
	"testing"

	"github.com/statelab/statelab/httpstate"
)

// A server process of this very binary: it listens, answers, and dies of
// SIGKILL for real.
func TestChildServerDiesOfSIGKILL(t *testing.T) {
	ctx := context.Background()
	ch, err := startChild(ctx, httpstate.ServeSpec{Mode: httpstate.Stateful, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.stop()
	c := httpstate.NewClient(ch.url(), true)
	defer c.Close()
	startSession(t, c)
	killed, err := ch.kill()
	if err != nil || !killed {
		t.Fatalf("kill -9: died of SIGKILL %v, %v", killed, err)
	}
	c.Close()
	if _, err := c.Post(ctx, "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(1), B: num(1)}); err == nil {
		t.Error("a killed server still answers")
	}
}

func TestChildRefusesABadSpec(t *testing.T) {
	tests := []struct {
		name string
		spec httpstate.ServeSpec
	}{
		{"unknown mode", httpstate.ServeSpec{Mode: "sometimes", Addr: "127.0.0.1:0"}},
		{"store mode without a store", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Addr: "127.0.0.1:0"}},
		{"bad store URL", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Addr: "127.0.0.1:0", Store: "ftp://x"}},
		{"address outside the lab", httpstate.ServeSpec{Mode: httpstate.Stateless, Addr: "192.0.2.1:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ch, err := startChild(context.Background(), tt.spec); err == nil {
				ch.stop()
				t.Fatal("started")
			}
		})
	}
}
