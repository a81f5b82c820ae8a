package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/statelab/statelab/lab/sandbox"
)

// stopSignals end every command alike: SIGINT (Ctrl-C), SIGTERM, and
// SIGHUP (the terminal closed; not under nohup, see sandbox.StopSignals)
// each do what Ctrl-C does — a server shuts down gracefully and exits 0, a
// command cut short (run, dns query) stops what it started, removes its
// temporary files and exits 128+signal.
var stopSignals = sandbox.StopSignals

// stopContext is cancelled by the first of stopSignals, with that signal
// as its cause (stopSignal, which stopped reads); later ones are caught
// too, until stop.
func stopContext() (ctx context.Context, stop context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs, unnotify := notifyStop()
	go func() {
		select {
		case s := <-sigs:
			cancel(stopSignal{s})
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		unnotify()
		cancel(context.Canceled)
	}
}

// notifyStop delivers the stop signals to stopContext (tests substitute a
// channel they send on).
var notifyStop = func() (<-chan os.Signal, func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, stopSignals...)
	return c, func() { signal.Stop(c) }
}

// stopSignal is the cause of a stopContext ended by a signal. It is a
// context.Canceled, as the context's Err says.
type stopSignal struct{ os.Signal }

func (s stopSignal) Error() string {
	_, name := signalExit(s.Signal)
	return "stopped by " + name
}

func (s stopSignal) Is(target error) bool { return target == context.Canceled }

// stopped says on stderr that command cmd was stopped by the signal that
// ended ctx (a stopContext), then what it leaves (when), and returns the
// exit status of a command cut short, 128+signal; 0 when no signal ended
// ctx. Every command cut short by a signal says so through it (dns query,
// the benches).
func stopped(ctx context.Context, cmd, when string) int {
	var s stopSignal
	if !errors.As(context.Cause(ctx), &s) {
		return 0
	}
	code, name := signalExit(s.Signal)
	fmt.Fprintf(stderr, "statelab %s: stopped by %s%s\n", cmd, name, when)
	return code
}

// signalExit is the exit status and the name of a stop signal for a
// command cut short: 130 and
// "SIGINT", 143 and "SIGTERM", 129 and "SIGHUP".
func signalExit(s os.Signal) (int, string) {
	switch s {
	case syscall.SIGTERM:
		return 143, "SIGTERM"
	case syscall.SIGHUP:
		return 129, "SIGHUP"
	}
	return 130, "SIGINT"
}

// benchCutShort is what a bench stopped by a signal leaves: it prints no
// figures, since the rounds it had are not the ones it was asked for.
const benchCutShort = " before its rounds ended: no figures printed"
