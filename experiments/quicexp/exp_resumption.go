package quicexp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
)

// quic/resumption: a first connection takes a session ticket; the second
// resumes with it and sends its requests as 0-RTT; an attacker replays
// that first flight; the server restarts keeping its ticket key, then
// without it.

// The requests of quic/resumption: a read-only one and a state-changing
// one, both sent in the resumed connection's 0-RTT.
const (
	resumeGet = "GET balance"
	resumePut = "PUT balance 42"
)

// resumeRequests are what a connection of quic/resumption asks: both
// requests on the first two, a GET after a restart.
func resumeRequests(s resumeStep) []string {
	if s <= stepResumed {
		return []string{resumeGet, resumePut}
	}
	return []string{resumeGet}
}

// resumeStep names the connections of quic/resumption, in order.
type resumeStep int

const (
	stepFirst   resumeStep = iota // no ticket: a full handshake, takes a ticket
	stepResumed                   // resumes with the ticket, requests in 0-RTT
	stepReplay                    // the attacker replays stepResumed's first flight
	stepKeyKept                   // after a restart keeping the ticket key
	stepKeyLost                   // after a restart with a fresh ticket key
	resumeSteps
)

func (s resumeStep) String() string {
	return [...]string{"first connection", "resumed connection", "attacker's replay", "after a restart keeping the ticket key",
		"after a restart with a fresh ticket key"}[s]
}

// resumeConn is one connection of quic/resumption as the client (or the
// attacker) saw it.
type resumeConn struct {
	step    resumeStep
	cl      *quicconn.Client // nil for the replay
	local   netip.AddrPort
	answers []string
	err     error
	// used0RTT and resumed are the client's ConnectionState once its
	// handshake completed.
	used0RTT, resumed bool
	// sent is what the attacker sent (the replay only).
	sent int
	// offered is the session the client offered to resume, nil: none.
	offered *tls.SessionState
}

// resumeLab is quic/resumption's lab: one server address, a server
// instance per life, the clients' shared ticket cache.
type resumeLab struct {
	env    *lab.Env
	ctx    context.Context
	keylog *lockedBuffer // the clients' TLS secrets
	// srvKeylog is the servers': see addEarlySecrets.
	srvKeylog *lockedBuffer
	tracer    *quicconn.Tracer
	srvs      []*quicconn.EarlyServer // every instance, in order; the last is running
	cache     *quicconn.TicketCache
	cap       *capture.Capture
	conns     [resumeSteps]*resumeConn
	replay    *net.UDPConn
	attackN   int
}

// resumeHandshakeTimeout abandons a handshake the peer went silent in:
// the replayed connection, which the attacker cannot finish.
const resumeHandshakeTimeout = stepTimeout / 8

func (r *resumeLab) srv() *quicconn.EarlyServer { return r.srvs[len(r.srvs)-1] }

// runResumption is quic/resumption.
func runResumption(env *lab.Env) error {
	r, err := setUpResumption(env)
	if err != nil {
		return err
	}
	if err := r.connectFirst(); err != nil {
		return err
	}
	if err := r.connectResumed(); err != nil {
		return err
	}
	if err := r.restart(true); err != nil {
		return err
	}
	if err := r.replayFirstFlight(); err != nil {
		return err
	}
	if err := r.connectAfterRestart(stepKeyKept); err != nil {
		return err
	}
	if err := r.restart(false); err != nil {
		return err
	}
	if err := r.connectAfterRestart(stepKeyLost); err != nil {
		return err
	}
	ev, err := r.finish()
	if err != nil || ev == nil {
		return err
	}
	r.judge(ev)
	return nil
}

// setUpResumption starts the first server (its ticket key from the
// seed), the capture of its port and the clients' ticket cache.
func setUpResumption(env *lab.Env) (*resumeLab, error) {
	short := "resumption"
	dir := envDir(env, short)
	if _, err := quicconn.RemoveQlogs(dir, short); err != nil {
		return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
	}
	r := &resumeLab{env: env, keylog: &lockedBuffer{}, srvKeylog: &lockedBuffer{}, tracer: &quicconn.Tracer{Dir: dir, Prefix: short}, cache: quicconn.NewTicketCache()}
	env.Cleanup(func() {
		if cut := r.tracer.Finish(qlogFinishWait); cut > 0 {
			env.Note("%d qlog file(s) were completed before quic-go closed their connection (the run stopped early)", cut)
		}
	})
	var key [32]byte
	io.ReadFull(env.Bytes("ticket key"), key[:])
	if err := r.start("127.0.0.1:0", nil, &key); err != nil {
		return nil, err
	}
	var err error
	if r.cap, err = env.Capture(captureOptions(r.srv().Addr.Port(), nil)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, stepTimeout)
	env.Cleanup(cancel)
	r.ctx = ctx
	return r, nil
}

// start starts a server instance on addr.
func (r *resumeLab) start(addr string, cert *quicconn.EarlyServer, key *[32]byte) error {
	cfg := quicconn.EarlyServerConfig{Addr: addr, TicketKey: key, KeyLog: r.srvKeylog, Tracer: r.tracer, IdleTimeout: stepTimeout,
		HandshakeTimeout: resumeHandshakeTimeout, Rand: r.env.Bytes(fmt.Sprintf("server %d connection IDs", len(r.srvs))), RecordWrites: true}
	if cert != nil {
		cfg.Cert = &cert.Certificate
	}
	s, err := quicconn.NewEarlyServer(cfg)
	if err != nil {
		return err
	}
	r.env.Cleanup(func() { s.Close() })
	r.srvs = append(r.srvs, s)
	return nil
}

// restart closes the running server and starts a new instance on the
// same address with the same certificate, with its ticket key or a
// fresh one.
func (r *resumeLab) restart(keepKey bool) error {
	old := r.srv()
	old.Close()
	var key *[32]byte
	if keepKey {
		k := old.TicketKey
		key = &k
	}
	if err := r.start(old.Addr.String(), old, key); err != nil {
		return err
	}
	r.env.Logf("server restarted on %s (ticket key kept: %t)", old.Addr, keepKey)
	return nil
}

// dial opens a client connection with the shared ticket cache.
// A client that offers a ticket has the server's replies held until its
// requests have left in 0-RTT and the server has read them (see
// quicconn.EarlyClientConfig.HoldReplies): on loopback the round trip
// is shorter than a goroutine's scheduling delay.
func (r *resumeLab) dial(step resumeStep) (*resumeConn, error) {
	srv := r.srv()
	cfg := quicconn.EarlyClientConfig{Server: srv.Addr, Trust: srv.Cert, KeyLog: r.keylog,
		Tracer: r.tracer, Sessions: r.cache, IdleTimeout: stepTimeout, Rand: r.env.Bytes(fmt.Sprintf("client %d connection IDs", step)),
		RecordWrites: true, KeepFirst: 8}
	if early := resumeRequests(step); step == stepResumed || step == stepKeyKept {
		cfg.HoldReplies = stepTimeout / 2
		cfg.ReleaseWhen = func(ctx context.Context, local netip.AddrPort) error { return srv.WaitRead(ctx, local, len(early)) }
	}
	cl, err := quicconn.DialEarly(r.ctx, cfg)
	if err != nil {
		return nil, err
	}
	r.env.Cleanup(func() { cl.Close() })
	c := &resumeConn{step: step, cl: cl, local: cl.LocalAddr(), offered: r.cache.Offered()}
	r.conns[step] = c
	return c, nil
}

// settle waits for the handshake, records what the client's TLS state
// says, and closes the connection once both ends' qlogs are complete.
func (r *resumeLab) settle(c *resumeConn) error {
	select {
	case <-c.cl.Conn.HandshakeComplete():
	case <-r.ctx.Done():
		return fmt.Errorf("%w: %s: handshake: %w", quicconn.ErrDial, c.step, context.Cause(r.ctx))
	}
	st := c.cl.Conn.ConnectionState()
	c.used0RTT, c.resumed = st.Used0RTT, st.TLS.DidResume
	c.cl.Conn.CloseWithError(0, "done")
	return r.waitClosed(func(t *quicconn.ConnTrace) bool { return t.Started().Local == c.local || t.Started().Remote == c.local })
}

// waitClosed waits until the traces match reports true for are done.
func (r *resumeLab) waitClosed(match func(*quicconn.ConnTrace) bool) error {
	for _, t := range r.tracer.Conns() {
		if !match(t) {
			continue
		}
		select {
		case <-t.Done():
		case <-r.ctx.Done():
			return fmt.Errorf("%w: waiting for the %s's qlog: %w", quicconn.ErrTransfer, t.Role, context.Cause(r.ctx))
		}
	}
	return nil
}

// connectFirst is the first connection: a full handshake, the requests
// in 1-RTT, and the session ticket the server sends after it.
func (r *resumeLab) connectFirst() error {
	c, err := r.dial(stepFirst)
	if err != nil {
		return err
	}
	c.answers, c.err = c.cl.Requests(r.ctx, resumeRequests(stepFirst)...)
	if err := r.cache.WaitTickets(r.ctx, 1); err != nil {
		return err
	}
	return r.settle(c)
}

// connectResumed resumes with the ticket and sends both requests before
// the handshake completes: as 0-RTT data.
func (r *resumeLab) connectResumed() error {
	c, err := r.dial(stepResumed)
	if err != nil {
		return err
	}
	c.answers, c.err = c.cl.Requests(r.ctx, resumeRequests(stepResumed)...)
	if err := r.cache.WaitTickets(r.ctx, 2); err != nil {
		return err
	}
	return r.settle(c)
}

// connectAfterRestart resumes against a restarted server: with the key
// kept it resumes and sends its GET in 0-RTT; with a fresh key it can
// only do a full handshake, so it asks after the handshake.
func (r *resumeLab) connectAfterRestart(step resumeStep) error {
	c, err := r.dial(step)
	if err != nil {
		return err
	}
	if step == stepKeyLost {
		// The server cannot open the ticket: it rejects 0-RTT, and the
		// connection is usable once the full handshake is done.
		conn, err := c.cl.Conn.NextConnection(r.ctx)
		if err != nil {
			return fmt.Errorf("%w: %s: handshake: %w", quicconn.ErrDial, step, err)
		}
		c.cl.Conn = conn
	}
	c.answers, c.err = c.cl.Requests(r.ctx, resumeRequests(step)...)
	return r.settle(c)
}

// replayFirstFlight is the attacker: from a UDP socket of its own it
// sends the server byte-identical copies of the resumed connection's
// first flight (Initial and 0-RTT), then waits until the server has
// handled both replayed requests — answered or given up when the
// handshake timed out, as a replay can never finish it.
func (r *resumeLab) replayFirstFlight() error {
	flight := r.conns[stepResumed].cl.FirstFlight()
	sock, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback1, 0)))
	if err != nil {
		return err
	}
	r.env.Cleanup(func() { sock.Close() })
	r.replay = sock
	c := &resumeConn{step: stepReplay, local: sock.LocalAddr().(*net.UDPAddr).AddrPort()}
	r.conns[stepReplay] = c
	for _, d := range flight {
		if _, err := sock.WriteToUDPAddrPort(d, r.srv().Addr); err != nil {
			return fmt.Errorf("%w: replaying: %w", quicconn.ErrTransfer, err)
		}
		c.sent++
	}
	srv := r.srv()
	err = srv.WaitRequests(r.ctx, func(reqs []quicconn.Request) bool {
		return len(requestsFrom(reqs, c.local)) >= 2
	})
	if err != nil {
		return err
	}
	return r.waitClosed(func(t *quicconn.ConnTrace) bool { return t.Role == "server" && t.Started().Remote == c.local })
}

// requestsFrom are the requests that came from addr.
func requestsFrom(reqs []quicconn.Request, addr netip.AddrPort) []quicconn.Request {
	var out []quicconn.Request
	for _, q := range reqs {
		if q.Remote == addr {
			out = append(out, q)
		}
	}
	return out
}

// resumeEvidence is quic/resumption's record: the capture's datagrams,
// each connection's share of them and its measurements.
type resumeEvidence struct {
	ds       []*Datagram
	per      [resumeSteps]*connFacts
	reqs     []quicconn.Request
	keyLines int
}

// finish closes every endpoint, stops the capture once it holds what the
// sockets counted, completes the key log with the 0-RTT secrets,
// correlates each connection's datagrams with its qlogs and comments
// every one. A nil evidence: the capture is short.
func (r *resumeLab) finish() (*resumeEvidence, error) {
	for _, c := range r.conns {
		if c != nil && c.cl != nil {
			c.cl.Close()
		}
	}
	if r.replay != nil {
		r.replay.Close()
	}
	for _, s := range r.srvs {
		s.Close()
	}
	srvAddr := r.srv().Addr
	want, source := 0, []string{}
	for i, s := range r.srvs {
		want += s.Written()
		source = append(source, fmt.Sprintf("server instance %d: %d", i+1, s.Written()))
	}
	for _, c := range r.conns {
		n := c.sent
		if c.cl != nil {
			n = c.cl.Written()
		}
		want += n
		source = append(source, fmt.Sprintf("%s: %d", c.step, n))
	}
	e := expect{what: "QUIC datagrams", want: want + testUncounted, units: udpTo(srvAddr.Port()),
		source: "the sockets' counts of datagrams written: " + strings.Join(source, ", ")}
	pkts, complete, err := stopComplete(r.env, r.cap, e)
	if err != nil {
		return nil, err
	}
	ev := &resumeEvidence{reqs: r.srvs[len(r.srvs)-1].Requests()}
	for _, s := range r.srvs[:len(r.srvs)-1] {
		ev.reqs = append(s.Requests(), ev.reqs...)
	}
	ev.keyLines = r.addEarlySecrets()
	ev.ds = Datagrams(pkts, srvAddr, 8)
	r.correlate(ev)
	plots(r.env, ev.ds, srvAddr)
	if !complete {
		r.env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\").")
		return nil, nil
	}
	return ev, nil
}

// addEarlySecrets embeds the key log with a CLIENT_EARLY_TRAFFIC_SECRET
// line for each connection that offered a ticket, and so sent 0-RTT
// (Go's crypto/tls logs none),
// so Wireshark reads the 0-RTT packets, and returns how many it added.
// The clients log every secret of their connections; a server's line is
// added only for a ClientHello no client logged. Wireshark keys secrets
// by the ClientHello's random, and the replay reuses the resumed
// connection's: the secrets of the server's replayed handshake would
// replace the genuine ones, so they are left out, and the server's
// Handshake and 1-RTT packets to the attacker stay encrypted.
func (r *resumeLab) addEarlySecrets() int {
	n := 0
	for _, c := range r.conns {
		if c == nil || c.cl == nil || c.offered == nil {
			continue
		}
		line, err := quicconn.EarlySecretLog(c.cl.InitialFlight(), c.offered)
		if err != nil {
			r.env.Logf("%s: no 0-RTT secret: %v", c.step, err)
			continue
		}
		r.keylog.Write([]byte(line))
		n++
	}
	log := r.keylog.Bytes()
	randoms := map[string]bool{}
	for _, l := range strings.Split(string(log), "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			randoms[f[1]] = true
		}
	}
	for _, l := range strings.Split(string(r.srvKeylog.Bytes()), "\n") {
		if f := strings.Fields(l); len(f) == 3 && !randoms[f[1]] {
			log = append(log, l+"\n"...)
		}
	}
	r.cap.AddSecrets(log)
	return n
}

// connFacts are one connection's datagrams and what the capture (with
// the qlog records matched to it) measures of it.
type connFacts struct {
	step resumeStep
	peer netip.AddrPort // the client's (or attacker's) address
	ds   []*Datagram
	corr Correlation
	// Handshake bytes: the Initial and Handshake packets, each direction
	// (padding and retransmissions included), and the TLS handshake bytes
	// they carried (their CRYPTO streams, each byte once, by the sender's
	// qlog); zeroRTT the 0-RTT packets' bytes.
	cliHS, srvHS, cliTLS, srvTLS, zeroRTT int
	// firstData is the client's first datagram carrying application data
	// (a STREAM frame, by its qlog), dataType the packet type carrying it,
	// flights the server flights the client had received before it (the
	// round trips it waited; see serverFlights).
	firstData *Datagram
	dataType  string
	flights   int
	// answer is the server's first datagram carrying application data;
	// done the one carrying HANDSHAKE_DONE (the handshake confirmed).
	answer, done *Datagram
	// ticketCrypto is the CRYPTO bytes the server sent in 1-RTT packets
	// (the NewSessionTicket message).
	ticketCrypto int
}

func (f *connFacts) hsBytes() int { return f.cliHS + f.srvHS }

func (f *connFacts) tlsBytes() int { return f.cliTLS + f.srvTLS }

// correlate splits the datagrams by connection, joins each connection's
// with its qlogs and comments every datagram.
func (r *resumeLab) correlate(ev *resumeEvidence) {
	srv := r.srv().Addr
	var writes []quicconn.Write
	for _, s := range r.srvs {
		writes = append(writes, s.Writes()...)
	}
	for _, c := range r.conns {
		f := &connFacts{step: c.step, peer: c.local}
		for _, d := range ev.ds {
			if peerOf(d, srv) == c.local {
				f.ds = append(f.ds, d)
			}
		}
		var cli, st *quicconn.ConnTrace
		for _, t := range r.tracer.Conns() {
			switch {
			case t.Role == "client" && t.Started().Local == c.local:
				cli = t
			case t.Role == "server" && t.Started().Remote == c.local:
				st = t
			}
		}
		logs := LogsOf(cli, st)
		if c.cl != nil {
			logs.ClientWrites = c.cl.Writes()
		}
		for _, w := range writes {
			if w.To == c.local {
				logs.ServerWrites = append(logs.ServerWrites, w)
			}
		}
		if c.step == stepReplay && ev.per[stepResumed] != nil {
			markReplays(f.ds, ev.per[stepResumed].ds)
		}
		f.corr = Correlate(f.ds, srv, logs, nil)
		f.measure(srv)
		ev.per[c.step] = f
	}
	CommentDatagrams(ev.ds, srv)
	for _, f := range ev.per {
		f.comment(srv, len(r.cache.Tickets()))
	}
}

// markReplays links each replayed datagram to the original with the
// same bytes and gives its packets the original's sender record.
func markReplays(replayed, originals []*Datagram) {
	for _, d := range replayed {
		for _, o := range originals {
			if o.Src == d.Dst || !slices.Equal(o.payload, d.payload) {
				continue
			}
			d.CopyOf = o
			for k := range d.Parts {
				if k < len(o.Parts) {
					d.Parts[k].Sent = o.Parts[k].Sent
				}
			}
			break
		}
	}
}

// tlsKey is a direction and a packet number space of CRYPTO data.
type tlsKey struct {
	toServer bool
	space    string
}

// measure reads the connection's handshake from its datagrams. The TLS
// handshake bytes are each direction's CRYPTO streams, Initial and
// Handshake, to their furthest offset: the messages, once, however often
// a lost or late packet made the sender retransmit them.
func (f *connFacts) measure(srv netip.AddrPort) {
	ends := map[tlsKey]int{}
	defer func() {
		for k, n := range ends {
			if k.toServer {
				f.cliTLS += n
			} else {
				f.srvTLS += n
			}
		}
	}()
	for _, d := range f.ds {
		toSrv := d.Dst == srv
		for _, p := range d.Parts {
			switch {
			case p.Type == "initial" || p.Type == "handshake":
				if toSrv {
					f.cliHS += p.Len
				} else {
					f.srvHS += p.Len
				}
			case p.Type == "0RTT":
				f.zeroRTT += p.Len
			}
			e := p.Sent
			if e == nil {
				continue
			}
			if p.Type == "initial" || p.Type == "handshake" {
				k := tlsKey{toSrv, p.Type}
				ends[k] = max(ends[k], cryptoEnd(e.Detail))
			}
			if !toSrv && p.Type == "1RTT" {
				f.ticketCrypto += cryptoBytes(e.Detail)
			}
			if !toSrv && f.done == nil && slices.Contains(e.Frames, "HANDSHAKE_DONE") {
				f.done = d
			}
			if slices.Contains(e.Frames, "STREAM") {
				if toSrv && f.firstData == nil {
					f.firstData, f.dataType = d, p.Type
				}
				if !toSrv && f.answer == nil {
					f.answer = d
				}
			}
		}
	}
	if f.firstData != nil {
		f.flights = serverFlights(f.ds[:slices.Index(f.ds, f.firstData)], srv, dataSent(f.firstData))
	}
}

// dataSent is the client's record of the first packet of d carrying
// STREAM data.
func dataSent(d *Datagram) *PacketEvent {
	for _, p := range d.Parts {
		if p.Sent != nil && slices.Contains(p.Sent.Frames, "STREAM") {
			return p.Sent
		}
	}
	return nil
}

// serverFlights counts the runs of consecutive server datagrams in ds
// that the client had received before it sent (by its qlog, whose
// records before) — the round trips that waited. A datagram captured
// before the request but received by the client after it sent the
// request is not waited for: on loopback the server's first flight can
// pass the client's own 0-RTT packet.
func serverFlights(ds []*Datagram, srv netip.AddrPort, sent *PacketEvent) int {
	n, inRun := 0, false
	for _, d := range ds {
		if d.Src != srv {
			inRun = false
			continue
		}
		var recv *PacketEvent
		for _, p := range d.Parts {
			if p.Recv != nil {
				recv = p.Recv
				break
			}
		}
		if sent != nil && (recv == nil || recv.Seq > sent.Seq) {
			continue
		}
		if !inRun {
			n++
		}
		inRun = true
	}
	return n
}

// cryptoBytes sums the lengths of the CRYPTO frames a qlog record
// describes ("CRYPTO off 0 len 233").
func cryptoBytes(detail []string) int {
	n := 0
	for _, s := range detail {
		var off, l int
		if _, err := fmt.Sscanf(s, "CRYPTO off %d len %d", &off, &l); err == nil {
			n += l
		}
	}
	return n
}

// cryptoEnd is the furthest offset the CRYPTO frames a qlog record
// describes reach ("CRYPTO off 69 len 1151" reaches 1220).
func cryptoEnd(detail []string) int {
	n := 0
	for _, s := range detail {
		var off, l int
		if _, err := fmt.Sscanf(s, "CRYPTO off %d len %d", &off, &l); err == nil {
			n = max(n, off+l)
		}
	}
	return n
}

// ms since the connection's first datagram, -1 when d is nil.
func (f *connFacts) since(d *Datagram) float64 {
	if d == nil || len(f.ds) == 0 {
		return -1
	}
	return ms(d.Time.Sub(f.ds[0].Time))
}

// comment adds to every datagram of the connection the connection's
// state at that moment: which connection it is, whether its handshake is
// confirmed yet (the server's HANDSHAKE_DONE, in capture order), and what
// 0-RTT data means there.
func (f *connFacts) comment(srv netip.AddrPort, tickets int) {
	for _, d := range f.ds {
		state := "handshake in progress (the server has not yet sent HANDSHAKE_DONE)"
		if f.done != nil && d.Index > f.done.Index {
			state = fmt.Sprintf("handshake confirmed (HANDSHAKE_DONE in frame %d)", f.done.Index+1)
		} else if f.done != nil && d == f.done {
			state = "the server confirms the handshake: HANDSHAKE_DONE"
		}
		if f.step == stepReplay {
			state = "the attacker cannot finish this handshake: it has no keys (nor does Wireshark: see the capture's key log)"
			if d.CopyOf != nil {
				state = fmt.Sprintf("the attacker's byte-identical replay of frame %d (the resumed connection's first flight) from a socket of its own; ", d.CopyOf.Index+1) + state
			} else {
				state = "the server answers the replay's sender; " + state
			}
		}
		if d.Src == f.peer && len(d.Parts) > 0 && d.Parts[0].Sent == nil && d.CopyOf == nil {
			for _, o := range f.ds {
				if o.Index < d.Index && o.Src == d.Src && slices.Equal(o.payload, d.payload) {
					state += fmt.Sprintf("; a byte-identical repeat of frame %d: quic-go's closed connection answers a late packet with its CONNECTION_CLOSE again, outside the qlog", o.Index+1)
					break
				}
			}
		}
		var zero []string
		for _, p := range d.Parts {
			if p.Type == "0RTT" {
				zero = append(zero, "0-RTT data: sent before the handshake completes, keyed from the ticket, replayable")
				break
			}
		}
		d.Pkt.Comment(fmt.Sprintf("%s (client %s): %s%s", f.step, f.peer, state, prefixed("; ", strings.Join(zero, ""))))
	}
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

// judge makes the checks, metrics, ladders and the holding row from the
// evidence.
func (r *resumeLab) judge(ev *resumeEvidence) {
	env := r.env
	first, res, rep, kept, lost := ev.per[stepFirst], ev.per[stepResumed], ev.per[stepReplay], ev.per[stepKeyKept], ev.per[stepKeyLost]
	c1, c2, c4, c5 := r.conns[stepFirst], r.conns[stepResumed], r.conns[stepKeyKept], r.conns[stepKeyLost]
	matched, total := 0, 0
	for _, f := range ev.per {
		matched += f.corr.ServerMatched + f.corr.ClientMatched
		total += f.corr.ServerTotal + f.corr.ClientTotal
	}
	env.Check("every qlog packet of every connection matches a captured datagram", total > 0 && matched == total,
		"%d of %d packet records (client and server, sent and received) matched by type, connection ID, size and packet number", matched, total)
	tickets := r.cache.Tickets()
	tlen := 0
	if len(tickets) > 0 {
		tlen = len(tickets[0])
	}
	env.Check("the first connection receives a session ticket after its handshake", c1.err == nil && tlen > 0 && first.ticketCrypto >= tlen,
		"%d-byte ticket in the client's cache; the server sent %d CRYPTO bytes in 1-RTT packets (the NewSessionTicket carrying it); requests: %q, error: %s",
		tlen, first.ticketCrypto, c1.answers, lab.ErrText(c1.err))
	env.Check("the second connection resumes and its 0-RTT is accepted", c2.resumed && c2.used0RTT && c2.err == nil,
		"client: TLS resumed %t, Used0RTT %t; answers %q, error: %s", c2.resumed, c2.used0RTT, c2.answers, lab.ErrText(c2.err))
	env.Check("the resumed connection's requests travel in 0-RTT, keyed from the ticket; the first connection's in 1-RTT after a round trip",
		res.dataType == "0RTT" && first.dataType == "1RTT" && first.flights >= 1,
		"resumed: first STREAM in a %s packet (frame %d), %.2f ms after its first Initial, %d server flight(s) received before it; "+
			"first: in a %s packet (frame %d), %.2f ms after its first Initial, %d server flight(s) received before it (by the client's qlog)",
		res.dataType, frameNo(res.firstData), res.since(res.firstData), res.flights, first.dataType, frameNo(first.firstData), first.since(first.firstData), first.flights)
	env.Check("resumption sends fewer TLS handshake bytes than the first connection",
		res.tlsBytes() > 0 && res.tlsBytes() < first.tlsBytes(),
		"Initial+Handshake packets, padding and any retransmission included: first %d bytes (client %d, server %d), resumed %d (client %d, server %d): %d fewer; "+
			"the TLS handshake messages in them (CRYPTO streams, each byte once): first %d bytes (client %d, server %d), resumed %d (client %d, server %d): %d fewer, "+
			"the server's flight %d bytes smaller; the resumed connection also sent %d bytes of 0-RTT packets",
		first.hsBytes(), first.cliHS, first.srvHS, res.hsBytes(), res.cliHS, res.srvHS, first.hsBytes()-res.hsBytes(),
		first.tlsBytes(), first.cliTLS, first.srvTLS, res.tlsBytes(), res.cliTLS, res.srvTLS, first.tlsBytes()-res.tlsBytes(), first.srvTLS-res.srvTLS, res.zeroRTT)
	checkIdempotence(env, ev.reqs, c2.local, rep.peer)
	replayed := requestsFrom(ev.reqs, rep.peer)
	get, put := byMethod(replayed, "GET"), byMethod(replayed, "PUT")
	toAttacker := 0
	for _, d := range rep.ds {
		if d.Dst == rep.peer && d.Event != nil && slices.Contains(d.Event.Frames, "STREAM") {
			toAttacker++
		}
	}
	env.Check("a replay of the resumed connection's first flight makes the server process its 0-RTT GET again",
		get != nil && get.Done && get.Early && rep.answer != nil,
		"the attacker sent %d datagrams (%d byte-identical to captured ones) to the server restarted with its ticket key; the server handled %d replayed request(s): GET early %t answered %t; %d server datagram(s) to the attacker carried STREAM data (the answer)",
		r.conns[stepReplay].sent, countCopies(rep.ds), len(replayed), get != nil && get.Early, get != nil && get.Done, toAttacker)
	env.Check("the replayed PUT is never applied: its connection never completes the handshake",
		put != nil && !put.Done && !put.Confirmed,
		"replayed PUT: read early %t, applied %t, handshake completed %t; HANDSHAKE_DONE to the attacker: %t",
		put != nil && put.Early, put != nil && put.Done, put != nil && put.Confirmed, rep.done != nil)
	env.Check("after a restart that keeps the ticket key the client still resumes with 0-RTT", c4.resumed && c4.used0RTT && c4.err == nil && kept.dataType == "0RTT",
		"TLS resumed %t, Used0RTT %t, first STREAM in a %s packet; answers %q, error: %s", c4.resumed, c4.used0RTT, kept.dataType, c4.answers, lab.ErrText(c4.err))
	env.Check("after a restart with a fresh ticket key the ticket is useless: 0-RTT rejected, a full handshake",
		!c5.resumed && !c5.used0RTT && c5.err == nil && lost.tlsBytes() > res.tlsBytes() && lost.dataType == "1RTT",
		"TLS resumed %t, Used0RTT %t (the %d bytes of 0-RTT packets it sent were dropped); TLS handshake bytes %d (a resumption took %d, the first full handshake %d); request in a %s packet; answers %q, error: %s",
		c5.resumed, c5.used0RTT, lost.zeroRTT, lost.tlsBytes(), res.tlsBytes(), first.tlsBytes(), lost.dataType, c5.answers, lab.ErrText(c5.err))
	env.Check("the key log holds the early traffic secret of each connection that offered a ticket", ev.keyLines == 3,
		"%d CLIENT_EARLY_TRAFFIC_SECRET line(s), each derived from the session the client offered and its ClientHello in the first flight (Go's crypto/tls logs none); Wireshark reads the 0-RTT packets with them", ev.keyLines)
	for _, f := range []*connFacts{first, res, lost} {
		name := [...]string{"first", "resumed", "", "", "fresh_key"}[f.step]
		env.Metric(name+"_handshake_bytes", float64(f.hsBytes()))
		env.Metric(name+"_tls_handshake_bytes", float64(f.tlsBytes()))
		env.Metric(name+"_request_after_flights_count", float64(f.flights))
		env.Metric(name+"_request_ms", f.since(f.firstData))
		env.Metric(name+"_answer_ms", f.since(f.answer))
	}
	env.Metric("resumed_0rtt_bytes", float64(res.zeroRTT))
	env.Metric("ticket_bytes", float64(tlen))
	env.Metric("replayed_requests_processed_count", float64(countDone(replayed)))
	env.Table("first connection against resumed, from the capture", [][]string{
		{"", "first (full handshake)", "resumed (ticket, 0-RTT)", "after a restart with a fresh key"},
		{"Initial+Handshake packet bytes", fmt.Sprint(first.hsBytes()), fmt.Sprint(res.hsBytes()), fmt.Sprint(lost.hsBytes())},
		{"TLS handshake message bytes in them", fmt.Sprint(first.tlsBytes()), fmt.Sprint(res.tlsBytes()), fmt.Sprint(lost.tlsBytes())},
		{"0-RTT bytes", fmt.Sprint(first.zeroRTT), fmt.Sprint(res.zeroRTT), fmt.Sprint(lost.zeroRTT)},
		{"request sent after server flights", fmt.Sprint(first.flights), fmt.Sprint(res.flights), fmt.Sprint(lost.flights)},
		{"request's packet", first.dataType, res.dataType, lost.dataType},
		{"request / answer at (ms after the first Initial)", msPair(first), msPair(res), msPair(lost)},
	})
	r.ladders(ev)
	env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("nothing per client between connections: the ticket is sealed with the server's ticket key (a new server instance given that key resumed the client, %d-byte ticket)", tlen),
		ClientCarries: fmt.Sprintf("a %d-byte session ticket, sent back inside its %d-byte ClientHello (the first connection's, without one: %d bytes)",
			tlen, clientHelloLen(c2), clientHelloLen(c1)),
		RestartLoses: fmt.Sprintf("tickets when the ticket key is not kept: with a fresh key the client fell back to a full handshake (%d TLS handshake bytes, against %d resumed); with the key kept it resumed with 0-RTT",
			lost.tlsBytes(), res.tlsBytes()),
		CarriedBytes: tlen,
		CarriedPer:   "per resumed connection (the ticket as the ClientHello's PSK identity)",
	})
	env.Note("0-RTT is replayable: the server cannot tell the attacker's copy from the client's first flight, and Go's crypto/tls keeps " +
		"no anti-replay state for tickets (RFC 8446 §8 leaves it to the server), so any instance holding the ticket key processes " +
		"the replayed early data again. This server therefore answers only idempotent requests (GET) in 0-RTT and holds a state-changing " +
		"one (PUT) until HandshakeComplete: a replayed connection never completes its handshake. The replay goes to the server restarted " +
		"with its ticket key because the instance that served the original keeps routing its connection IDs to it for 3 PTO after it closes.")
}

// checkIdempotence checks that the resumed connection's GET was
// answered in 0-RTT and its PUT applied only after the handshake, and
// that no PUT of any connection was applied before its handshake.
func checkIdempotence(env *lab.Env, reqs []quicconn.Request, resumed, attacker netip.AddrPort) {
	mine := requestsFrom(reqs, resumed)
	get, put := byMethod(mine, "GET"), byMethod(mine, "PUT")
	early := 0
	for _, q := range reqs {
		if q.Method == "PUT" && q.Done && !q.Confirmed {
			early++
		}
	}
	env.Check("the server answers the 0-RTT GET at once and holds the 0-RTT PUT until the handshake completes",
		get != nil && get.Early && get.Done && put != nil && put.Early && put.Done && put.Confirmed && early == 0,
		"resumed connection: GET read early %t, answered %t; PUT read early %t, applied %t after waiting %v for the handshake; PUTs applied before their handshake completed, any connection: %d",
		get != nil && get.Early, get != nil && get.Done, put != nil && put.Early, put != nil && put.Done, deferredOf(put), early)
}

func byMethod(reqs []quicconn.Request, m string) *quicconn.Request {
	for i := range reqs {
		if reqs[i].Method == m {
			return &reqs[i]
		}
	}
	return nil
}

func deferredOf(q *quicconn.Request) string {
	if q == nil {
		return "-"
	}
	return q.Deferred.Round(10 * 1000).String()
}

func countDone(reqs []quicconn.Request) int {
	n := 0
	for _, q := range reqs {
		if q.Done {
			n++
		}
	}
	return n
}

func countCopies(ds []*Datagram) int {
	n := 0
	for _, d := range ds {
		if d.CopyOf != nil {
			n++
		}
	}
	return n
}

func frameNo(d *Datagram) int {
	if d == nil {
		return 0
	}
	return d.Index + 1
}

func msPair(f *connFacts) string {
	return fmt.Sprintf("%.2f / %.2f", f.since(f.firstData), f.since(f.answer))
}

// clientHelloLen is the length of the ClientHello a connection sent, as
// its Initials carried it; 0 when it cannot be read.
func clientHelloLen(c *resumeConn) int {
	ch, err := quicconn.ClientHello(c.cl.InitialFlight())
	if err != nil {
		return 0
	}
	return len(ch)
}

// ladders draws the first connection, the resumed one and the replay,
// every row a captured datagram.
func (r *resumeLab) ladders(ev *resumeEvidence) {
	srv := r.srv().Addr
	tickets := r.cache.Tickets()
	for _, x := range []struct {
		step        resumeStep
		title, left string
	}{
		{stepFirst, "The first connection: a full handshake, then a session ticket (as captured)", "client (no ticket)"},
		{stepResumed, "The resumed connection: requests in 0-RTT, the PUT held until the handshake (as captured)", "client (ticket)"},
		{stepReplay, "The attacker replays that first flight to the server restarted with its key (as captured)", "attacker"},
	} {
		f := ev.per[x.step]
		lad := r.env.Ladder(x.title, x.left, "server")
		var rw rows
		for _, d := range f.ds {
			label := datagramLabel(d)
			left, right := "", ""
			switch {
			case d == f.firstData && d.Dst == srv:
				left = "request sent in " + packetTypeName(f.dataType)
			case d == f.done:
				right = "handshake confirmed"
			case d == f.answer:
				right = "GET answered"
			}
			if x.step == stepFirst && len(tickets) > 0 && d.Src == srv && d.Event != nil && cryptoBytes(d.Event.Detail) > 0 {
				left = fmt.Sprintf("keeps a %d-byte ticket", len(tickets[0]))
			}
			if d.Dst == srv {
				rw.send(d.Index, label, left, right)
			} else {
				rw.reply(d.Index, label, left, right)
			}
		}
		rw.draw(lad)
	}
}

// datagramLabel names a datagram's packets and the frames their sender
// logged: "Initial [CRYPTO] + 0-RTT [STREAM]".
func datagramLabel(d *Datagram) string {
	var s []string
	for _, p := range d.Parts {
		l := packetTypeName(p.Type)
		if p.Sent != nil {
			var fr []string
			for _, f := range slices.Compact(slices.Clone(p.Sent.Frames)) {
				if f != "PADDING" {
					fr = append(fr, f)
				}
			}
			l += " [" + strings.Join(fr, " ") + "]"
		}
		s = append(s, l)
	}
	return fmt.Sprintf("%s (%d B)", strings.Join(s, " + "), d.Size)
}

// envDir is where an experiment's captures (and qlogs) go.
func envDir(env *lab.Env, short string) string {
	return filepath.Dir(env.CapturePath(short))
}
