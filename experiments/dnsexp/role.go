package dnsexp

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/subproc"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// serverRole is the subproc role that runs the lab's DNS server as a
// process of its own, so that dns/server-restart can kill it (SIGKILL) and
// start another: see startServerProcess.
const serverRole = "udpdns-server"

// roles are the processes the experiments start.
var roles = subproc.Roles{serverRole: runServerProcess}

// serverProc is how a server process is to serve, as its arguments carry
// it: the zone (built-in, or a master file), the faults, and the tally.
type serverProc struct {
	addr          string
	seed          uint64
	delay, jitter time.Duration
	drop, dup     float64
	// tally, when set, names a file to which the process appends one byte
	// for every datagram it writes (see tally): a count that survives the
	// process being killed, for the capture's completeness.
	tally string
	// zone, when set, names a master file served instead of the built-in
	// zone.
	zone string
}

// args renders c as the role's arguments.
func (c serverProc) args() []string {
	a := []string{"-addr", c.addr, "-seed", strconv.FormatUint(c.seed, 10),
		"-delay", c.delay.String(), "-jitter", c.jitter.String(),
		"-drop", strconv.FormatFloat(c.drop, 'g', -1, 64), "-dup", strconv.FormatFloat(c.dup, 'g', -1, 64)}
	if c.tally != "" {
		a = append(a, "-tally", c.tally)
	}
	if c.zone != "" {
		a = append(a, "-zone", c.zone)
	}
	return a
}

// parseServerProc is args backwards.
func parseServerProc(args []string) (serverProc, error) {
	var c serverProc
	fs := flag.NewFlagSet(serverRole, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "listen address")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed")
	fs.DurationVar(&c.delay, "delay", 0, "answer delay")
	fs.DurationVar(&c.jitter, "jitter", 0, "random extra delay")
	fs.Float64Var(&c.drop, "drop", 0, "fraction dropped")
	fs.Float64Var(&c.dup, "dup", 0, "fraction duplicated")
	fs.StringVar(&c.tally, "tally", "", "append a byte per datagram written to this file")
	fs.StringVar(&c.zone, "zone", "", "zone file")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("dnsexp: %s arguments: %w", serverRole, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("dnsexp: %s: unexpected arguments %q", serverRole, fs.Args())
	}
	return c, nil
}

// handler is the zone wrapped in the faults and, outermost, the tally;
// close releases the tally file.
func (c serverProc) handler() (h dns.Handler, release func(), err error) {
	var zone dns.Handler = udpdns.BuiltinZone()
	if c.zone != "" {
		if zone, err = udpdns.LoadZoneFile(c.zone); err != nil {
			return nil, nil, err
		}
	}
	draws := dnsfault.NewDraws(c.seed)
	h = dnsfault.Chain(zone, dnsfault.Drop(c.drop, draws), dnsfault.Duplicate(c.dup, draws),
		dnsfault.Delay(c.delay), dnsfault.Jitter(c.jitter, draws))
	if c.tally == "" {
		return h, func() {}, nil
	}
	t, err := openTally(c.tally)
	if err != nil {
		return nil, nil, err
	}
	return t.wrap(h), t.close, nil
}

// runServerProcess is the child's body: serve until SIGTERM.
func runServerProcess(ctx context.Context, args []string, ready func(string)) error {
	c, err := parseServerProc(args)
	if err != nil {
		return err
	}
	h, closeTally, err := c.handler()
	if err != nil {
		return err
	}
	defer closeTally()
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: c.addr, Handler: h})
	if err != nil {
		return err
	}
	defer srv.Close()
	ready(srv.Addr().String())
	<-ctx.Done()
	return nil
}

// startServerProcess starts a server as a separate process (this binary
// again, as serverRole) and returns it once it serves, with its address.
// Stop it with Proc.Stop (SIGTERM) or Proc.Kill (SIGKILL).
func startServerProcess(ctx context.Context, c serverProc) (*subproc.Proc, netip.AddrPort, error) {
	if c.addr == "" {
		c.addr = "127.0.0.1:0"
	}
	p, err := subproc.Start(ctx, serverRole, c.args()...)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("dnsexp: server process: %w", err)
	}
	addr, err := netip.ParseAddrPort(p.Ready)
	if err != nil {
		_ = p.Kill()
		return nil, netip.AddrPort{}, fmt.Errorf("dnsexp: server process said %q, not an address: %w", p.Ready, err)
	}
	return p, addr, nil
}

// tally appends a byte to a file for every datagram written through it.
// The byte goes in before the write (and comes out again if the write
// fails): a process killed right after a write its client has already
// read must not leave that datagram uncounted.
type tally struct {
	mu sync.Mutex
	f  *os.File
}

func openTally(path string) (*tally, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dnsexp: tally file: %w", err)
	}
	return &tally{f: f}, nil
}

// wrap counts every datagram h writes.
func (t *tally) wrap(h dns.Handler) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { h.ServeDNS(&tallyWriter{ResponseWriter: w, t: t}, q) })
}

// count adds a byte before a write; undo takes it out after a failed one.
func (t *tally) count() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		_, _ = t.f.Write([]byte{'.'})
	}
}

func (t *tally) undo() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return
	}
	if st, err := t.f.Stat(); err == nil && st.Size() > 0 {
		_ = t.f.Truncate(st.Size() - 1)
	}
}

func (t *tally) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// tallyWriter counts each datagram it writes.
type tallyWriter struct {
	dns.ResponseWriter
	t *tally
}

func (w *tallyWriter) Context() context.Context { return dnsfault.Context(w.ResponseWriter) }

func (w *tallyWriter) WriteMsg(m *dns.Msg) error {
	w.t.count()
	err := w.ResponseWriter.WriteMsg(m)
	if err != nil {
		w.t.undo()
	}
	return err
}

func (w *tallyWriter) Write(b []byte) (int, error) {
	w.t.count()
	n, err := w.ResponseWriter.Write(b)
	if err != nil {
		w.t.undo()
	}
	return n, err
}

// readTally counts the datagrams a server (of this process or another,
// alive or killed) recorded in its tally file; a missing file counts 0.
func readTally(path string) (int, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return int(st.Size()), nil
}
