package httpexp

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// rig is the setup every http experiment starts from, written once: its
// cells of the comparison table afresh, a temporary directory for its
// SQLite file, the servers it starts (each closed when the experiment
// ends) and their ports, which its capture keeps.
type rig struct {
	env   *lab.Env
	dir   string // made on first use (sqlite)
	ports []uint16
}

// setUp starts an experiment's setup.
func setUp(env *lab.Env) *rig {
	startEvidence(env)
	return &rig{env: env}
}

// watch adds a server's port to those the capture keeps.
func (r *rig) watch(addr netip.AddrPort) { r.ports = append(r.ports, addr.Port()) }

// sqlite is the experiment's SQLite store URL: one file in a temporary
// directory that the experiment's end removes, whatever happened.
func (r *rig) sqlite() (string, error) {
	if r.dir == "" {
		dir, err := os.MkdirTemp("", "statelab-"+path.Base(r.env.Name())+"-")
		if err != nil {
			return "", err
		}
		r.env.Cleanup(func() { os.RemoveAll(dir) })
		r.dir = dir
	}
	return "sqlite://" + filepath.Join(r.dir, "sessions.db"), nil
}

// server starts a calculator server of mode on a loopback port; a
// store-backed one opens its own connection to the store at storeURL, as a
// separate process would, and counts what it asks of it
// (Server.StoreStats).
func (r *rig) server(mode httpstate.Mode, storeURL string) (*httpstate.Server, *httpstate.Running, error) {
	cfg := httpstate.Config{Mode: mode}
	if mode == httpstate.StoreBacked {
		u, err := httpstate.ParseStoreURL(storeURL)
		if err != nil {
			return nil, nil, err
		}
		st, closeStore, err := httpstate.OpenStore(r.env.Ctx, u)
		if err != nil {
			return nil, nil, err
		}
		r.env.Cleanup(func() { closeStore() })
		cfg.Store = st
	}
	srv, err := httpstate.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	run, err := r.listen(srv)
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	r.env.Cleanup(srv.Close)
	return srv, run, nil
}

// listen serves h on a loopback port, closed when the experiment ends.
func (r *rig) listen(h http.Handler) (*httpstate.Running, error) {
	run, err := httpstate.Listen("127.0.0.1:0", h)
	if err != nil {
		return nil, err
	}
	r.env.Cleanup(func() { run.Close() })
	r.watch(run.Addr)
	return run, nil
}

// redis starts a redis-server for the experiment and returns its store
// URL; when redis-server is not installed it notes that what (a case, a
// scenario) did not run and returns "".
func (r *rig) redis(what string) (string, error) {
	rs, err := httpstate.StartRedis(r.env.Ctx)
	switch {
	case err == nil:
		r.env.Cleanup(rs.Close)
		started("redis-server", rs.PID())
		return rs.URL(), nil
	case errors.Is(err, httpstate.ErrNoRedis):
		r.env.Note("redis-server is not installed: %s did not run", what)
		return "", nil
	}
	return "", err
}

// haproxy starts HAProxy over backends, stopped when the experiment ends.
func (r *rig) haproxy(policy httpstate.Policy, backends []netip.AddrPort) (*httpstate.HAProxy, error) {
	h, err := httpstate.StartHAProxy(policy, backends)
	if err != nil {
		return nil, err
	}
	r.env.Cleanup(h.Close)
	started("haproxy", h.PID())
	r.watch(h.Addr)
	return h, nil
}

// child starts a calculator server process, stopped when the experiment
// ends.
func (r *rig) child(spec httpstate.ServeSpec) (*child, error) {
	ch, err := startChild(r.env.Ctx, spec)
	if err != nil {
		return nil, err
	}
	r.env.Cleanup(ch.stop)
	started("server process", ch.pid())
	r.watch(ch.addr)
	return ch, nil
}

// capture starts the experiment's capture of every watched port.
func (r *rig) capture() (*capture.Capture, error) {
	cp, err := r.env.Capture(captureOpts(r.ports...))
	if err != nil {
		return nil, err
	}
	started("capture", 0)
	return cp, nil
}

// captureOpts keeps the traffic of the given server ports.
func captureOpts(ports ...uint16) capture.Options {
	set := map[uint16]bool{}
	for _, p := range ports {
		set[p] = true
	}
	return capture.Options{MaxDrain: captureDrain, Keep: func(p *capture.Packet) bool {
		if testCaptureKeep != nil && !testCaptureKeep(p) {
			return false
		}
		m, ok := p.Decode()
		return ok && (set[m.Src.Port()] || set[m.Dst.Port()])
	}}
}

// Tests make a capture short through these.
var (
	// testCaptureKeep, when set, also decides which packets a capture
	// keeps: one that drops some leaves the capture short of the counts.
	testCaptureKeep func(*capture.Packet) bool
	// captureDrain bounds how long a capture waits to hold what the
	// sources counted (0: the capture's default).
	captureDrain time.Duration
)

// testHookStarted, when set by a test, is told each time an experiment
// has started something that its cleanup must undo (a process, a capture),
// so the test can cancel the run at that point.
var testHookStarted func(what string, pid int)

func started(what string, pid int) {
	if testHookStarted != nil {
		testHookStarted(what, pid)
	}
}

// mustAnswer is the error of a step whose reply the script cannot go on
// without: none at all, or a status of 300 or more.
func mustAnswer(p *played) error {
	if p.Err != nil {
		return p.Err
	}
	if p.Rep.Status >= 300 {
		return fmt.Errorf("%s: %d %s", p.Label, p.Rep.Status, p.Rep.Error)
	}
	return nil
}

func num(v float64) *float64 { return &v }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
