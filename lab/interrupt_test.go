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

// A report cut short by a signal says "interrupted", not that its checks
// failed: in JSON (interrupted: the signal) and in text (a STOP line
// instead of "FAIL no check ran" and the error).
func TestInterruptedReportSaysStoppedNotFailed(t *testing.T) {
	tests := []struct {
		name     string
		checkRan bool
	}{
		{"before any check", false},
		{"after a check", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancelCause(context.Background())
			e := Experiment{Name: "test/interrupted", Run: func(env *Env) error {
				if tt.checkRan {
					env.Check("first step", true, "done")
				}
				cancel(interrupted{syscall.SIGINT})
				<-env.Ctx.Done()
				return env.Ctx.Err()
			}}
			r := RunOne(ctx, e, Options{OutDir: t.TempDir(), Seed: 1})
			if r.Interrupted != "SIGINT" || r.Passed {
				t.Errorf("interrupted %q passed %v, want SIGINT and false", r.Interrupted, r.Passed)
			}
			var b strings.Builder
			if err := r.WriteTextOptions(&b, TextOptions{Width: 100}); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			if !strings.Contains(text, "STOP  interrupted by SIGINT") || strings.Contains(text, "FAIL") || strings.Contains(text, "ERROR") {
				t.Errorf("report:\n%s\nwant a STOP line naming SIGINT, no FAIL and no ERROR", text)
			}
		})
	}
}

// An experiment that finishes its work although a signal came (its body
// returned no error) is judged by its checks, not marked interrupted.
func TestSignalAfterAnExperimentFinishedLeavesItsVerdict(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	e := Experiment{Name: "test/finished", Run: func(env *Env) error {
		env.Check("the work", true, "done")
		cancel(interrupted{syscall.SIGTERM})
		return nil
	}}
	r := RunOne(ctx, e, Options{OutDir: t.TempDir(), Seed: 1})
	if r.Interrupted != "" || !r.Passed {
		t.Errorf("interrupted %q passed %v, want none and true", r.Interrupted, r.Passed)
	}
}
