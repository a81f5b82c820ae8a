package lab

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// An experiment cut short by a signal says so in its error, once, however
// its body reported the cancellation: the context's error (wrapped or
// not), or the cause itself.
func TestInterruptedExperimentNamesTheSignalOnce(t *testing.T) {
	tests := []struct {
		name string
		ret  func(ctx context.Context) error
	}{
		{"the context's error", func(ctx context.Context) error { return ctx.Err() }},
		{"the context's error wrapped", func(ctx context.Context) error { return fmt.Errorf("store failure: %w", ctx.Err()) }},
		{"the cause wrapped", func(ctx context.Context) error { return fmt.Errorf("waiting: %w", context.Cause(ctx)) }},
		{"the cause as text", func(ctx context.Context) error { return fmt.Errorf("waiting: %v", context.Cause(ctx)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			e := Experiment{Name: "test/interrupted", Run: func(env *Env) error {
				cancel(interrupted{syscall.SIGHUP})
				<-env.Ctx.Done()
				return tt.ret(env.Ctx)
			}}
			r := RunOne(ctx, e, Options{OutDir: t.TempDir(), Seed: 1})
			if n := strings.Count(r.Error, "interrupted by SIGHUP"); n != 1 {
				t.Errorf("error %q names the signal %d times, want once", r.Error, n)
			}
		})
	}
}
