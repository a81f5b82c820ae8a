package httpstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab/subproc"
)

// ErrChild is wrapped by errors starting or talking to a server process.
var ErrChild = errors.New("httpstate: server process")

// ChildSpec is what a server process serves: a mode, an address and, for the
// store-backed mode, a --store URL.
type ChildSpec struct {
	Mode  Mode   `json:"mode"`
	Addr  string `json:"addr"`
	Store string `json:"store,omitempty"`
	// CleanupInterval, when set, sweeps expired sessions out of a stateful
	// server's memory: for the long-lived CLI server (statelab http
	// serve), not for experiment children that are killed anyway.
	CleanupInterval time.Duration `json:"cleanup_interval,omitempty"`
}

// LongLived is the spec of a server that runs until stopped by hand
// (statelab http serve): expired sessions are swept every minute.
func LongLived(mode Mode, addr, store string) ChildSpec {
	return ChildSpec{Mode: mode, Addr: addr, Store: store, CleanupInterval: time.Minute}
}

// childRole is the subproc role of a calculator server process: the crash
// experiments need a server they can kill -9 for real, so they run their own
// binary (the statelab CLI or a test binary) again as this role.
const childRole = "httpstate-server"

var roles = subproc.Roles{childRole: serveChild}

// serveChild serves the spec in args[0] until SIGTERM.
func serveChild(ctx context.Context, args []string, ready func(string)) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: want one spec, got %q", ErrChild, args)
	}
	var spec ChildSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("%w: spec %q: %v", ErrChild, args[0], err)
	}
	run, cleanup, err := ServeMode(ctx, spec)
	if err != nil {
		return err
	}
	defer cleanup()
	ready(run.Addr.String())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = run.Shutdown(sctx)
	return nil
}

// ServeMode opens the spec's store, builds the server and listens. cleanup
// stops the server and releases the store.
func ServeMode(ctx context.Context, spec ChildSpec) (*Running, func(), error) {
	cfg := Config{Mode: spec.Mode, CleanupInterval: spec.CleanupInterval}
	closeStore := func() error { return nil }
	if spec.Store != "" && spec.Mode != Stateless {
		u, err := ParseStoreURL(spec.Store)
		if err != nil {
			return nil, nil, err
		}
		st, c, err := OpenStore(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		cfg.Store, closeStore = st, c
	}
	srv, err := New(cfg)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	run, err := Listen(spec.Addr, srv)
	if err != nil {
		srv.Close()
		closeStore()
		return nil, nil, err
	}
	return run, func() { run.Close(); srv.Close(); closeStore() }, nil
}

// Child is a calculator server in a separate process.
type Child struct {
	Spec ChildSpec
	Addr netip.AddrPort
	p    *subproc.Proc
}

// URL is the child's base URL.
func (c *Child) URL() string { return "http://" + c.Addr.String() }

// PID is the child's process ID.
func (c *Child) PID() int { return c.p.PID() }

// StartChild runs a calculator server in a new process of this binary and
// returns once it listens. The process dies with the parent.
func StartChild(ctx context.Context, spec ChildSpec) (*Child, error) {
	js, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p, err := subproc.Start(ctx, childRole, string(js))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrChild, spec.Mode, err)
	}
	ap, err := netip.ParseAddrPort(p.Ready)
	if err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w %s: ready line %q: %v", ErrChild, spec.Mode, p.Ready, err)
	}
	return &Child{Spec: spec, Addr: ap, p: p}, nil
}

// Kill sends SIGKILL and waits for the process to be gone. It reports
// whether the process really died of the signal.
func (c *Child) Kill() (bool, error) {
	if err := c.p.Kill(); err != nil {
		return false, fmt.Errorf("%w: kill -9: %v", ErrChild, err)
	}
	ws, ok := c.p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, nil
}

// Stop asks the process to exit (SIGTERM) and waits, killing it after a
// grace period.
func (c *Child) Stop() { _ = c.p.Stop(5 * time.Second) }
