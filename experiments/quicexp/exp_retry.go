package quicexp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
)

// quic/retry: the server validates every client's address with a Retry
// (RFC 9000 §8.1.2) and keeps nothing until the token comes back. A
// prober of the lab's own — hand-built Initials from plain UDP sockets —
// presents the token as the server gave it, forged, from another
// address, from another port and after its lifetime; three real quic-go
// connections show the Retry, the NEW_TOKEN that lets the next one skip
// it, and a NEW_TOKEN token that expired.

// The token lifetimes of quic/retry: short, so the experiment can wait
// them out. quic-go accepts a Retry token for twice the server's
// handshake idle timeout and a NEW_TOKEN token for the transport's
// MaxTokenAge.
var (
	retryHandshakeTimeout = 750 * time.Millisecond
	newTokenAge           = 1500 * time.Millisecond
)

// retryLab is quic/retry's set-up: a traced server that always sends a
// Retry, the capture of its port, the lab's hand-built prober, and the
// client side's token store.
type retryLab struct {
	env    *lab.Env
	keylog *lockedBuffer
	tracer *quicconn.Tracer
	srv    *quicconn.Server
	cap    *capture.Capture
	ctx    context.Context
	tokens *tokenStore
	cids   io.Reader // the hand-built Initials' connection IDs
	socks  []*net.UDPConn
	probes []*probe
	conns  []*retryConn
	// probeWrites counts the datagrams the prober's sockets wrote.
	probeWrites int
	// tokenKey seals the server's tokens, kept across its restart; old
	// are the servers closed by a restart, lost what the last one held
	// when it was closed.
	tokenKey quic.TokenGeneratorKey
	old      []*quicconn.Server
	lost     quicconn.ServerStats
}

// probe is one hand-built Initial the lab sent and what came back.
type probe struct {
	label       string
	gen         int // which server answered: 1, or 2 after the restart
	from        netip.AddrPort
	dcid, token []byte
	sent        []byte
	reply       []byte
	sentAt      time.Time
	// The server's counts before the Initial and once its answer had
	// arrived, and the process's goroutines at the same two moments.
	before, after   quicconn.ServerStats
	gBefore, gAfter int
	retry           *quicconn.Retry
	opened          *quicconn.OpenedInitial
	err             error
	// sentD and replyD are the captured datagrams, once found.
	sentD, replyD *Datagram
}

// answer says what the server answered a probe with.
func (p *probe) answer() string {
	switch {
	case p.err != nil:
		return "nothing: " + p.err.Error()
	case p.retry != nil:
		return fmt.Sprintf("a new Retry (token %d B)", len(p.retry.Token))
	case p.opened != nil:
		return openedName(p.opened)
	}
	return fmt.Sprintf("an unreadable %d-byte datagram", len(p.reply))
}

// openedName names an opened server Initial by its frames, a
// CONNECTION_CLOSE with its error code.
func openedName(o *quicconn.OpenedInitial) string {
	var fs []string
	for _, f := range o.Frames {
		switch {
		case f.Type == 0x1c && f.ErrorCode == quicconn.ErrCodeInvalidToken:
			fs = append(fs, "CONNECTION_CLOSE INVALID_TOKEN")
		case f.Type == 0x1c:
			fs = append(fs, fmt.Sprintf("CONNECTION_CLOSE %#x", f.ErrorCode))
		case f.Type != 0:
			fs = append(fs, f.Name())
		}
	}
	return "an Initial [" + strings.Join(fs, ", ") + "]"
}

// invalidToken reports whether the server answered with INVALID_TOKEN.
func (p *probe) invalidToken() bool {
	if p.opened == nil {
		return false
	}
	for _, f := range p.opened.Frames {
		if f.Type == 0x1c && f.ErrorCode == quicconn.ErrCodeInvalidToken {
			return true
		}
	}
	return false
}

// created is how many connections the server created for the probe.
func (p *probe) created() int64 { return p.after.Created - p.before.Created }

// retryConn is one real quic-go connection of quic/retry.
type retryConn struct {
	n     int
	cl    *quicconn.Client
	local netip.AddrPort
	// atRetry is the server's counts when a Retry reached the client,
	// before quic-go read it (nil: no Retry arrived); retries counts the
	// Retries that reached it. Both are written by the client's socket
	// reader, under mu.
	mu      sync.Mutex
	atRetry *quicconn.ServerStats
	// before and after are the server's counts before the dial and once
	// the handshake completed.
	before, after quicconn.ServerStats
	retries       int
	start         time.Time
	handshake     time.Duration
	err           error
}

// seenRetries is what the client's socket saw of Retries: the server's
// counts at the first, and how many arrived.
func (rc *retryConn) seenRetries() (*quicconn.ServerStats, int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.atRetry, rc.retries
}

// runRetry is quic/retry.
func runRetry(env *lab.Env) error {
	l, err := newRetryLab(env)
	if err != nil {
		return err
	}
	prober, err := l.socket("127.0.0.1:0")
	if err != nil {
		return err
	}
	first := l.send(prober, "first Initial, no token", nil)
	if first.retry == nil {
		env.Check("the first Initial is answered with a Retry", false, "the server answered %s", first.answer())
		return nil
	}
	token := first.retry.Token
	if err := l.refuseTokens(token); err != nil {
		return err
	}
	for n := 1; n <= 2; n++ {
		if err := l.connect(n); err != nil {
			return err
		}
	}
	if err := l.waitExpiry(first); err != nil {
		return err
	}
	l.send(prober, "the token after its lifetime", token)
	if err := l.connect(3); err != nil {
		return err
	}
	pkts, complete, err := l.finish()
	if err != nil {
		return err
	}
	ds := Datagrams(pkts, l.srv.Addr, 8)
	views := l.commentAll(ds) // even in a short capture: packet by packet
	plots(env, ds, l.srv.Addr)
	if !complete {
		env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\").")
		return nil
	}
	l.check(views)
	l.report(views)
	return nil
}

// newRetryLab starts the server with a Retry for every client, its key
// log and qlogs, the capture of its port and the token store.
func newRetryLab(env *lab.Env) (*retryLab, error) {
	short := strings.TrimPrefix(env.Name(), "quic/")
	dir := filepath.Dir(env.CapturePath(short))
	// The first server's qlogs go under a prefix of their own: the
	// prober's connections to both servers carry the first Retry's
	// original connection ID, which names a qlog file.
	first := short + "-before-restart"
	for _, prefix := range []string{short, first} {
		if _, err := quicconn.RemoveQlogs(dir, prefix); err != nil {
			return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
		}
	}
	l := &retryLab{env: env, keylog: &lockedBuffer{}, tokens: newTokenStore(), cids: env.Bytes("hand-built connection IDs")}
	l.tracer = &quicconn.Tracer{Dir: dir, Prefix: short}
	env.Cleanup(func() { l.tracer.Finish(qlogFinishWait) })
	firstTracer := &quicconn.Tracer{Dir: dir, Prefix: first}
	env.Cleanup(func() { firstTracer.Finish(qlogFinishWait) })
	io.ReadFull(env.Bytes("token key"), l.tokenKey[:])
	srv, err := l.newServer("127.0.0.1:0", "server connection IDs", firstTracer)
	if err != nil {
		return nil, err
	}
	l.srv = srv
	if l.cap, err = env.Capture(captureOptions(srv.Addr.Port(), nil)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, stepTimeout)
	env.Cleanup(cancel)
	l.ctx = ctx
	return l, nil
}

// newServer starts a server on addr that sends every client a Retry,
// sealing its tokens with the lab's token key; its connection IDs come
// from the stream called stream, its qlogs go to tr.
func (l *retryLab) newServer(addr, stream string, tr *quicconn.Tracer) (*quicconn.Server, error) {
	srv, err := quicconn.NewServer(quicconn.ServerConfig{Addr: addr, Tracer: tr, IdleTimeout: stepTimeout, Retry: true,
		HandshakeTimeout: retryHandshakeTimeout, MaxTokenAge: newTokenAge, Rand: l.env.Bytes(stream), TokenKey: &l.tokenKey, RecordWrites: true})
	if err != nil {
		return nil, err
	}
	l.env.Cleanup(func() { srv.Close() })
	return srv, nil
}

// restart closes the server — every connection it held is gone — and
// starts another on its address with the same token key.
func (l *retryLab) restart() error {
	old := l.srv
	l.lost = old.Stats()
	old.Close()
	srv, err := l.newServer(old.Addr.String(), "server connection IDs after the restart", l.tracer)
	if err != nil {
		return err
	}
	l.old, l.srv = append(l.old, old), srv
	l.env.Logf("server restarted on %s (it held %d handshakes in progress)", srv.Addr, l.lost.Handshaking)
	return nil
}

// socket opens one of the prober's plain UDP sockets.
func (l *retryLab) socket(addr string) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		return nil, &lab.EnvError{What: "opening the prober's socket on " + addr, Err: err, Remedy: "the lab's namespace needs the loopback addresses 127.0.0.1 and 127.0.0.2"}
	}
	l.env.Cleanup(func() { c.Close() })
	l.socks = append(l.socks, c)
	return c, nil
}

// send is one step of the prober: a hand-built Initial with token (nil:
// none) under a fresh destination connection ID, and the server's one
// answer, with the server's counts and the process's goroutines before
// and after.
func (l *retryLab) send(c *net.UDPConn, label string, token []byte) *probe {
	p := &probe{label: label, gen: len(l.old) + 1, from: c.LocalAddr().(*net.UDPAddr).AddrPort(), token: token, dcid: make([]byte, 8)}
	l.probes = append(l.probes, p)
	scid := make([]byte, 8)
	io.ReadFull(l.cids, p.dcid)
	io.ReadFull(l.cids, scid)
	p.sent, p.err = quicconn.BuildInitial(quicconn.InitialSpec{DCID: p.dcid, SCID: scid, Token: token})
	if p.err != nil {
		return p
	}
	p.before, p.gBefore = l.srv.Stats(), runtime.NumGoroutine()
	p.sentAt = time.Now()
	if _, p.err = c.WriteToUDPAddrPort(p.sent, l.srv.Addr); p.err != nil {
		return p
	}
	l.probeWrites++
	dl, _ := l.ctx.Deadline()
	c.SetReadDeadline(dl)
	buf := make([]byte, 2048)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	p.after, p.gAfter = l.srv.Stats(), runtime.NumGoroutine()
	if err != nil {
		p.err = fmt.Errorf("%w: no answer to the %s: %w", quicconn.ErrProtocol, label, err)
		return p
	}
	p.reply = bytes.Clone(buf[:n])
	if r, err := quicconn.ParseRetry(p.reply, p.dcid); err == nil {
		p.retry = &r
	} else if o, err := quicconn.OpenServerInitial(p.reply, p.dcid); err == nil {
		p.opened = &o
	}
	l.env.Logf("%s from %s: %s", label, p.from, p.answer())
	return p
}

// refuseTokens presents the first Retry's token forged, from another
// address, and as given from another port of the same address.
func (l *retryLab) refuseTokens(token []byte) error {
	forged := bytes.Clone(token)
	forged[len(forged)/2] ^= 0xff
	l.send(l.socks[0], "forged token (a byte flipped)", forged)
	stranger, err := l.socket("127.0.0.2:0")
	if err != nil {
		return err
	}
	l.send(stranger, "the token from another address", token)
	sibling, err := l.socket("127.0.0.1:0")
	if err != nil {
		return err
	}
	l.send(sibling, "the token from another port of its address", token)
	if err := l.restart(); err != nil {
		return err
	}
	later, err := l.socket("127.0.0.1:0")
	if err != nil {
		return err
	}
	l.send(later, stepAfterRestart, token)
	return nil
}

// connect is connection n of the real client: it dials with the token
// store, and once the handshake is done waits for the server's NEW_TOKEN
// before closing the connection.
func (l *retryLab) connect(n int) error {
	rc := &retryConn{n: n, before: l.srv.Stats()}
	l.conns = append(l.conns, rc)
	onReceive := func(b []byte, _ net.Addr) {
		if len(b) == 0 || b[0]&0xf0 != 0xf0 {
			return
		}
		st := l.srv.Stats()
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.retries++
		if rc.atRetry == nil {
			rc.atRetry = &st
		}
	}
	puts := l.tokens.count()
	start := time.Now()
	rc.start = start
	cl, err := quicconn.Dial(l.ctx, quicconn.ClientConfig{Server: l.srv.Addr, Trust: l.srv.Cert, KeyLog: l.keylog, Tracer: l.tracer,
		IdleTimeout: stepTimeout, Rand: l.env.Bytes(fmt.Sprintf("client %d connection IDs", n)), RecordWrites: true,
		TokenStore: l.tokens, OnReceive: onReceive})
	rc.handshake = time.Since(start)
	rc.after = l.srv.Stats()
	if err != nil {
		rc.err = err
		return err
	}
	l.env.Cleanup(func() { cl.Close() })
	rc.cl, rc.local = cl, cl.LocalAddr()
	if err := l.tokens.wait(l.ctx, puts+1); err != nil {
		return fmt.Errorf("%w: connection %d: waiting for the server's NEW_TOKEN: %w", quicconn.ErrProtocol, n, err)
	}
	cl.Conn.CloseWithError(0, "done")
	return nil
}

// waitExpiry waits until the first Retry token and the latest NEW_TOKEN
// token are past their lifetimes: a timer is the event here.
func (l *retryLab) waitExpiry(first *probe) error {
	until := first.sentAt.Add(2*retryHandshakeTimeout + 50*time.Millisecond)
	if last := l.tokens.lastPut(); last.Add(newTokenAge + 50*time.Millisecond).After(until) {
		until = last.Add(newTokenAge + 50*time.Millisecond)
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-l.ctx.Done():
		return fmt.Errorf("%w: waiting for the tokens to expire: %w", quicconn.ErrProtocol, context.Cause(l.ctx))
	}
}

// finish closes the connections once their qlogs are complete, then the
// server, and stops the capture once it holds every datagram the sockets
// counted.
func (l *retryLab) finish() ([]*capture.Packet, bool, error) {
	for _, rc := range l.conns {
		rc.cl.Conn.CloseWithError(0, "done")
	}
	clients := map[string]bool{}
	for _, c := range l.tracer.Conns() {
		if c.Role == "client" {
			clients[c.ODCID] = true
		}
	}
	for _, c := range l.tracer.Conns() {
		if !clients[c.ODCID] {
			continue // the prober's connection: no client closes it
		}
		select {
		case <-c.Done():
		case <-l.ctx.Done():
			return nil, false, fmt.Errorf("%w: waiting for the %s %s to close: %w", quicconn.ErrTransfer, c.Role, c.ODCID, context.Cause(l.ctx))
		}
	}
	for _, rc := range l.conns {
		rc.cl.Close()
	}
	l.srv.Close()
	for _, s := range l.socks {
		s.Close()
	}
	written, servers := 0, l.srv.Written()
	for _, rc := range l.conns {
		written += rc.cl.Written()
	}
	for _, o := range l.old {
		servers += o.Written()
	}
	e := expect{what: "QUIC datagrams", units: udpTo(l.srv.Addr.Port()),
		want:   servers + written + l.probeWrites + testUncounted,
		source: fmt.Sprintf("the servers' sockets (before and after the restart): %d written; the clients' sockets: %d; the prober's sockets: %d", servers, written, l.probeWrites)}
	pkts, complete, err := stopComplete(l.env, l.cap, e)
	if err != nil {
		return nil, false, err
	}
	l.cap.AddSecrets(l.keylog.Bytes())
	secrets := bytes.Count(l.keylog.Bytes(), []byte("TRAFFIC_SECRET_0"))
	l.env.Check("TLS secrets embedded in the capture", secrets >= 2*len(l.conns), "%d traffic secrets for %d connections", secrets, len(l.conns))
	return pkts, complete, nil
}

// tokenStore is quic-go's LRU token store, counting the NEW_TOKEN tokens
// put in it and the tokens taken out for a connection.
type tokenStore struct {
	quic.TokenStore
	mu     sync.Mutex
	puts   []time.Time
	pops   int
	gotOne []bool // per Pop: a token was there
	change chan struct{}
}

func newTokenStore() *tokenStore {
	return &tokenStore{TokenStore: quic.NewLRUTokenStore(4, 4), change: make(chan struct{})}
}

func (s *tokenStore) Put(key string, t *quic.ClientToken) {
	s.TokenStore.Put(key, t)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts = append(s.puts, time.Now())
	close(s.change)
	s.change = make(chan struct{})
}

func (s *tokenStore) Pop(key string) *quic.ClientToken {
	t := s.TokenStore.Pop(key)
	s.mu.Lock()
	s.pops++
	s.gotOne = append(s.gotOne, t != nil)
	s.mu.Unlock()
	return t
}

func (s *tokenStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.puts)
}

// putAt is when token i (from 0) was put, zero if it was not.
func (s *tokenStore) putAt(i int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.puts) {
		return time.Time{}
	}
	return s.puts[i]
}

func (s *tokenStore) lastPut() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.puts) == 0 {
		return time.Time{}
	}
	return s.puts[len(s.puts)-1]
}

// wait waits until n tokens were put.
func (s *tokenStore) wait(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have, ch := len(s.puts), s.change
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// connView is one real connection as the capture shows it: its
// datagrams, its client Initials with the token each carried, the
// Retries it got, and the datagram whose token made the server create
// the connection.
type connView struct {
	rc       *retryConn
	ds       []*Datagram
	initials []*Datagram
	tokens   [][]byte // per client Initial
	retries  []*Datagram
	retryTok [][]byte // per Retry; nil where the integrity tag failed
	// accepted is the index in ds of the first client Initial whose
	// token the server accepted: after a Retry, the first one echoing a
	// Retry's token; with no Retry, the first one carrying a token. -1
	// when none.
	accepted int
	// used is the index in retries of the Retry whose token the client
	// echoed (quic-go takes one Retry and ignores any other), -1 if none.
	used int
	// newToken is the datagram carrying the server's NEW_TOKEN, nil if
	// no record matched.
	newToken *Datagram
}

// viewConn reads the connection from local out of the captured
// datagrams ds.
func viewConn(ds []*Datagram, server netip.AddrPort, local netip.AddrPort) connView {
	v := connView{accepted: -1, used: -1}
	var odcid []byte
	for _, d := range ds {
		if peerOf(d, server) != local {
			continue
		}
		v.ds = append(v.ds, d)
		switch {
		case d.Dst == server && d.Type == "initial":
			tok, _ := quicconn.InitialToken(d.payload)
			if odcid == nil {
				odcid, _ = hex.DecodeString(d.DCID)
			}
			v.initials = append(v.initials, d)
			v.tokens = append(v.tokens, tok)
		case d.Src == server && d.Type == "retry":
			var tok []byte
			if r, err := quicconn.ParseRetry(d.payload, odcid); err == nil {
				tok = r.Token
			}
			v.retries = append(v.retries, d)
			v.retryTok = append(v.retryTok, tok)
		}
		if v.newToken == nil && d.Src == server && d.ClientEvent != nil && slices.Contains(d.ClientEvent.Frames, "NEW_TOKEN") {
			v.newToken = d
		}
	}
	for i, d := range v.initials {
		k := slices.Index(v.ds, d)
		if len(v.retries) == 0 {
			if len(v.tokens[i]) > 0 {
				v.accepted = k
				break
			}
			continue
		}
		if d.Index < v.retries[0].Index || len(v.tokens[i]) == 0 {
			continue
		}
		if j := slices.IndexFunc(v.retryTok, func(t []byte) bool { return len(t) > 0 && bytes.Equal(t, v.tokens[i]) }); j >= 0 {
			v.accepted, v.used = k, j
			break
		}
	}
	return v
}

// tokenOf is the token the accepted Initial carried (nil: none).
func (v connView) tokenOf() []byte {
	if v.accepted < 0 {
		return nil
	}
	return v.tokens[slices.Index(v.initials, v.ds[v.accepted])]
}

// usedToken is the token of the Retry the client echoed (nil: none).
func (v connView) usedToken() []byte {
	if v.used < 0 {
		return nil
	}
	return v.retryTok[v.used]
}

// firstFlight is how many client Initials came before the first Retry
// (all of them when none came).
func (v connView) firstFlight() int {
	if len(v.retries) == 0 {
		return len(v.initials)
	}
	n := 0
	for _, d := range v.initials {
		if d.Index < v.retries[0].Index {
			n++
		}
	}
	return n
}

// commentAll correlates each real connection with its qlogs and gives
// every captured datagram its comment: the prober's with what it sent
// and the server's counts, the connections' with the server's state for
// that client at that moment and the packet as the qlogs logged it.
func (l *retryLab) commentAll(ds []*Datagram) []connView {
	seen := map[*Datagram]bool{}
	for _, p := range l.probes {
		for _, d := range ds {
			switch {
			case !seen[d] && d.Dst == l.srv.Addr && d.Src == p.from && bytes.Equal(d.payload, p.sent):
				seen[d], p.sentD = true, d
				commentSide(d, probeSentComment(p), "prober", "hand-built Initial")
			case !seen[d] && d.Src == l.srv.Addr && d.Dst == p.from && bytes.Equal(d.payload, p.reply):
				seen[d], p.replyD = true, d
				commentSide(d, probeReplyComment(p), "server", retryEvent(d))
			}
		}
	}
	var views []connView
	traces := l.tracer.Conns()
	for i, rc := range l.conns {
		cli := nthClient(traces, i)
		var srv *quicconn.ConnTrace
		if cli != nil {
			for _, c := range traces {
				if c.Role == "server" && c.ODCID == cli.ODCID {
					srv = c
				}
			}
		}
		var mine []*Datagram
		for _, d := range ds {
			if peerOf(d, l.srv.Addr) == rc.local {
				mine = append(mine, d)
			}
		}
		logs := LogsOf(cli, srv)
		logs.ClientWrites = rc.cl.Writes()
		for _, w := range l.srv.Writes() {
			if w.To == rc.local {
				logs.ServerWrites = append(logs.ServerWrites, w)
			}
		}
		Correlate(mine, l.srv.Addr, logs, nil)
		v := viewConn(ds, l.srv.Addr, rc.local)
		v.rc = rc
		for k, d := range v.ds {
			seen[d] = true
			commentSide(d, connComment(v, k, l.srv.Addr), sideOf(d, l.srv.Addr), retryEvent(d))
		}
		views = append(views, v)
	}
	for _, d := range ds {
		if !seen[d] {
			commentSide(d, fmt.Sprintf("%s → %s: %s (%d B); a datagram none of the lab's steps sent or read (the prober's connection, after the lab stopped reading)",
				d.Src, d.Dst, packetTypeName(d.Type), d.Size), sideOf(d, l.srv.Addr), "")
		}
	}
	return views
}

// nthClient is the i-th client trace, nil if none.
func nthClient(traces []*quicconn.ConnTrace, i int) *quicconn.ConnTrace {
	for _, c := range traces {
		if c.Role == "client" {
			if i == 0 {
				return c
			}
			i--
		}
	}
	return nil
}

// probeSentComment is the comment of a hand-built Initial the prober sent.
func probeSentComment(p *probe) string {
	tok := "no token"
	if len(p.token) > 0 {
		tok = fmt.Sprintf("a %d-byte token", len(p.token))
	}
	return fmt.Sprintf("lab prober %s → server #%d: hand-built Initial (%s), DCID %x, %s, %d B; server #%d had created %d connection(s), %d handshake(s) in progress",
		p.from, p.gen, p.label, p.dcid, tok, len(p.sent), p.gen, p.before.Created, p.before.Handshaking)
}

// probeReplyComment is the comment of the server's answer to a probe.
func probeReplyComment(p *probe) string {
	var what string
	switch {
	case p.retry != nil:
		what = fmt.Sprintf("Retry (long header type 3), SCID %x, a %d-byte token sealed with the server's key, integrity tag verified against DCID %x", p.retry.SCID, len(p.retry.Token), p.dcid)
	case p.opened != nil:
		what = fmt.Sprintf("Initial pn %d %s, opened with the keys of DCID %x", p.opened.PN, strings.TrimPrefix(openedName(p.opened), "an Initial "), p.dcid)
	default:
		what = fmt.Sprintf("%d B the prober could not read", len(p.reply))
	}
	return fmt.Sprintf("server #%d → lab prober %s: %s, answering the %s; when it arrived server #%d had created %d connection(s) (%+d), %d handshake(s) in progress, the process ran %+d goroutines",
		p.gen, p.from, what, p.label, p.gen, p.after.Created, p.created(), p.after.Handshaking, p.gAfter-p.gBefore)
}

// connComment is the comment of datagram k of connection v: the server's
// state for this client at that moment, then the packet as the qlogs
// logged it.
func connComment(v connView, k int, server netip.AddrPort) string {
	d := v.ds[k]
	n := v.rc.n
	head := fmt.Sprintf("connection %d (client %s): ", n, v.rc.local)
	switch {
	case d.Type == "retry":
		j := slices.Index(v.retries, d)
		what := "the client echoes this one"
		if j != v.used {
			what = "the client has taken another Retry of this flight and ignores this one (RFC 9000 §17.2.5.2)"
		}
		return head + fmt.Sprintf("Retry (long header type 3) answering a client Initial without a valid token, SCID %s, a %d-byte token: "+
			"the server keeps nothing for this client — the token carries its address, the time and the connection IDs, sealed with the server's key; %s", d.SCID, len(v.retryTok[j]), what)
	case d.Dst == server && d.Type == "initial" && (v.accepted < 0 || k < v.accepted):
		tok := v.tokens[slices.Index(v.initials, d)]
		what := "no token"
		if len(tok) > 0 {
			what = fmt.Sprintf("a %d-byte NEW_TOKEN token past its lifetime, which the server ignores", len(tok))
		}
		return head + fmt.Sprintf("client Initial (first flight: the ClientHello takes %d datagrams) with %s; the server holds no state for this client; ", v.firstFlight(), what) + DatagramComment(d, server)
	case k == v.accepted:
		tok := v.tokenOf()
		what := fmt.Sprintf("echoes the %d-byte Retry token", len(tok))
		if len(v.retries) == 0 {
			what = fmt.Sprintf("carries the %d-byte token of an earlier connection's NEW_TOKEN: address already validated, no Retry", len(tok))
		}
		return head + "client Initial that " + what + "; the server checks it (address, age) and only now creates the connection; " + DatagramComment(d, server)
	case v.accepted < 0 || k < v.accepted:
		return head + "before the server accepted a token; " + DatagramComment(d, server)
	}
	return head + "the server holds this connection; " + DatagramComment(d, server)
}

// errProbeNotRun is a prober step's error when the run ended before it.
var errProbeNotRun = errors.New("quicexp: the prober's step did not run")

// probe returns the prober's step called label (an empty one if it did
// not run).
func (l *retryLab) probe(label string) *probe {
	for _, p := range l.probes {
		if p.label == label {
			return p
		}
	}
	return &probe{label: label, err: errProbeNotRun}
}

// The prober's steps.
const (
	stepNoToken  = "first Initial, no token"
	stepForged   = "forged token (a byte flipped)"
	stepStranger = "the token from another address"
	stepSibling  = "the token from another port of its address"
	stepExpired  = "the token after its lifetime"
	// stepAfterRestart is the first Retry's token shown to the server
	// that replaced the one that issued it.
	stepAfterRestart = "the token after a server restart (same token key)"
)

// check judges the run: a Retry that creates nothing, the token echoed,
// every bad token refused, NEW_TOKEN skipping the Retry until it expires.
func (l *retryLab) check(views []connView) {
	env := l.env
	first := l.probe(stepNoToken)
	env.Check("the first Initial gets a Retry and the server creates nothing", first.retry != nil && first.created() == 0 &&
		first.after.Handshaking == 0 && first.gAfter-first.gBefore <= 0,
		"answer: %s; connections created %d → %d, handshakes in progress %d, goroutines %d → %d (%+d)",
		first.answer(), first.before.Created, first.after.Created, first.after.Handshaking, first.gBefore, first.gAfter, first.gAfter-first.gBefore)
	if len(views) < 3 {
		env.Check("three connections", false, "%d connections ran", len(views))
		return
	}
	v1, v2, v3 := views[0], views[1], views[2]
	at, _ := v1.rc.seenRetries()
	env.Check("connection 1's Retry arrives before the server creates anything", at != nil && at.Created == v1.rc.before.Created &&
		at.Handshaking == v1.rc.before.Handshaking,
		"server before the dial: %d created, %d handshakes in progress (the prober's); when the first Retry reached the client: %s",
		v1.rc.before.Created, v1.rc.before.Handshaking, statsText(at))
	flight := v1.firstFlight()
	echoed := len(v1.retries) >= 1 && flight >= 1 && len(v1.tokens[0]) == 0 && v1.accepted >= 0 && len(v1.usedToken()) > 0
	env.Check("connection 1's second Initial echoes the Retry token", echoed,
		"first flight: %d client Initials without a token, answered by %d Retry (tokens %s B); then client Initials with tokens of %s B; the first of them echoes a Retry's token: %t",
		flight, len(v1.retries), tokenLens(v1.retryTok), tokenLens(v1.tokens[flight:]), v1.accepted >= 0)
	forged := l.probe(stepForged)
	env.Check("a forged token gets a new Retry and no connection", forged.retry != nil && forged.created() == 0,
		"answer: %s; connections created %+d", forged.answer(), forged.created())
	stranger := l.probe(stepStranger)
	env.Check("the token from another address is refused with INVALID_TOKEN, no connection", stranger.invalidToken() && stranger.created() == 0,
		"from %s: %s; connections created %+d", stranger.from, stranger.answer(), stranger.created())
	sibling := l.probe(stepSibling)
	env.Check("the same token from its own address opens a connection", sibling.created() == 1 && sibling.opened != nil,
		"from %s (the Retry went to %s): %s; connections created %+d", sibling.from, first.from, sibling.answer(), sibling.created())
	restarted := l.probe(stepAfterRestart)
	env.Check("the token outlives a server restart with the same token key", restarted.gen == 2 && restarted.created() == 1 && restarted.opened != nil,
		"server #1 closed with %d handshake(s) in progress; server #%d, started on its address with the same token key, answered the token server #1 issued with %s; connections created %+d",
		l.lost.Handshaking, restarted.gen, restarted.answer(), restarted.created())
	expired := l.probe(stepExpired)
	env.Check("the token past its lifetime is refused with INVALID_TOKEN, no connection", expired.invalidToken() && expired.created() == 0,
		"%d ms after the Retry (lifetime %d ms): %s; connections created %+d", expired.sentAt.Sub(first.sentAt).Milliseconds(),
		(2 * retryHandshakeTimeout).Milliseconds(), expired.answer(), expired.created())
	_, got2 := v2.rc.seenRetries()
	skip := v1.newToken != nil && len(v2.retries) == 0 && got2 == 0 && len(v2.tokens) > 0 && len(v2.tokens[0]) > 0 && v2.accepted >= 0
	env.Check("a NEW_TOKEN lets connection 2 skip the Retry", skip,
		"NEW_TOKEN to connection 1 captured: %t; connection 2: first Initial's token %s B, Retries captured %d, received %d",
		v1.newToken != nil, tokenLens(v2.tokens[:min(1, len(v2.tokens))]), len(v2.retries), got2)
	env.Check("a NEW_TOKEN token past its lifetime is ignored: connection 3 gets a Retry", len(v3.tokens) > 0 && len(v3.tokens[0]) > 0 &&
		len(v3.retries) >= 1 && v3.accepted >= 0 && v3.used >= 0,
		"lifetime %d ms, connection 3 dialled %d ms after the NEW_TOKEN arrived; client Initial tokens %s B, Retries %d, one echoed %t",
		newTokenAge.Milliseconds(), v3.rc.start.Sub(l.tokens.putAt(1)).Milliseconds(), tokenLens(v3.tokens), len(v3.retries), v3.used >= 0)
}

// restartLoses is quic/retry's Holding cell for a restart: what the
// closed server held, and whether its token still opened a connection.
func restartLoses(lost quicconn.ServerStats, p *probe) string {
	kept := fmt.Sprintf("the token it issued got %s from the restarted server", p.answer())
	if p.created() == 1 {
		kept = "nothing a token carries: its Retry token opened a connection on the restarted server (same token key)"
	}
	return fmt.Sprintf("%s; the %d handshake(s) in progress it held", kept, lost.Handshaking)
}

// statsText describes the server's counts, "none" for nil.
func statsText(s *quicconn.ServerStats) string {
	if s == nil {
		return "no Retry arrived"
	}
	return fmt.Sprintf("%d created, %d handshakes in progress, %d Retry sent", s.Created, s.Handshaking, s.Retried)
}

// tokenLens lists token sizes: "0,58".
func tokenLens(ts [][]byte) string {
	var s []string
	for _, t := range ts {
		s = append(s, fmt.Sprint(len(t)))
	}
	return strings.Join(s, ",")
}

// report adds the metrics, the table of tokens, the ladder and the
// Holding row.
func (l *retryLab) report(views []connView) {
	env := l.env
	first := l.probe(stepNoToken)
	if len(views) < 3 {
		return
	}
	v1, v2 := views[0], views[1]
	retryBytes, newBytes := len(v1.tokenOf()), len(v2.tokenOf())
	// The token rides in every Initial the client sends after the Retry.
	carried, carriers := 0, 0
	for i, t := range v1.tokens {
		if i >= v1.firstFlight() && len(t) > 0 {
			carried += len(t)
			carriers++
		}
	}
	sibling := l.probe(stepSibling)
	env.Metric("retry_token_bytes", float64(retryBytes))
	env.Metric("new_token_bytes", float64(newBytes))
	env.Metric("connections_created_before_token_count", float64(first.created()))
	env.Metric("goroutines_delta_at_retry_count", float64(first.gAfter-first.gBefore))
	env.Metric("goroutines_delta_at_valid_token_count", float64(sibling.gAfter-sibling.gBefore))
	env.Metric("retry_token_carried_bytes", float64(carried))
	env.Metric("handshake_with_retry_ms", ms(v1.rc.handshake))
	env.Metric("handshake_with_new_token_ms", ms(v2.rc.handshake))
	env.Metric("retry_token_lifetime_ms", ms(2*retryHandshakeTimeout))
	env.Metric("new_token_lifetime_ms", ms(newTokenAge))
	rows := [][]string{{"token shown", "from", "bytes", "server #: its answer", "connections created (by that server)"}}
	for _, p := range l.probes {
		rows = append(rows, []string{p.label, p.from.String(), fmt.Sprint(len(p.token)), fmt.Sprintf("#%d: %s", p.gen, p.answer()), fmt.Sprintf("%d → %d", p.before.Created, p.after.Created)})
	}
	for _, v := range views {
		answer := "handshake at once"
		if len(v.retries) > 0 {
			answer = fmt.Sprintf("%d Retry (one per Initial of the flight; token %d B echoed), then the handshake", len(v.retries), len(v.usedToken()))
		}
		rows = append(rows, []string{fmt.Sprintf("connection %d's first Initial", v.rc.n), v.rc.local.String(), fmt.Sprint(len(v.tokens[0])), fmt.Sprintf("#%d: %s", len(l.old)+1, answer),
			fmt.Sprintf("%d → %d", v.rc.before.Created, v.rc.after.Created)})
	}
	env.Table("Tokens the server was shown (prober: hand-built Initials; connections: quic-go with a token store)", rows)
	env.Note("quic-go binds its tokens to the client's IP address, not its port: the token the Retry gave %s was accepted from %s, and refused from %s.",
		first.from, l.probe(stepSibling).from, l.probe(stepStranger).from)
	retryLadder(env, l, views)
	env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("nothing before the token returns (%d connections created, %+d goroutines); a connection (%+d goroutines) once it does",
			first.created(), first.gAfter-first.gBefore, sibling.gAfter-sibling.gBefore),
		ClientCarries: fmt.Sprintf("a %d-byte Retry token in its second Initial (in each of the %d Initials after the Retry); a %d-byte NEW_TOKEN token for its next connection",
			retryBytes, carriers, newBytes),
		RestartLoses: restartLoses(l.lost, l.probe(stepAfterRestart)),
		CarriedBytes: carried,
		CarriedPer:   "per new connection, in its Initials after the Retry",
	})
	env.Metric("retries_to_connection_1_count", float64(len(v1.retries)))
}

// retryLadder draws the prober's steps and the three connections, every
// message row a captured datagram.
func retryLadder(env *lab.Env, l *retryLab, views []connView) {
	if env.CaptureShort() {
		return
	}
	lad := env.Ladder("Retry: the server keeps nothing until its token returns (as captured)", "client / lab prober", "server")
	var r rows
	for _, p := range l.probes {
		if p.sentD == nil || p.replyD == nil {
			continue
		}
		tok := "no token"
		if len(p.token) > 0 {
			tok = fmt.Sprintf("token %d B", len(p.token))
		}
		r.send(p.sentD.Index, fmt.Sprintf("Initial, %s (%s)", tok, p.label), "prober "+p.from.String(), fmt.Sprintf("%d connections", p.before.Created))
		r.reply(p.replyD.Index, strings.TrimPrefix(strings.TrimPrefix(p.answer(), "a new "), "an "), "", fmt.Sprintf("%d connections (%+d), %+d goroutines", p.after.Created, p.created(), p.gAfter-p.gBefore))
	}
	for _, v := range views {
		who := fmt.Sprintf("conn %d %s", v.rc.n, v.rc.local)
		for i, d := range v.initials[:v.firstFlight()] {
			if v.accepted >= 0 && d.Index > v.ds[v.accepted].Index {
				break
			}
			tok := "no token"
			if t := v.tokens[i]; len(t) > 0 {
				tok = fmt.Sprintf("token %d B", len(t))
			}
			right := "keeps nothing"
			if v.accepted >= 0 && v.ds[v.accepted] == d {
				right = "token valid: connection created"
			}
			r.send(d.Index, "Initial, "+tok, who, right)
		}
		for i, d := range v.retries {
			left := "takes this token"
			if i != v.used {
				left = "ignores (one Retry only)"
			}
			r.reply(d.Index, fmt.Sprintf("Retry, token %d B", len(v.retryTok[i])), left, "keeps nothing")
		}
		if v.used >= 0 {
			d := v.ds[v.accepted]
			r.send(d.Index, fmt.Sprintf("Initial, Retry token %d B", len(v.tokenOf())), who, "token valid: connection created")
		}
		if v.newToken != nil {
			r.reply(v.newToken.Index, "1-RTT "+frames(v.newToken.ClientEvent), "stores the NEW_TOKEN", "connection open")
		}
	}
	r.draw(lad)
}

// sideOf is "server" for a datagram from server, "client" otherwise.
func sideOf(d *Datagram, server netip.AddrPort) string {
	if d.Src == server {
		return "server"
	}
	return "client"
}

// retryEvent names what a datagram of quic/retry is in its first
// packet: a Retry, or an Initial carrying a token; "" otherwise.
func retryEvent(d *Datagram) string {
	switch {
	case d.Type == "retry" || (len(d.Parts) > 0 && d.Parts[0].Type == "retry"):
		return "Retry"
	}
	return ""
}
