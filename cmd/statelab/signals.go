package main

import (
	"context"
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

// stopContext is cancelled by the first of stopSignals.
func stopContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), stopSignals...)
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
