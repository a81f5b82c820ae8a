package httpexp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab/subproc"
)

// errChild is wrapped by errors starting or talking to a server process.
var errChild = errors.New("httpexp: server process")

// childRole is the subproc role of a calculator server process: http/crash
// needs a server it can kill -9 for real, so it runs its own binary (the
// statelab CLI, a user's lab or a test binary) again as this role.
const childRole = "httpstate-server"

// roles are the processes the http experiments start (Experiment.Roles).
var roles = subproc.Roles{childRole: serveChild}

// serveChild serves the httpstate.ServeSpec in args[0] until SIGTERM.
func serveChild(ctx context.Context, args []string, ready func(string)) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: want one spec, got %q", errChild, args)
	}
	var spec httpstate.ServeSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("%w: spec %q: %v", errChild, args[0], err)
	}
	if strings.HasPrefix(spec.Store, "redis-sentinel:") {
		httpstate.QuietRedisLog() // http/store-failover's backends (failover_group.go)
	}
	run, cleanup, err := httpstate.ServeMode(ctx, spec)
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

// child is a calculator server in a separate process.
type child struct {
	spec httpstate.ServeSpec
	addr netip.AddrPort
	p    *subproc.Proc
}

// url is the child's base URL.
func (c *child) url() string { return "http://" + c.addr.String() }

// pid is the child's process ID.
func (c *child) pid() int { return c.p.PID() }

// startChild runs a calculator server in a new process of this binary and
// returns once it listens. The process dies with the parent.
func startChild(ctx context.Context, spec httpstate.ServeSpec) (*child, error) {
	js, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	p, err := subproc.Start(ctx, childRole, string(js))
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", errChild, spec.Mode, err)
	}
	ap, err := netip.ParseAddrPort(p.Ready)
	if err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("%w %s: ready line %q: %v", errChild, spec.Mode, p.Ready, err)
	}
	return &child{spec: spec, addr: ap, p: p}, nil
}

// kill sends SIGKILL and waits for the process to be gone. It reports
// whether the process really died of the signal.
func (c *child) kill() (bool, error) {
	if err := c.p.Kill(); err != nil {
		return false, fmt.Errorf("%w: kill -9: %v", errChild, err)
	}
	ws, ok := c.p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, nil
}

// stop asks the process to exit (SIGTERM) and waits, killing it after a
// grace period.
func (c *child) stop() { _ = c.p.Stop(5 * time.Second) }
