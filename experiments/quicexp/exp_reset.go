package quicexp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/subproc"
	"github.com/statelab/statelab/quicconn"
)

// quic/stateless-reset: the server process holding a connection is
// killed (SIGKILL) and a new one started on its address mid-connection.
// With the same stateless reset key the new process answers the client's
// next packet with a stateless reset the client recognises, and the
// connection ends at once; with a fresh key per process its reset carries
// a token the client never got, and the client waits for its idle
// timeout. QUIC's counterpart of tcp/state-loss's RST.

// resetIdleTimeout is the client's idle timeout in quic/stateless-reset:
// how long a client that learns nothing waits.
var resetIdleTimeout = 1500 * time.Millisecond

// resetServerRole is the subproc role of a QUIC server process that
// quic/stateless-reset kills and restarts.
const resetServerRole = "quic-reset-server"

// resetRoles are the processes quic/stateless-reset starts.
var resetRoles = subproc.Roles{resetServerRole: runResetServer}

// resetServerSpec is how a server process serves, as its arguments carry
// it.
type resetServerSpec struct {
	addr  string
	key   []byte // the stateless reset key, 32 bytes
	seed  []byte // its connection IDs' and token key's random stream, 32 bytes
	tally string // a file the process appends a byte to per datagram written
	// standby, when set, names a FIFO: the process says it is ready at
	// once, waits for SIGUSR1 before it binds addr, then writes its
	// address to the FIFO. A process started ahead takes over an address
	// the moment its predecessor dies, however long starting a process
	// takes on a busy machine.
	standby string
}

func (s resetServerSpec) args() []string {
	a := []string{"-addr", s.addr, "-key", hex.EncodeToString(s.key), "-seed", hex.EncodeToString(s.seed), "-tally", s.tally}
	if s.standby != "" {
		a = append(a, "-standby", s.standby)
	}
	return a
}

// errResetServer wraps the errors of the server process and its
// arguments.
var errResetServer = errors.New("quicexp: reset server process")

// parseResetServer is args backwards.
func parseResetServer(args []string) (resetServerSpec, error) {
	var s resetServerSpec
	var key, seed string
	fs := flag.NewFlagSet(resetServerRole, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.addr, "addr", "127.0.0.1:0", "listen address")
	fs.StringVar(&key, "key", "", "stateless reset key, 32 bytes in hex")
	fs.StringVar(&seed, "seed", "", "random seed, 32 bytes in hex")
	fs.StringVar(&s.tally, "tally", "", "file to append a byte to per datagram written")
	fs.StringVar(&s.standby, "standby", "", "FIFO: bind only on SIGUSR1, then write the address to it")
	if err := fs.Parse(args); err != nil {
		return s, fmt.Errorf("%w: arguments: %w", errResetServer, err)
	}
	var err error
	if s.key, err = hex.DecodeString(key); err != nil || len(s.key) != 32 {
		return s, fmt.Errorf("%w: -key %q: want 32 bytes in hex", errResetServer, key)
	}
	if s.seed, err = hex.DecodeString(seed); err != nil || len(s.seed) != 32 {
		return s, fmt.Errorf("%w: -seed %q: want 32 bytes in hex", errResetServer, seed)
	}
	if s.tally == "" || fs.NArg() > 0 {
		return s, fmt.Errorf("%w: want -tally FILE and no other arguments, got %q", errResetServer, args)
	}
	return s, nil
}

// runResetServer is the server process: serve with the given reset key
// until SIGTERM (or SIGKILL), counting every datagram written in the
// tally file after the socket wrote it.
func runResetServer(ctx context.Context, args []string, ready func(string)) error {
	s, err := parseResetServer(args)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.tally, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("%w: tally: %w", errResetServer, err)
	}
	defer f.Close()
	if s.standby != "" {
		wake := make(chan os.Signal, 1)
		signal.Notify(wake, syscall.SIGUSR1)
		ready("standby")
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
	var mu sync.Mutex
	key := quic.StatelessResetKey(s.key)
	srv, err := quicconn.NewServer(quicconn.ServerConfig{Addr: s.addr, IdleTimeout: stepTimeout, StatelessResetKey: &key,
		Rand: rand.NewChaCha8([32]byte(s.seed)), OnWrite: func([]byte, net.Addr) {
			mu.Lock()
			defer mu.Unlock()
			f.Write([]byte{'.'})
		}})
	if err != nil {
		return err
	}
	defer srv.Close()
	if s.standby == "" {
		ready(srv.Addr.String())
	} else if err := tell(s.standby, srv.Addr.String()); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// tell writes line to the FIFO at path (its reader holds it open).
func tell(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("%w: standby FIFO: %w", errResetServer, err)
	}
	defer f.Close()
	_, err = fmt.Fprintln(f, line)
	return err
}

// resetToken is the stateless reset token quic-go derives for a
// connection ID: HMAC-SHA256(key, cid), its first 16 bytes.
func resetToken(key, cid []byte) [16]byte {
	h := hmac.New(sha256.New, key)
	h.Write(cid)
	return [16]byte(h.Sum(nil))
}

// resetRun is one run of quic/stateless-reset: a connection, its server
// process killed and restarted, and how the connection ended.
type resetRun struct {
	label   string // "same key", "fresh key"
	same    bool
	keys    [2][]byte // of the first and the restarted process
	addr    netip.AddrPort
	pids    [2]int
	tallies [2]string
	cl      *quicconn.Client
	echoed  bool      // the echo before the kill came back whole
	killAt  time.Time // the first process was gone
	readyAt time.Time // the restarted process served
	endAt   time.Time // the client's connection ended
	cause   error     // why, as quic-go reported it
}

// ended names how the connection ended.
func (r *resetRun) ended() string {
	var sr *quic.StatelessResetError
	var it *quic.IdleTimeoutError
	switch {
	case r.cause == nil:
		return "not ended"
	case errors.As(r.cause, &sr):
		return "stateless reset (RFC 9000 §10.3)"
	case errors.As(r.cause, &it):
		return "idle timeout (RFC 9000 §10.1)"
	}
	return r.cause.Error()
}

func (r *resetRun) byReset() bool {
	var sr *quic.StatelessResetError
	return errors.As(r.cause, &sr)
}

func (r *resetRun) byIdle() bool {
	var it *quic.IdleTimeoutError
	return errors.As(r.cause, &it)
}

// resetLab is quic/stateless-reset's set-up: the capture of every
// server's port, the clients' key log and qlogs, the tally files.
type resetLab struct {
	env    *lab.Env
	keylog *lockedBuffer
	tracer *quicconn.Tracer
	cap    *capture.Capture
	dir    string
	mu     sync.Mutex
	ports  map[uint16]bool
	runs   []*resetRun
}

// runReset is quic/stateless-reset.
func runReset(env *lab.Env) error {
	l, err := newResetLab(env)
	if err != nil {
		return err
	}
	key := readKey(env.Bytes("reset key"))
	same := &resetRun{label: "same key", same: true, keys: [2][]byte{key, key}}
	fresh := &resetRun{label: "fresh key", keys: [2][]byte{readKey(env.Bytes("fresh key, process 1")), readKey(env.Bytes("fresh key, process 2"))}}
	for _, r := range []*resetRun{same, fresh} {
		if err := l.run(r); err != nil {
			return err
		}
	}
	pkts, complete, err := l.finish()
	if err != nil {
		return err
	}
	var views []resetView
	for _, r := range l.runs {
		ds := Datagrams(pkts, r.addr, 8)
		cli := nthClient(l.tracer.Conns(), len(views))
		logs := LogsOf(cli, nil)
		logs.ClientWrites = r.cl.Writes()
		Correlate(ds, r.addr, logs, nil)
		joinReceivedInOrder(ds, logs.Client, func(d *Datagram) bool { return d.Src == r.addr })
		v := readReset(ds, r.addr, r.readyAt, r.killAt, r.keys)
		v.comment(r) // even in a short capture: packet by packet
		plots(env, ds, r.addr)
		views = append(views, v)
	}
	if !complete {
		env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\").")
		return nil
	}
	l.check(views)
	l.report(views)
	return nil
}

// readKey draws a 32-byte key.
func readKey(r io.Reader) []byte {
	b := make([]byte, 32)
	io.ReadFull(r, b)
	return b
}

func newResetLab(env *lab.Env) (*resetLab, error) {
	short := strings.TrimPrefix(env.Name(), "quic/")
	dir := filepath.Dir(env.CapturePath(short))
	if _, err := quicconn.RemoveQlogs(dir, short); err != nil {
		return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
	}
	tmp, err := os.MkdirTemp("", "statelab-reset-")
	if err != nil {
		return nil, &lab.EnvError{What: "making a directory for the server processes' tallies", Err: err, Remedy: "check TMPDIR"}
	}
	env.Cleanup(func() { os.RemoveAll(tmp) })
	l := &resetLab{env: env, keylog: &lockedBuffer{}, dir: tmp, ports: map[uint16]bool{}}
	l.tracer = &quicconn.Tracer{Dir: dir, Prefix: short}
	env.Cleanup(func() { l.tracer.Finish(qlogFinishWait) })
	l.cap, err = env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoUDP {
			return false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.ports[m.Src.Port()] || l.ports[m.Dst.Port()]
	}, MaxDrain: captureDrain})
	return l, err
}

// start runs server process i of r on addr.
func (l *resetLab) start(ctx context.Context, r *resetRun, i int, addr string) (*subproc.Proc, error) {
	p, err := l.spawn(ctx, r, i, addr, "")
	if err != nil {
		return nil, err
	}
	ap, err := netip.ParseAddrPort(p.Ready)
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w said %q, not an address: %w", errResetServer, p.Ready, err)
	}
	r.addr, r.pids[i] = ap, p.PID()
	l.mu.Lock()
	l.ports[ap.Port()] = true
	l.mu.Unlock()
	return p, nil
}

// spawn starts server process i of r (on standby when fifo is set).
func (l *resetLab) spawn(ctx context.Context, r *resetRun, i int, addr, fifo string) (*subproc.Proc, error) {
	r.tallies[i] = filepath.Join(l.dir, fmt.Sprintf("%s-%d.tally", strings.ReplaceAll(r.label, " ", "-"), i+1))
	spec := resetServerSpec{addr: addr, key: r.keys[i], seed: readKey(l.env.Bytes(fmt.Sprintf("%s process %d", r.label, i+1))),
		tally: r.tallies[i], standby: fifo}
	p, err := subproc.Start(ctx, resetServerRole, spec.args()...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errResetServer, err)
	}
	l.env.Cleanup(func() { p.Kill() })
	return p, nil
}

// standby starts server process 2 of r ahead, waiting to bind r's
// address; takeOver wakes it.
func (l *resetLab) standby(ctx context.Context, r *resetRun) (*subproc.Proc, *os.File, error) {
	fifo := filepath.Join(l.dir, strings.ReplaceAll(r.label, " ", "-")+".fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, nil, &lab.EnvError{What: "making the standby server's FIFO", Err: err, Remedy: "check TMPDIR"}
	}
	// Opened for reading and writing, so neither side's open blocks.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: standby FIFO: %w", errResetServer, err)
	}
	l.env.Cleanup(func() { f.Close() })
	p, err := l.spawn(ctx, r, 1, r.addr.String(), fifo)
	if err != nil {
		return nil, nil, err
	}
	r.pids[1] = p.PID()
	return p, f, nil
}

// takeOver wakes the standby process and waits until it serves r's
// address.
func (l *resetLab) takeOver(ctx context.Context, r *resetRun, p *subproc.Proc, f *os.File) error {
	if err := p.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return fmt.Errorf("%w: waking the standby process: %w", errResetServer, err)
	}
	dl, _ := ctx.Deadline()
	f.SetReadDeadline(dl)
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w: the standby process did not bind %s: %w", errResetServer, r.addr, err)
	}
	if got := strings.TrimSpace(line); got != r.addr.String() {
		return fmt.Errorf("%w: the standby process serves %q, not %s", errResetServer, got, r.addr)
	}
	return nil
}

// run is one run: connect and echo, wait until nothing is in flight,
// kill the server process, start another on its address, send on the
// connection and wait for the connection to end.
func (l *resetLab) run(r *resetRun) error {
	l.runs = append(l.runs, r)
	ctx, cancel := context.WithTimeout(l.env.Ctx, stepTimeout)
	defer cancel()
	p1, err := l.start(ctx, r, 0, "127.0.0.1:0")
	if err != nil {
		return err
	}
	p2, fifo, err := l.standby(ctx, r)
	if err != nil {
		return err
	}
	cl, err := quicconn.Dial(ctx, quicconn.ClientConfig{Server: r.addr, KeyLog: l.keylog, Tracer: l.tracer, IdleTimeout: resetIdleTimeout,
		Rand: l.env.Bytes(r.label + " client connection IDs"), RecordWrites: true})
	if err != nil {
		return err
	}
	l.env.Cleanup(func() { cl.Close() })
	r.cl = cl
	// The moment the connection ends, taken as quic-go cancels its
	// context.
	ended := make(chan time.Time, 1)
	context.AfterFunc(cl.Conn.Context(), func() { ended <- time.Now() })
	msg := bytes.Repeat([]byte("state"), 40)
	got, err := cl.Echo(ctx, msg)
	r.echoed = err == nil && bytes.Equal(got, msg)
	if err := l.tracer.WaitQuiet(ctx, quietTime); err != nil {
		return err
	}
	p1.Kill()
	r.killAt = time.Now()
	if err := l.takeOver(ctx, r, p2, fifo); err != nil {
		return err
	}
	r.readyAt = time.Now()
	l.env.Logf("%s: server process %d killed, %d serves %s %.1f ms later", r.label, r.pids[0], r.pids[1], r.addr, ms(r.readyAt.Sub(r.killAt)))
	if cl.Conn.Context().Err() != nil {
		return fmt.Errorf("%w: %s: the connection ended before the new process served (%v)", quicconn.ErrProtocol, r.label, context.Cause(cl.Conn.Context()))
	}
	go cl.Echo(ctx, msg) // the first packet after the restart; it fails when the connection ends
	select {
	case r.endAt = <-ended:
	case <-ctx.Done():
		return fmt.Errorf("%w: %s: the connection did not end: %w", quicconn.ErrProtocol, r.label, context.Cause(ctx))
	}
	r.cause = context.Cause(cl.Conn.Context())
	cl.Close()
	p2.Stop(2 * time.Second)
	return nil
}

// finish stops the capture once it holds every datagram the server
// processes' tallies and the clients' sockets counted.
func (l *resetLab) finish() ([]*capture.Packet, bool, error) {
	want, servers, clients := testUncounted, 0, 0
	for _, r := range l.runs {
		for _, t := range r.tallies {
			st, err := os.Stat(t)
			if err == nil {
				servers += int(st.Size())
			}
		}
		clients += r.cl.Written()
	}
	want += servers + clients
	e := expect{what: "QUIC datagrams", want: want, units: func(m capture.Meta) int {
		if m.Proto == capture.ProtoUDP {
			return 1
		}
		return 0
	}, source: fmt.Sprintf("the server processes' tallies: %d written (the killed ones' up to their death); the clients' sockets: %d", servers, clients)}
	pkts, complete, err := stopComplete(l.env, l.cap, e)
	if err != nil {
		return nil, false, err
	}
	l.cap.AddSecrets(l.keylog.Bytes())
	secrets := bytes.Count(l.keylog.Bytes(), []byte("TRAFFIC_SECRET_0"))
	l.env.Check("TLS secrets embedded in the capture", secrets >= 2*len(l.runs), "%d traffic secrets for %d connections", secrets, len(l.runs))
	return pkts, complete, nil
}

// resetVerdict is what a server datagram after the restart carries at its
// end.
type resetVerdict int

const (
	notReset     resetVerdict = iota
	resetHeld                 // the token the client holds: a stateless reset it recognises
	resetForeign              // the restarted process's own token: the client never got it
)

// resetPacket is a server datagram after the restart, read as a
// stateless reset.
type resetPacket struct {
	d       *Datagram
	dcid    []byte // of the client packet it answers
	token   [16]byte
	verdict resetVerdict
}

// resetView is one run as the capture shows it.
type resetView struct {
	ds []*Datagram
	// before are the datagrams before the kill; after those after the
	// restart; firstAfter the client's first datagram after it.
	before, after []*Datagram
	firstAfter    *Datagram
	resets        []resetPacket
	// clientAfter is how many datagrams the client sent after the
	// restart.
	clientAfter int
	killAt      time.Time
	readyAt     time.Time
	keys        [2][]byte
}

// readReset reads a run's datagrams: those of the first process, those
// after the restart, and every server datagram after it checked as a
// stateless reset against the token the client holds (the first
// process's key) and the restarted process's own.
func readReset(ds []*Datagram, server netip.AddrPort, readyAt, killAt time.Time, keys [2][]byte) resetView {
	v := resetView{ds: ds, readyAt: readyAt, killAt: killAt, keys: keys}
	var lastDCID []byte
	for _, d := range ds {
		if d.Time.Before(killAt) {
			v.before = append(v.before, d)
			continue
		}
		v.after = append(v.after, d)
		if d.Dst == server {
			v.clientAfter++
			if v.firstAfter == nil {
				v.firstAfter = d
			}
			lastDCID, _ = hex.DecodeString(d.DCID)
			continue
		}
		p := resetPacket{d: d, dcid: lastDCID}
		if d.Size >= 17 {
			copy(p.token[:], d.payload[d.Size-16:])
		}
		switch {
		case lastDCID == nil || d.Long:
		case p.token == resetToken(keys[0], lastDCID):
			p.verdict = resetHeld
		case p.token == resetToken(keys[1], lastDCID):
			p.verdict = resetForeign
		}
		v.resets = append(v.resets, p)
	}
	return v
}

// count is how many of the server's datagrams after the restart have
// verdict k.
func (v resetView) count(k resetVerdict) int {
	n := 0
	for _, p := range v.resets {
		if p.verdict == k {
			n++
		}
	}
	return n
}

// resetDelay is from the client's first datagram after the restart to
// the first reset the client recognises, as captured (0: none).
func (v resetView) resetDelay() time.Duration {
	for _, p := range v.resets {
		if p.verdict == resetHeld && v.firstAfter != nil {
			return p.d.Time.Sub(v.firstAfter.Time)
		}
	}
	return 0
}

// elapsed is from the client's first datagram after the restart to the
// connection's end.
func (v resetView) elapsed(end time.Time) time.Duration {
	if v.firstAfter == nil || end.IsZero() {
		return 0
	}
	return end.Sub(v.firstAfter.Time)
}

// comment gives every datagram of the run its comment: which server
// process held the connection at that moment, and what the client's
// qlog says of it; after the restart, each server datagram's last 16
// bytes against the token the client holds.
func (v resetView) comment(r *resetRun) {
	for _, d := range v.before {
		side := "client → server process 1"
		if d.Src == r.addr {
			side = "server process 1 → client"
		}
		commentSide(d, fmt.Sprintf("run %q: %s (pid %d holds this connection: keys, packet numbers, streams in its memory); %s",
			r.label, side, r.pids[0], clientView(d, r.addr)), sideOf(d, r.addr), "")
	}
	keyNote := "restarted with the same reset key"
	if !r.same {
		keyNote = "restarted with a fresh reset key of its own"
	}
	for _, d := range v.after {
		if d.Dst == r.addr {
			first := ""
			if d == v.firstAfter {
				first = "the client's first packet after the restart (the clock of the table starts here); "
			}
			commentSide(d, fmt.Sprintf("run %q: client → server process 2 (pid %d, %s): %sthe client still holds the connection; process 1 was killed, and process 2 knows no connection with DCID %s; %s",
				r.label, r.pids[1], keyNote, first, d.DCID, clientView(d, r.addr)), "client", "")
			continue
		}
		p := v.resets[indexOf(v.resets, d)]
		held := resetToken(r.keys[0], p.dcid)
		switch p.verdict {
		case resetHeld:
			commentSide(d, fmt.Sprintf("run %q: server process 2 → client: STATELESS RESET, %d B that look like a short header packet, ending in the token %x = HMAC-SHA256(reset key, DCID %x)[:16] — the token the client got with that connection ID from process 1, so it ends the connection at once",
				r.label, d.Size, p.token, p.dcid), "server", "stateless reset")
		case resetForeign:
			commentSide(d, fmt.Sprintf("run %q: server process 2 → client: a stateless reset keyed by process 2's own key, %d B ending in %x = HMAC-SHA256(process 2's key, DCID %x)[:16]; the client holds %x for that connection ID (process 1's key), cannot tell this from noise and drops it",
				r.label, d.Size, p.token, p.dcid, held), "server", "stateless reset (foreign key)")
		default:
			commentSide(d, fmt.Sprintf("run %q: server process 2 → client: %d B whose last 16 bytes %x match no reset token for DCID %x; %s",
				r.label, d.Size, p.token, p.dcid, clientView(d, r.addr)), "server", "")
		}
	}
}

func indexOf(ps []resetPacket, d *Datagram) int {
	for i, p := range ps {
		if p.d == d {
			return i
		}
	}
	return -1
}

// clientView describes a datagram's packets as the client's qlog logged
// them (the server processes keep no qlog the lab can read).
func clientView(d *Datagram, server netip.AddrPort) string {
	var parts []string
	for _, p := range d.Parts {
		e := p.Sent
		if d.Src == server {
			e = p.Recv
		}
		parts = append(parts, describePart(p, e))
	}
	who := "sent"
	if d.Src == server {
		who = "received"
	}
	if len(parts) == 0 {
		return fmt.Sprintf("%d B", d.Size)
	}
	return strings.Join(parts, " + ") + " (as the client's qlog " + who + " it)"
}

// check judges the two runs.
func (l *resetLab) check(views []resetView) {
	env := l.env
	if len(views) != 2 {
		return
	}
	a, b := l.runs[0], l.runs[1]
	va, vb := views[0], views[1]
	ta, tb := va.elapsed(a.endAt), vb.elapsed(b.endAt)
	for i, r := range l.runs {
		env.Check(fmt.Sprintf("run %q: the connection works before the kill", r.label), r.echoed && len(views[i].before) > 0,
			"echo before the kill came back whole: %t; %d datagrams with server process 1 (pid %d)", r.echoed, len(views[i].before), r.pids[0])
	}
	env.Check(`run "same key": the restarted process answers with a stateless reset the client recognises`, va.count(resetHeld) >= 1,
		"%d of %d server datagrams after the restart end in the token the client holds (HMAC of the shared key and the client's DCID)",
		va.count(resetHeld), len(va.resets))
	env.Check(`run "same key": the connection ends at once with a stateless reset`, a.byReset(),
		"quic-go reported: %s, %.1f ms after the client's first packet after the restart", a.ended(), ms(ta))
	env.Check(`run "fresh key": no reset the client can recognise`, vb.count(resetHeld) == 0,
		"%d server datagrams after the restart: %d end in process 2's own token, %d in the token the client holds",
		len(vb.resets), vb.count(resetForeign), vb.count(resetHeld))
	env.Check(`run "fresh key": the connection ends by its idle timeout`, b.byIdle() && tb >= resetIdleTimeout*9/10,
		"quic-go reported: %s, %.0f ms after the client's first packet after the restart (idle timeout %d ms)", b.ended(), ms(tb), resetIdleTimeout.Milliseconds())
	// Unloaded, the reset comes back in well under a millisecond; on a
	// machine busy enough to starve the new process for a few hundred
	// milliseconds it still comes back long before half the idle timeout.
	env.Check("the shared key tells the client far sooner than its idle timeout", ta > 0 && tb > 0 && 2*ta < resetIdleTimeout && 2*ta < tb,
		"%.1f ms with the same key (the reset on the wire %.1f ms after the client's packet), %.0f ms with a fresh key (%.0f×); idle timeout %d ms",
		ms(ta), ms(va.resetDelay()), ms(tb), float64(tb)/float64(max(ta, 1)), resetIdleTimeout.Milliseconds())
}

// report adds the table, metrics, ladders and the Holding row.
func (l *resetLab) report(views []resetView) {
	env := l.env
	if len(views) != 2 {
		return
	}
	rows := [][]string{{"run", "reset key", "client datagrams after the restart", "server datagrams after it (reset token held / foreign)", "first packet after the restart → end", "how it ended"}}
	for i, r := range l.runs {
		v := views[i]
		key := "the same key in both processes"
		if !r.same {
			key = "a fresh key per process"
		}
		rows = append(rows, []string{r.label, key, fmt.Sprint(v.clientAfter), fmt.Sprintf("%d (%d / %d)", len(v.resets), v.count(resetHeld), v.count(resetForeign)),
			fmt.Sprintf("%.1f ms", ms(v.elapsed(r.endAt))), r.ended()})
	}
	env.Table("A server process killed and restarted on its address mid-connection", rows)
	a, b := l.runs[0], l.runs[1]
	ta, tb := views[0].elapsed(a.endAt), views[1].elapsed(b.endAt)
	env.Metric("same_key_end_ms", ms(ta))
	env.Metric("fresh_key_end_ms", ms(tb))
	env.Metric("idle_timeout_ms", ms(resetIdleTimeout))
	env.Metric("same_key_takeover_ms", ms(a.readyAt.Sub(a.killAt)))
	env.Metric("fresh_key_takeover_ms", ms(b.readyAt.Sub(b.killAt)))
	env.Metric("same_key_resets_count", float64(views[0].count(resetHeld)))
	env.Metric("same_key_reset_on_wire_ms", ms(views[0].resetDelay()))
	env.Metric("fresh_key_foreign_resets_count", float64(views[1].count(resetForeign)))
	env.Metric("fresh_key_client_datagrams_after_restart_count", float64(views[1].clientAfter))
	size := 0
	if len(views[0].resets) > 0 {
		size = views[0].resets[0].d.Size
	}
	env.Metric("reset_datagram_bytes", float64(size))
	for i, r := range l.runs {
		resetLadder(env, r, views[i])
	}
	held := 0
	for _, r := range l.runs {
		if r.echoed {
			held++
		}
	}
	env.Holding(lab.Holding{
		ServerKeeps:   fmt.Sprintf("a connection per client (%d connections, one per run, each in the memory of a process that was killed)", held),
		ClientCarries: "its connection ID; the 16-byte reset token derives from it and the server's key",
		RestartLoses:  fmt.Sprintf("every connection; with the same reset key the client learns in %.1f ms, without it in %.0f ms", ms(ta), ms(tb)),
		CarriedBytes:  16,
		CarriedPer:    fmt.Sprintf("per connection ID, at the end of a %d-byte stateless reset", size),
	})
}

// resetLadder draws one run: the echo, the kill and restart, and what
// followed, every message row a captured datagram.
func resetLadder(env *lab.Env, r *resetRun, v resetView) {
	if env.CaptureShort() {
		return
	}
	lad := env.Ladder(fmt.Sprintf("Run %q: the server process killed and restarted on %s (as captured)", r.label, r.addr), "client", "server")
	var rw rows
	if len(v.before) > 0 {
		d := v.before[0]
		rw.send(d.Index, "Initial (handshake)", "connecting", fmt.Sprintf("process 1 (pid %d)", r.pids[0]))
		last := v.before[len(v.before)-1]
		rw.state(last.Index+1, "connection open", fmt.Sprintf("process 1 killed (SIGKILL); process 2 (pid %d) binds the address %.1f ms later", r.pids[1], ms(r.readyAt.Sub(r.killAt))))
	}
	shown := 0
	for _, d := range v.after {
		if shown == 6 {
			rw.state(d.Index, fmt.Sprintf("… %d more datagrams", len(v.after)-shown), "")
			break
		}
		shown++
		if d.Dst == r.addr {
			rw.send(d.Index, "1-RTT DCID "+cidShort(d.DCID), "still open", "no such connection")
			continue
		}
		p := v.resets[indexOf(v.resets, d)]
		switch p.verdict {
		case resetHeld:
			rw.reply(d.Index, fmt.Sprintf("stateless reset, token %x…", p.token[:4]), "token matches: closed", "no state")
		case resetForeign:
			rw.reply(d.Index, fmt.Sprintf("reset-like, token %x… (not the held one)", p.token[:4]), "dropped as noise", "no state")
		default:
			rw.reply(d.Index, fmt.Sprintf("%d B", d.Size), "", "")
		}
	}
	how := "closed"
	switch {
	case r.byReset():
		how = "reset"
	case r.byIdle():
		how = "idle timeout"
	}
	rw.state(len(v.ds)+1, fmt.Sprintf("%s, %.1f ms", how, ms(v.elapsed(r.endAt))), "")
	rw.draw(lad)
}

// joinReceivedInOrder gives each part of the datagrams to the receiver
// (to reports true) that no sender's record describes the receiver's
// record of it: its packet_received events in the order it logged them,
// each to the next captured packet with the same type, destination
// connection ID and length. quic-go's server processes keep no qlog the
// lab can read, and on loopback nothing is lost or reordered between the
// capture and the client.
func joinReceivedInOrder(ds []*Datagram, events []PacketEvent, to func(*Datagram) bool) {
	var recv []*PacketEvent
	for i := range events {
		if !events[i].Sent {
			recv = append(recv, &events[i])
		}
	}
	next := 0
	for _, d := range ds {
		if !to(d) {
			continue
		}
		for k := range d.Parts {
			p := &d.Parts[k]
			if p.Recv != nil {
				continue
			}
			for j := next; j < len(recv) && j < next+matchWindow; j++ {
				e := recv[j]
				if e.Type == p.Type && e.DCID == p.DCID && e.Length == p.Len {
					p.Recv, next = e, j+1
					break
				}
			}
		}
	}
}
