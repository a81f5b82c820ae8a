package quicexp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/lb"
	"github.com/statelab/statelab/quicconn/nat"
)

// quic/load-balancer: three backends behind a UDP balancer. Hashing the
// 4-tuple loses a connection whose address changes; routing by the server
// ID inside the connection ID keeps it, and the balancer keeps nothing.

// lbConfig is the backends' connection ID config: a first octet, a
// 2-byte server ID, a 5-byte nonce — 8 bytes, like every CID of the lab.
var lbConfig = lb.Config{Rotation: 0, ServerIDLen: 2, NonceLen: 5}

// lbBackends is how many backends stand behind each balancer.
const lbBackends = 3

// lbMaxMoves bounds how many path changes quic/load-balancer makes to
// land a client on another backend by its 4-tuple (each does two times
// in three).
const lbMaxMoves = 8

// lbPhase is one balancer with its backends and one client connection.
type lbPhase struct {
	name, title string
	mode        lb.Mode
	bal         *lb.Balancer   // the running balancer
	retired     []*lb.Balancer // earlier instances, restarted away
	addrs       []netip.AddrPort
	socks       []*lb.BackendConn
	backs       []*quicconn.Backend
	tracer      *quicconn.Tracer
	mb          *nat.UDP // the client's NAT, if any
	cl          *quicconn.Client
	home        int // the backend that holds the connection, -1 unknown

	// What happened, as the client and the lab saw it.
	res quicconn.UploadResult
	err error // the transfer's or the path change's
	// oldPath is an echo on the old path after a failed migration.
	oldPath error
	cause   error            // why the client's connection ended, nil: it did not
	moves   []lbMove         // path changes, in order
	hops    []*hop           // active migrations (a *hop per move by migration)
	rebind  []nat.Rebinding  // NAT rebindings
	ds      []*Datagram      // client-leg datagrams, correlated
	legs    []*backendLeg    // balancer↔backend datagrams
	corr    Correlation      // the client leg against the qlogs
	resets  []*backendLeg    // stateless resets captured
	routes  []routeAgreement // every client datagram's route, recomputed
	// restartedAfter is how many datagrams the first balancer instance
	// routed before its restart; restartErr what the restart reported.
	restartedAfter int
	restartErr     error
	restartAt      time.Time
}

// lbMove is one change of the client's address as the balancer sees it.
type lbMove struct {
	how      string // "NAT rebinding" or "migration"
	from, to netip.AddrPort
	backend  int // where the balancer's route sends the new address
}

// lbLab is quic/load-balancer's lab.
type lbLab struct {
	env      *lab.Env
	ctx      context.Context
	keylog   *lockedBuffer
	leaf     *x509.Certificate // the backends' shared certificate
	resetKey quic.StatelessResetKey
	phases   []*lbPhase
	cap      *capture.Capture
}

// runLoadBalancer is quic/load-balancer.
func runLoadBalancer(env *lab.Env) error {
	l, err := setUpLB(env)
	if err != nil {
		return err
	}
	a, b, c := l.phases[0], l.phases[1], l.phases[2]
	if err := l.hashRebind(a); err != nil {
		return err
	}
	if err := l.hashMigrate(b); err != nil {
		return err
	}
	if err := l.cidMoves(c); err != nil {
		return err
	}
	ok, err := l.finish()
	if err != nil || !ok {
		return err
	}
	l.judge()
	return nil
}

// setUpLB starts three phases' balancers, each with three backends that
// share a certificate and a stateless reset key (so any of them can reset
// a connection it does not know, as a deployment's do), and the capture
// of every balancer's port.
func setUpLB(env *lab.Env) (*lbLab, error) {
	l := &lbLab{env: env, keylog: &lockedBuffer{}}
	io.ReadFull(env.Bytes("stateless reset key"), l.resetKey[:])
	cert, leaf, err := quicconn.SharedCert()
	if err != nil {
		return nil, err
	}
	l.leaf = leaf
	ctx, cancel := context.WithTimeout(env.Ctx, stepTimeout)
	env.Cleanup(cancel)
	l.ctx = ctx
	dir := envDir(env, "load-balancer")
	for _, p := range []struct {
		name, title string
		mode        lb.Mode
		nat         bool
	}{
		{"hash-rebind", "4-tuple hash, NAT rebinding", lb.ByTuple, true},
		{"hash-migrate", "4-tuple hash, active migration", lb.ByTuple, false},
		{"cid", "connection ID, NAT rebinding then active migration", lb.ByCID, true},
	} {
		prefix := "load-balancer-" + p.name
		if _, err := quicconn.RemoveQlogs(dir, prefix); err != nil {
			return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
		}
		ph := &lbPhase{name: p.name, title: p.title, mode: p.mode, tracer: &quicconn.Tracer{Dir: dir, Prefix: prefix}, home: -1}
		env.Cleanup(func() { ph.tracer.Finish(qlogFinishWait) })
		if err := l.startPhase(ph, cert, p.nat); err != nil {
			return nil, err
		}
		l.phases = append(l.phases, ph)
	}
	if l.cap, err = env.Capture(l.captureOptions()); err != nil {
		return nil, err
	}
	return l, nil
}

// startPhase opens the backends' sockets, the balancer in front of them,
// the backends, and the NAT in front of the balancer when wanted.
func (l *lbLab) startPhase(ph *lbPhase, cert tls.Certificate, withNAT bool) error {
	var udps []*net.UDPConn
	var addrs []netip.AddrPort
	for range lbBackends {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
		if err != nil {
			return fmt.Errorf("%w: backend socket: %w", quicconn.ErrListen, err)
		}
		udps = append(udps, u)
		addrs = append(addrs, u.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	bal, err := lb.New("127.0.0.1:0", addrs, ph.mode, lbConfig)
	if err != nil {
		for _, u := range udps {
			u.Close()
		}
		return err
	}
	l.env.Cleanup(func() { bal.Close() })
	ph.bal, ph.addrs = bal, addrs
	for i, u := range udps {
		sock := lb.NewBackendConn(u, bal.Front)
		ph.socks = append(ph.socks, sock)
		b, err := quicconn.NewBackend(quicconn.BackendConfig{Conn: sock, Cert: cert, ResetKey: &l.resetKey, KeyLog: l.keylog,
			Tracer: ph.tracer, IdleTimeout: stepTimeout,
			CIDs: &lb.Generator{Config: lbConfig, ServerID: lbConfig.ServerID(i), R: l.env.Bytes(fmt.Sprintf("%s backend %d connection IDs", ph.name, i))}})
		if err != nil {
			return err
		}
		l.env.Cleanup(func() { b.Close() })
		ph.backs = append(ph.backs, b)
	}
	if withNAT {
		mb, err := nat.NewUDP("127.0.0.1:0", bal.Front, loopback1)
		if err != nil {
			return err
		}
		l.env.Cleanup(func() { mb.Close() })
		ph.mb = mb
	}
	return nil
}

// captureOptions keeps the datagrams to or from any balancer: the
// client leg and the backend legs.
func (l *lbLab) captureOptions() capture.Options {
	ports := map[uint16]bool{}
	for _, ph := range l.phases {
		ports[ph.bal.Front.Port()] = true
	}
	return capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && m.Proto == capture.ProtoUDP && (ports[m.Src.Port()] || ports[m.Dst.Port()])
	}, MaxDrain: captureDrain}
}

// stats adds up the counters of every balancer instance of the phase.
func (ph *lbPhase) stats() lb.Stats {
	st := ph.bal.Stats()
	for _, b := range ph.retired {
		o := b.Stats()
		for i, n := range o.ToBackend {
			st.ToBackend[i] += n
		}
		st.TupleHash += o.TupleHash
		st.ServerID += o.ServerID
		st.DCIDHash += o.DCIDHash
		st.ToClient += o.ToClient
		st.Dropped += o.Dropped
	}
	return st
}

// restartBalancer replaces the phase's balancer with a new instance on
// the same address, at a quiescent moment (nothing in flight, nothing on
// the wire for quietTime), so no datagram arrives while neither listens.
func (l *lbLab) restartBalancer(ph *lbPhase) error {
	if err := quiesce(l.ctx, ph.tracer)(); err != nil {
		return err
	}
	old := ph.bal
	old.Close()
	nb, err := lb.New(old.Front.String(), ph.addrs, ph.mode, lbConfig)
	if err != nil {
		return err
	}
	l.env.Cleanup(func() { nb.Close() })
	ph.retired, ph.bal, ph.restartAt = append(ph.retired, old), nb, time.Now()
	ph.restartedAfter = sumInts(old.Stats().ToBackend)
	l.env.Logf("%s: balancer restarted on %s after routing %d datagrams", ph.name, old.Front, ph.restartedAfter)
	return nil
}

// dial connects the phase's client, through its NAT when it has one.
func (l *lbLab) dial(ph *lbPhase) error {
	to := ph.bal.Front
	if ph.mb != nil {
		to = ph.mb.Front
	}
	cl, err := quicconn.Dial(l.ctx, quicconn.ClientConfig{Server: to, Local: "127.0.0.1:0", Trust: l.leaf, KeyLog: l.keylog,
		Tracer: ph.tracer, IdleTimeout: stepTimeout, Rand: l.env.Bytes(ph.name + " client connection IDs"), RecordWrites: true})
	if err != nil {
		return err
	}
	l.env.Cleanup(func() { cl.Close() })
	ph.cl = cl
	ph.home = l.homeOf(ph)
	return nil
}

// homeOf is the backend that holds the phase's connection: the one whose
// server ID is in the connection IDs the client sends to.
func (l *lbLab) homeOf(ph *lbPhase) int {
	for _, e := range ph.tracer.Role("client").Packets() {
		id := e.SCID // the server's, in a long header it sent
		if e.Sent {
			id = e.DCID
		}
		if id != "" {
			b, _ := hex.DecodeString(id)
			if sid, err := lbConfig.Decode(b); err == nil {
				for i := range lbBackends {
					if string(lbConfig.ServerID(i)) == string(sid) {
						return i
					}
				}
			}
		}
	}
	return -1
}

// hashRebind is the first phase: a client talks through the NAT to the
// balancer hashing the 4-tuple, and the NAT rebinds it at its next large
// datagram (an echo). A rebinding that hashes to the connection's own
// backend changes nothing, so the NAT rebinds again, echo after echo,
// until one lands elsewhere (at most lbMaxMoves times: all on the same
// backend, one time in 3^8).
func (l *lbLab) hashRebind(ph *lbPhase) error {
	if err := l.dial(ph); err != nil {
		return err
	}
	// A first round trip, so the handshake's last (padded) datagrams are
	// behind it and the rebinding falls on an echo.
	if _, err := ph.cl.Echo(l.ctx, []byte("before the rebinding")); err != nil {
		return err
	}
	msg := make([]byte, largeDatagram+100)
	for range lbMaxMoves {
		armed := ph.mb.Rebind(loopback2, largeDatagram)
		_, ph.err = ph.cl.Echo(l.ctx, msg)
		var rb nat.Rebinding
		select {
		case rb = <-armed:
		case <-l.ctx.Done():
			return fmt.Errorf("%w: %s: no rebinding (echo: %v): %w", quicconn.ErrTransfer, ph.name, ph.err, context.Cause(l.ctx))
		}
		ph.rebind = append(ph.rebind, rb)
		mv := lbMove{how: "NAT rebinding", from: rb.Old, to: rb.New, backend: ph.bal.Route(rb.New, nil).Backend}
		ph.moves = append(ph.moves, mv)
		l.env.Logf("%s: NAT rebinding %s → %s hashes to backend %d (home %d), echo: %v", ph.name, rb.Old, rb.New, mv.backend+1, ph.home+1, ph.err)
		if mv.backend != ph.home || ph.err != nil {
			break
		}
	}
	return l.ended(ph)
}

// ended waits until the client's connection has ended (a stateless reset
// or the idle timeout) or the phase's upload completed, and notes why.
func (l *lbLab) ended(ph *lbPhase) error {
	if ph.err == nil {
		return nil
	}
	select {
	case <-ph.cl.Conn.Context().Done():
		ph.cause = context.Cause(ph.cl.Conn.Context())
	case <-l.ctx.Done():
		return fmt.Errorf("%w: %s: the client's connection did not end: %w", quicconn.ErrTransfer, ph.name, context.Cause(l.ctx))
	}
	return nil
}

// hashMigrate is the second phase: a client talking to the balancer
// directly migrates. Its new path's address is chosen among new local
// sockets so that the balancer's hash sends it to another backend (two in
// three do), and is probed.
func (l *lbLab) hashMigrate(ph *lbPhase) error {
	if err := l.dial(ph); err != nil {
		return err
	}
	if _, err := ph.cl.Echo(l.ctx, []byte("before the migration")); err != nil {
		return err
	}
	for range lbMaxMoves {
		p, err := ph.cl.NewPath(netip.AddrPortFrom(loopback2, 0).String())
		if err != nil {
			return err
		}
		mv := lbMove{how: "migration", from: ph.cl.LocalAddr(), to: p.Local, backend: ph.bal.Route(p.Local, nil).Backend}
		if mv.backend == ph.home {
			p.Close() // this address would stay on the same backend: not used
			continue
		}
		ph.moves = append(ph.moves, mv)
		pctx, cancel := context.WithTimeout(l.ctx, stepTimeout/2)
		ph.err = p.Probe(pctx)
		cancel()
		l.env.Logf("%s: migration %s → %s hashes to backend %d (home %d): probe %v", ph.name, mv.from, mv.to, mv.backend+1, ph.home+1, ph.err)
		break
	}
	if len(ph.moves) == 0 {
		return fmt.Errorf("%w: %s: no new address hashed to another backend in %d tries", quicconn.ErrMigration, ph.name, lbMaxMoves)
	}
	// The reset reaches the new path's socket, whose transport knows no
	// reset token of the connection: the probe just goes unanswered. Is
	// the connection still there on its old path?
	_, ph.oldPath = ph.cl.Echo(l.ctx, []byte("after the failed migration"))
	return nil
}

// cidMoves is the third phase: the balancer routes by connection ID; the
// client's upload goes through a restart of the balancer at an eighth, a
// NAT rebinding from a quarter and an active migration past two thirds,
// and completes.
func (l *lbLab) cidMoves(ph *lbPhase) error {
	if err := l.dial(ph); err != nil {
		return err
	}
	var armed <-chan nat.Rebinding
	ph.res, ph.err = ph.cl.Upload(l.ctx, (&labSetup{env: l.env}).data(), uploadChunk, func(n int64) {
		if len(ph.retired) == 0 && ph.restartErr == nil && n >= transferSize/8 {
			ph.restartErr = l.restartBalancer(ph)
			return
		}
		if armed == nil && n >= transferSize/4 {
			armed = ph.mb.Rebind(loopback2, largeDatagram)
			return
		}
		if len(ph.rebind) == 0 {
			select {
			case rb := <-armed:
				ph.rebind = append(ph.rebind, rb)
				ph.moves = append(ph.moves, lbMove{how: "NAT rebinding", from: rb.Old, to: rb.New, backend: -1})
			default:
			}
		}
		// The migration follows the rebinding (once it happened), past
		// two thirds; not at a quiescent moment: what a packet built for
		// the old path carries to the new one is quic/migrate's subject,
		// the route is this one's.
		if len(ph.rebind) == 1 && len(ph.hops) == 0 && n >= 2*transferSize/3 {
			h := migrate(l.ctx, l.env.Logf, ph.cl, loopback3, nil)
			ph.hops = append(ph.hops, h)
			ph.moves = append(ph.moves, lbMove{how: "migration", from: h.from, to: h.to, backend: -1})
		}
	})
	if ph.err != nil {
		return l.ended(ph)
	}
	return nil
}

// finish closes every endpoint, stops the capture once it holds what the
// sockets counted, and correlates and comments every datagram. ok is
// false when the capture is short.
func (l *lbLab) finish() (ok bool, err error) {
	var source []string
	want := 0
	// A live connection is closed by its client, and both ends' qlogs
	// are awaited: the backend's ends once the CONNECTION_CLOSE has
	// passed the NAT and the balancer, so nothing is in flight when
	// they close. A connection the client lost is not awaited: its
	// backend keeps it until its idle timeout.
	for _, ph := range l.phases {
		if ph.cl == nil || ph.cause != nil {
			continue
		}
		ph.cl.Conn.CloseWithError(0, "done")
		for _, t := range ph.tracer.Conns() {
			select {
			case <-t.Done():
			case <-l.ctx.Done():
				return false, fmt.Errorf("%w: %s: waiting for the %s's qlog: %w", quicconn.ErrTransfer, ph.name, t.Role, context.Cause(l.ctx))
			}
		}
	}
	for _, ph := range l.phases {
		if ph.cl != nil {
			ph.cl.Close()
		}
		if ph.mb != nil {
			ph.mb.Close()
		}
		in := 0
		if ph.mb != nil {
			in = ph.mb.Stats().ToServer
		} else if ph.cl != nil {
			in = ph.cl.Written()
		}
		l.drainBalancer(ph, "clients", in)
		// The backends close before the balancer, and it reads what they
		// sent first: a backend's last reply (to the client's closing
		// packets) must reach the client's leg, where the checks look
		// for every datagram the backend logged.
		for _, b := range ph.backs {
			b.Close()
		}
		out := 0
		for _, s := range ph.socks {
			out += s.Written()
		}
		l.drainBalancer(ph, "backends", out)
		ph.bal.Close()
		st := ph.stats()
		toB := 0
		for _, n := range st.ToBackend {
			toB += n
		}
		want += in + toB + out + st.ToClient
		source = append(source, fmt.Sprintf("%s: %d to the balancer, %d balancer → backends, %d backends → balancer, %d balancer → client", ph.name, in, toB, out, st.ToClient))
	}
	e := expect{what: "UDP datagrams", want: want + testUncounted, units: func(m capture.Meta) int {
		if m.Proto == capture.ProtoUDP && len(m.Payload) > 0 {
			return 1
		}
		return 0
	}, source: "the NATs' and clients' counts of what they sent the balancers, the balancers' own, the backends' sockets': " + strings.Join(source, "; ")}
	pkts, complete, err := stopComplete(l.env, l.cap, e)
	if err != nil {
		return false, err
	}
	l.cap.AddSecrets(l.keylog.Bytes())
	for _, ph := range l.phases {
		l.correlate(ph, pkts)
	}
	if !complete {
		l.env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\").")
	}
	return complete, nil
}

// balancerDrain bounds how long finish waits for a balancer to read what
// the clients, or the backends, sent it before it closes.
const balancerDrain = 2 * time.Second

// drainBalancer waits, before the phase's balancer closes, until it has
// read the n datagrams sent it from one side — "clients" (the client or
// its NAT) or "backends" — all closed by now, counting those its retired
// instances read. Without the wait a last datagram is on the wire but
// never carried on, and the checks would blame the balancer for it. Seen
// both ways: a closing client's repeated CONNECTION_CLOSE, sent after the
// backend's qlog ended, never routed; a backend's reply 1.3 ms after the
// client's CONNECTION_CLOSE, captured on the backend leg and never carried
// to the client ("every backend qlog packet matches a captured datagram on
// the client leg" failed on it). A datagram lost before the balancer read
// it (at the restart mid-upload, in the old instance's queue) ends the
// wait at balancerDrain, noted in the log.
func (l *lbLab) drainBalancer(ph *lbPhase, from string, n int) {
	read, wait := func(s lb.Stats) int { return s.FromClients }, ph.bal.WaitFromClients
	if from == "backends" {
		read, wait = func(s lb.Stats) int { return s.FromBackends }, ph.bal.WaitFromBackends
	}
	for _, b := range ph.retired {
		n -= read(b.Stats())
	}
	ctx, cancel := context.WithTimeout(l.ctx, balancerDrain)
	defer cancel()
	if err := wait(ctx, n); err != nil {
		l.env.Logf("%s: the balancer did not read everything the %s sent before it closed: %v", ph.name, from, err)
	}
}

// backendLeg is a captured datagram between a balancer and a backend.
type backendLeg struct {
	pkt     *capture.Packet
	index   int
	toB     bool // balancer → backend
	backend int
	client  netip.AddrPort // the client its header names
	payload []byte         // the QUIC datagram inside
	// client is the client-leg datagram it carries (balancer → backend)
	// or becomes (backend → balancer), nil when none was captured.
	peer *Datagram
}

// routeAgreement is one client datagram's route recomputed from the
// datagram alone, against the backend the balancer sent it to.
type routeAgreement struct {
	d     *Datagram
	route lb.Route
	sent  int // the backend the captured encapsulated copy went to, -1: none
}

// correlate splits the phase's datagrams into the client leg and the
// backend legs, joins the client leg with the client's and the backends'
// qlogs, and comments every datagram.
func (l *lbLab) correlate(ph *lbPhase, pkts []*capture.Packet) {
	front := ph.bal.Front
	all := Datagrams(pkts, front, 8)
	for _, d := range all {
		other := peerOf(d, front)
		if i := ph.bal.BackendOf(other); i >= 0 {
			client, payload, err := lb.Decap(d.payload)
			leg := &backendLeg{pkt: d.Pkt, index: d.Index, toB: d.Dst == other, backend: i, client: client, payload: payload}
			if err != nil {
				leg.client = netip.AddrPort{}
			}
			ph.legs = append(ph.legs, leg)
			continue
		}
		ph.ds = append(ph.ds, d)
	}
	logs := LogsOf(ph.tracer.Role("client"), ph.tracer.Role("server"))
	if ph.cl != nil {
		logs.ClientWrites = ph.cl.Writes()
	}
	ph.corr = Correlate(ph.ds, front, logs, nil)
	plots(l.env, ph.ds, front)
	CommentDatagrams(ph.ds, front)
	l.pairLegs(ph)
	l.commentPhase(ph)
}

// pairLegs pairs each encapsulated datagram with the client-leg datagram
// of the same bytes, finds the stateless resets, and recomputes every
// client datagram's route.
func (l *lbLab) pairLegs(ph *lbPhase) {
	used := map[*Datagram]bool{}
	for _, g := range ph.legs {
		for _, d := range ph.ds {
			if used[d] || string(d.payload) != string(g.payload) || (g.toB && d.Src != g.client) || (!g.toB && d.Dst != g.client) {
				continue
			}
			if g.toB && d.Index > g.index || !g.toB && d.Index < g.index {
				continue
			}
			g.peer, used[d] = d, true
			break
		}
	}
	for _, g := range ph.legs {
		if !g.toB && ph.triggerOf(g, l.resetKey) != nil {
			ph.resets = append(ph.resets, g)
		}
	}
	for _, d := range ph.ds {
		if d.Dst != ph.bal.Front {
			continue
		}
		a := routeAgreement{d: d, route: ph.bal.Route(d.Src, d.payload), sent: -1}
		for _, g := range ph.legs {
			if g.toB && g.peer == d {
				a.sent = g.backend
			}
		}
		ph.routes = append(ph.routes, a)
	}
}

// triggerOf is the client datagram a backend's datagram answers when it
// is a stateless reset: the last one the balancer sent that backend from
// the same client before it, whose DCID's token (under the backends'
// shared key) are the reply's last 16 bytes; nil when it is not one.
func (ph *lbPhase) triggerOf(reset *backendLeg, key quic.StatelessResetKey) *Datagram {
	var last *Datagram
	for _, g := range ph.legs {
		if g.index > reset.index {
			break
		}
		if g.toB && g.backend == reset.backend && g.client == reset.client && g.peer != nil {
			last = g.peer
		}
	}
	if last == nil || len(reset.payload) < 21 || reset.payload[0]&0x80 != 0 {
		return nil
	}
	dcid, err := lb.DCID(last.payload, lbConfig.Len())
	if err != nil || resetToken(key[:], dcid) != [16]byte(reset.payload[len(reset.payload)-16:]) {
		return nil
	}
	return last
}

// commentPhase adds to every datagram of the phase what the balancer did
// with it and the connection's state at that moment.
func (l *lbLab) commentPhase(ph *lbPhase) {
	tag := fmt.Sprintf("[%s: balancer %s by %s]", ph.name, ph.bal.Front, ph.mode)
	firstMove := -1
	if len(ph.ds) > 0 && len(ph.moves) > 0 {
		for _, d := range ph.ds {
			if d.Src == ph.moves[0].to {
				firstMove = d.Index
				break
			}
		}
	}
	state := func(index int, at time.Time) string {
		s := "no connection yet"
		switch {
		case firstMove >= 0 && index >= firstMove:
			s = fmt.Sprintf("after the client's %s to %s", ph.moves[0].how, ph.moves[0].to)
		case ph.home >= 0:
			s = fmt.Sprintf("the connection lives on backend %d", ph.home+1)
		}
		if !ph.restartAt.IsZero() {
			if at.After(ph.restartAt) {
				s += "; the balancer's second instance (restarted, it kept nothing)"
			} else {
				s += "; the balancer's first instance"
			}
		}
		return s
	}
	for _, a := range ph.routes {
		r := a.route
		how := fmt.Sprintf("hash of the client's 4-tuple %s", a.d.Src)
		switch r.By {
		case lb.ByServerID:
			how = fmt.Sprintf("server ID %x decoded from DCID %x", r.ServerID, r.DCID)
		case lb.ByDCIDHash:
			how = fmt.Sprintf("hash of the client-chosen DCID %x (%s)", r.DCID, r.Why)
		}
		a.d.Pkt.Comment(fmt.Sprintf("%s balancer routes it to backend %d by %s; %s", tag, r.Backend+1, how, state(a.d.Index, a.d.Time))) // its block is the correlated comment's
	}
	for _, d := range ph.ds {
		if d.Src != ph.bal.Front {
			continue
		}
		from := "no backend's reply was captured before it"
		for _, g := range ph.legs {
			if !g.toB && g.peer == d {
				from = fmt.Sprintf("backend %d's reply (frame %d), decapsulated", g.backend+1, g.index+1)
			}
		}
		d.Pkt.Comment(fmt.Sprintf("%s balancer → client %s: %s; %s", tag, d.Dst, from, state(d.Index, d.Time))) // its block is the correlated comment's
	}
	for _, g := range ph.legs {
		var s string
		hdr := lb.EncapLen(g.client)
		if g.toB {
			s = fmt.Sprintf("%s balancer → backend %d: the client datagram from %s", tag, g.backend+1, g.client)
			if g.peer != nil {
				s += fmt.Sprintf(" (frame %d)", g.peer.Index+1)
			}
			s += fmt.Sprintf(", encapsulated behind a %d-byte header naming the client", hdr)
		} else {
			s = fmt.Sprintf("%s backend %d → balancer: a reply for %s, encapsulated behind a %d-byte header naming it", tag, g.backend+1, g.client, hdr)
			if trig := ph.triggerOf(g, l.resetKey); trig != nil {
				s += fmt.Sprintf("; a stateless reset: backend %d knows no connection with DCID %x (frame %d), and its last 16 bytes are that CID's token under the backends' shared reset key",
					g.backend+1, mustDCID(trig.payload), trig.Index+1)
			}
		}
		if hs := quicconn.ParseHeaders(g.payload, 8); len(hs) > 0 {
			s += fmt.Sprintf("; inside: %s DCID %s", packetTypeName(hs[0].Type), hs[0].DCID)
		}
		side, event := "balancer", ""
		if !g.toB {
			side = fmt.Sprintf("backend %d", g.backend+1)
			if ph.triggerOf(g, l.resetKey) != nil {
				event = "stateless reset"
			}
		}
		g.pkt.Comment(annotate.Append(s+"; "+state(g.index, g.pkt.Time), annotate.Block{}.Str(annotate.Side, side).Str(annotate.Event, event)))
	}
}

func mustDCID(b []byte) []byte {
	d, _ := lb.DCID(b, lbConfig.Len())
	return d
}

// judge makes the checks, metrics, ladders and the holding row.
func (l *lbLab) judge() {
	env := l.env
	a, b, c := l.phases[0], l.phases[1], l.phases[2]
	for _, ph := range []*lbPhase{a, b} {
		l.judgeLoss(ph)
	}
	l.judgeCID(c)
	disagree, total := 0, 0
	var which []string
	for _, ph := range l.phases {
		for _, r := range ph.routes {
			total++
			if r.sent != r.route.Backend {
				disagree++
				which = append(which, fmt.Sprintf("frame %d: recomputed backend %d, sent to %d", r.d.Index+1, r.route.Backend+1, r.sent+1))
			}
		}
	}
	maps := mapFields(reflect.TypeOf(lb.Balancer{}), reflect.TypeOf(lb.Stats{}))
	env.Check("the balancer keeps no per-connection table: each route is a function of the datagram alone",
		total > 0 && disagree == 0 && len(maps) == 0,
		"%d client datagrams' routes recomputed from the captured datagram and its source alone, %d disagree with the backend the balancer sent it to (%s); map fields in the balancer and its counters: %d (%s)",
		total, disagree, lab.List(which), len(maps), lab.List(maps))
	env.Metric("routes_recomputed_count", float64(total))
	env.Note("The same lesson as http/load-balancing, one layer down: hashing the 4-tuple is round-robin for a moving client — " +
		"its next packet lands on a backend that never saw it — and sticking to a backend needs the packets to say which: " +
		"the HTTP balancer read a sticky cookie, this one reads the server ID the backend wrote into every connection ID " +
		"(QUIC-LB's plaintext algorithm; a deployment would encrypt it), so the balancer itself needs no memory.")
	l.ladder(a)
	l.ladder(c)
	env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("a connection per client on one backend (backend %d of %d took all %d of its datagrams through a rebinding and a migration); the balancer keeps nothing: no map, %d routes recomputed from the datagrams alone",
			c.home+1, lbBackends, sumInts(c.stats().ToBackend), total),
		ClientCarries: fmt.Sprintf("its server's ID inside every connection ID (%d bytes of the %d-byte CID, %d short-header datagrams decoded)",
			lbConfig.ServerIDLen, lbConfig.Len(), c.stats().ServerID),
		RestartLoses: fmt.Sprintf("nothing when the balancer restarts: a new instance took over after %d datagrams and routed the next %d to the same backend; a backend restart would lose its connections",
			c.restartedAfter, sumInts(c.stats().ToBackend)-c.restartedAfter),
		CarriedBytes: lbConfig.ServerIDLen,
		CarriedPer:   "per datagram (the server ID in the destination connection ID)",
	})
}

// judgeLoss judges a 4-tuple-hash phase: the moved client lands on
// another backend, which answers with a stateless reset, and the
// connection is lost.
func (l *lbLab) judgeLoss(ph *lbPhase) {
	env := l.env
	last := lbMove{backend: -1}
	if len(ph.moves) > 0 {
		last = ph.moves[len(ph.moves)-1]
	}
	st := ph.stats()
	var reset, trig = (*backendLeg)(nil), (*Datagram)(nil)
	for _, g := range ph.resets {
		if t := ph.triggerOf(g, l.resetKey); t != nil {
			reset, trig = g, t
			break
		}
	}
	var sr *quic.StatelessResetError
	var idle *quic.IdleTimeoutError
	seen := "the connection did not end"
	switch {
	case errors.As(ph.cause, &sr):
		seen = "a stateless reset"
	case errors.As(ph.cause, &idle):
		seen = "the idle timeout"
	case ph.cause != nil:
		seen = ph.cause.Error()
	}
	env.Check(fmt.Sprintf("%s: the moved client's packets go to another backend", ph.name),
		ph.home >= 0 && last.backend >= 0 && last.backend != ph.home && st.ToBackend[last.backend] > 0,
		"%d path change(s) (%s); the last, %s %s → %s, hashes to backend %d, the connection lives on backend %d; datagrams per backend: %v",
		len(ph.moves), describeMoves(ph.moves), last.how, last.from, last.to, last.backend+1, ph.home+1, st.ToBackend)
	detail := fmt.Sprintf("stateless reset from backend %d in frame %d answering frame %d (its last 16 bytes the token of that DCID under the shared key: %t)",
		backendNo(reset), legFrame(reset), frameNo(trig), trig != nil)
	if ph.mb != nil {
		env.Check(fmt.Sprintf("%s: that backend does not know the connection and sends a stateless reset; the client loses the connection", ph.name),
			reset != nil && sr != nil && ph.err != nil,
			"client saw: %s (%v); transfer error: %s; %s", seen, ph.cause, lab.ErrText(ph.err), detail)
	} else {
		env.Check(fmt.Sprintf("%s: that backend does not know the connection and answers the probe with a stateless reset; the client cannot move", ph.name),
			reset != nil && ph.err != nil,
			"probe of the new path: %v; %s; the new path's socket knows no reset token of the connection, so the client ignores it; "+
				"the connection on its old path afterwards: %s", ph.err, detail, errOr(ph.oldPath, "still answers an echo"))
	}
	env.Metric(ph.name+"_path_changes_count", float64(len(ph.moves)))
}

// judgeCID judges the connection-ID phase: the connection stays on its
// backend through the rebinding and the migration and completes.
func (l *lbLab) judgeCID(ph *lbPhase) {
	env := l.env
	st := ph.stats()
	after := sumInts(st.ToBackend) - ph.restartedAfter
	env.Check("cid: a restart of the balancer mid-upload loses nothing",
		ph.restartErr == nil && len(ph.retired) == 1 && ph.restartedAfter > 0 && after > 0 && ph.err == nil && ph.res.Match,
		"the first instance routed %d datagrams, the new one on the same address %d more, all to backend %d: %t; restart error: %s; the upload completed byte-exact: %t",
		ph.restartedAfter, after, ph.home+1, st.ToBackend[max(ph.home, 0)] == sumInts(st.ToBackend), lab.ErrText(ph.restartErr), ph.err == nil && ph.res.Match)
	others := 0
	for i, n := range st.ToBackend {
		if i != ph.home {
			others += n
		}
	}
	hopOK := len(ph.hops) == 1 && ph.hops[0].probe == nil && ph.hops[0].sw == nil
	env.Check("cid: the connection stays on its backend through a NAT rebinding and an active migration, byte-exact",
		ph.err == nil && ph.res.Match && len(ph.rebind) == 1 && hopOK && ph.home >= 0 && others == 0 && st.ToBackend[ph.home] > 0,
		"sent %d bytes, backend counted %d, sha256 match %t, error: %s; moves: %s; datagrams per backend: %s (home backend %d)",
		ph.res.Sent, ph.res.Received, ph.res.Match, lab.ErrText(ph.err), describeMoves(ph.moves), lab.List(st.ToBackend), ph.home+1)
	// The client chose the DCID of its first Initials; every other
	// datagram carries a CID the backend issued.
	chosen, other := 0, 0
	first := firstOf(ph.ds, func(d *Datagram) bool { return d.Dst == ph.bal.Front && d.Type == "initial" })
	for _, a := range ph.routes {
		if first != nil && a.d.DCID == first.DCID {
			chosen++
		} else {
			other++
		}
	}
	badCIDs := 0
	for _, e := range ph.tracer.Role("server").Packets() {
		if !e.Sent {
			continue
		}
		for _, id := range append(e.NewCIDs, e.SCID) {
			if id == "" {
				continue
			}
			b, _ := hex.DecodeString(id)
			if sid, err := lbConfig.Decode(b); err != nil || string(sid) != string(lbConfig.ServerID(ph.home)) {
				badCIDs++
			}
		}
	}
	env.Check("cid: every connection ID the backend issued carries its server ID, and the balancer routes every datagram carrying one by it",
		badCIDs == 0 && st.ServerID == other && st.DCIDHash == chosen && chosen > 0 && st.TupleHash == 0,
		"connection IDs the backend issued (SCIDs, NEW_CONNECTION_ID) without its server ID %x: %d; client datagrams routed by server ID %d (captured with a backend-issued DCID: %d), by a hash of the client-chosen DCID %d (captured: %d, its first Initials), by 4-tuple %d",
		lbConfig.ServerID(ph.home), badCIDs, st.ServerID, other, st.DCIDHash, chosen, st.TupleHash)
	c := ph.corr
	unwritten := neverWritten(LogsOf(ph.tracer.Role("client"), nil).Client, ph.cl.Writes())
	env.Check("cid: every backend qlog packet matches a captured datagram on the client leg",
		c.ServerTotal > 0 && c.ServerMatched == c.ServerTotal,
		"backend %d of %d packet records (sent and received) matched; client %d of %d (%d logged as sent that its sockets never wrote; "+
			"the rest written but lost before the capture's leg, in the NAT's socket buffer, as UDP may); first unmatched: client %s, backend %s",
		c.ServerMatched, c.ServerTotal, c.ClientMatched, c.ClientTotal, unwritten,
		firstUnmatched(ph.ds, LogsOf(ph.tracer.Role("client"), nil).Client), firstUnmatched(ph.ds, LogsOf(nil, ph.tracer.Role("server")).Server))
	env.Metric("cid_logged_never_written_count", float64(unwritten))
	env.Metric("cid_transfer_bytes", float64(ph.res.Received))
	env.Metric("cid_server_id_routed_count", float64(st.ServerID))
}

// ladder draws a phase's connection between the client leg and the
// backends, every row a captured datagram.
func (l *lbLab) ladder(ph *lbPhase) {
	lad := l.env.Ladder(fmt.Sprintf("%s (as captured between the client and the balancer)", ph.title), "client", "balancer → backends")
	var r rows
	front := ph.bal.Front
	routeOf := func(d *Datagram) string {
		for _, a := range ph.routes {
			if a.d == d {
				return fmt.Sprintf("→ backend %d (%s)", a.route.Backend+1, a.route.By)
			}
		}
		return ""
	}
	if d := firstOf(ph.ds, func(d *Datagram) bool { return d.Dst == front && d.Type == "initial" }); d != nil {
		r.send(d.Index, "Initial DCID "+cidShort(d.DCID), d.Src.String(), routeOf(d))
	}
	if d := firstOf(ph.ds, func(d *Datagram) bool { return d.Dst == front && !d.Long }); d != nil {
		r.send(d.Index, "1-RTT DCID "+cidShort(d.DCID), "", routeOf(d))
	}
	// Each move shows as the first datagram from a source the balancer
	// had not seen (through a NAT, the NAT's new binding).
	var seen []netip.AddrPort
	for _, d := range ph.ds {
		if d.Dst != front || slices.Contains(seen, d.Src) {
			continue
		}
		seen = append(seen, d.Src)
		if k := len(seen) - 2; k >= 0 && k < len(ph.moves) {
			r.state(d.Index, fmt.Sprintf("%s: now %s", ph.moves[k].how, d.Src), "")
			r.send(d.Index, fmt.Sprintf("%s DCID %s", packetTypeName(d.Type), cidShort(d.DCID)), "", routeOf(d))
		}
	}
	if !ph.restartAt.IsZero() {
		if d := firstOf(ph.ds, func(d *Datagram) bool { return d.Dst == front && d.Time.After(ph.restartAt) }); d != nil {
			r.state(d.Index, "", "balancer restarted: a new instance")
			r.send(d.Index, fmt.Sprintf("%s DCID %s", packetTypeName(d.Type), cidShort(d.DCID)), "", routeOf(d))
		}
	}
	if len(ph.resets) > 0 {
		g := ph.resets[0]
		lost := "connection lost"
		if ph.mb == nil {
			lost = "ignored on the new path"
		}
		if d := g.peer; d != nil {
			r.reply(d.Index, fmt.Sprintf("stateless reset from backend %d (%d in all)", g.backend+1, len(ph.resets)), lost, "")
		}
	}
	if fin := firstOf(ph.ds, func(d *Datagram) bool { return d.Dst == front && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", ph.res.Match), fmt.Sprintf("%d bytes on backend %d", ph.res.Received, ph.home+1))
	}
	r.draw(lad)
}

func describeMoves(ms []lbMove) string {
	var s []string
	for _, m := range ms {
		d := fmt.Sprintf("%s %s → %s", m.how, m.from, m.to)
		if m.backend >= 0 {
			d += fmt.Sprintf(" (hashes to backend %d)", m.backend+1)
		}
		s = append(s, d)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// mapFields lists the map-typed fields of struct types.
func mapFields(ts ...reflect.Type) []string {
	var out []string
	for _, t := range ts {
		for i := range t.NumField() {
			if f := t.Field(i); f.Type.Kind() == reflect.Map {
				out = append(out, t.Name()+"."+f.Name)
			}
		}
	}
	return out
}

func sumInts(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// neverWritten counts the packet_sent records no datagram the
// endpoint's sockets wrote took (see recordsOfWrites).
func neverWritten(events []PacketEvent, writes []Write) int {
	taken := map[*PacketEvent]bool{}
	for _, w := range recordsOfWrites(events, writes) {
		for _, e := range w {
			taken[e] = true
		}
	}
	n := 0
	for i := range events {
		if events[i].Sent && !taken[&events[i]] {
			n++
		}
	}
	return n
}

// firstUnmatched describes the first of events no captured packet took.
func firstUnmatched(ds []*Datagram, events []PacketEvent) string {
	seen := map[pnKey]bool{}
	for _, d := range ds {
		for _, p := range d.Parts {
			for _, e := range []*PacketEvent{p.Sent, p.Recv} {
				if e != nil {
					seen[pnKey{space(e.Type) + fmt.Sprint(e.Sent), e.PN}] = true
				}
			}
		}
	}
	for _, e := range events {
		if !seen[pnKey{space(e.Type) + fmt.Sprint(e.Sent), e.PN}] {
			return fmt.Sprintf("%s pn %d sent %t %v on %s→%s", e.Type, e.PN, e.Sent, e.Frames, e.Local, e.Remote)
		}
	}
	return "none"
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func backendNo(g *backendLeg) int {
	if g == nil {
		return 0
	}
	return g.backend + 1
}

func legFrame(g *backendLeg) int {
	if g == nil {
		return 0
	}
	return g.index + 1
}
