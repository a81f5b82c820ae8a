package quicconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPNKV is the protocol of the resumption lab: one request a stream,
// "GET key" (read-only, idempotent) or "PUT key value" (changes the
// store), answered on the same stream.
const ALPNKV = "statelab-kv"

// MaxRequest bounds a request's bytes.
const MaxRequest = 512

// ErrRequest is returned for a request the server cannot parse.
var ErrRequest = errors.New("quicconn: bad request")

// Request is one request of the KV protocol as the server handled it.
type Request struct {
	Method     string // "GET" or "PUT"
	Key, Value string
	// Remote is the client address of the connection it came on.
	Remote netip.AddrPort
	// Early: the server read it before the connection's handshake had
	// completed, so it came in 0-RTT packets and could be a replay.
	Early bool
	// Done: a GET was answered, a PUT applied to the store.
	Done bool
	// Deferred is how long a PUT read early waited for the handshake
	// to complete before it was applied.
	Deferred time.Duration
	// At is when it was answered, applied or given up.
	At time.Time
	// Confirmed: the connection's handshake had completed by then.
	Confirmed bool
}

// ParseRequest reads "GET key" or "PUT key value" (a trailing newline
// allowed; keys and values are printable ASCII without spaces, 1 to 64
// bytes).
func ParseRequest(b []byte) (Request, error) {
	if len(b) > MaxRequest {
		return Request{}, fmt.Errorf("%w: %d bytes, at most %d", ErrRequest, len(b), MaxRequest)
	}
	f := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte(" "))
	for _, w := range f[1:] {
		if len(w) == 0 || len(w) > 64 {
			return Request{}, fmt.Errorf("%w: a key or value of %d bytes (1 to 64)", ErrRequest, len(w))
		}
		for _, c := range w {
			if c <= ' ' || c > '~' {
				return Request{}, fmt.Errorf("%w: byte %#x in a key or value", ErrRequest, c)
			}
		}
	}
	switch {
	case string(f[0]) == "GET" && len(f) == 2:
		return Request{Method: "GET", Key: string(f[1])}, nil
	case string(f[0]) == "PUT" && len(f) == 3:
		return Request{Method: "PUT", Key: string(f[1]), Value: string(f[2])}, nil
	}
	return Request{}, fmt.Errorf("%w: want \"GET key\" or \"PUT key value\", got %d words starting %.8q", ErrRequest, len(f), f[0])
}

// EarlyServerConfig configures an EarlyServer. Zero values pick lab
// defaults.
type EarlyServerConfig struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Cert is the server's certificate; nil makes a self-signed one. A
	// restarted server passes its predecessor's.
	Cert *tls.Certificate
	// TicketKey seals the session tickets the server issues; nil draws a
	// fresh one, so a restart without the old key cannot open any ticket
	// issued before it.
	TicketKey *[32]byte
	KeyLog    io.Writer
	Tracer    *Tracer
	// IdleTimeout closes silent connections, HandshakeTimeout abandons
	// unfinished handshakes (a replayed 0-RTT connection never finishes);
	// default 5s each.
	IdleTimeout, HandshakeTimeout time.Duration
	// Rand, when set, is where the server's connection IDs come from.
	Rand io.Reader
	// RecordWrites keeps a record of every datagram written.
	RecordWrites bool
}

// EarlyServer is a QUIC server that accepts 0-RTT (quic.Config.Allow0RTT,
// an EarlyListener) and speaks the KV protocol: a GET read in 0-RTT is
// answered at once; a PUT read before the handshake completed waits for
// it (HandshakeComplete) before it changes the store, because 0-RTT data
// can be replayed and a replayed connection never completes its
// handshake.
type EarlyServer struct {
	Addr netip.AddrPort
	Cert *x509.Certificate
	// Certificate is the server's TLS certificate, for a restart.
	Certificate tls.Certificate
	// TicketKey is the key sealing its session tickets, for a restart
	// that keeps it.
	TicketKey [32]byte

	udp     *net.UDPConn
	written *sendLog
	tr      *quic.Transport
	ln      *quic.EarlyListener
	wg      sync.WaitGroup
	once    sync.Once

	mu      sync.Mutex
	store   map[string]string
	reqs    []Request
	read    map[netip.AddrPort]int // requests read, by client address
	conns   []*quic.Conn
	changed chan struct{} // closed and replaced at every request read or handled
}

// NewEarlyServer listens and serves until Close.
func NewEarlyServer(cfg EarlyServerConfig) (*EarlyServer, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	s := &EarlyServer{store: map[string]string{}, read: map[netip.AddrPort]int{}, written: &sendLog{keep: cfg.RecordWrites}, changed: make(chan struct{})}
	if cfg.Cert != nil {
		s.Certificate = *cfg.Cert
	} else {
		cert, _, err := selfSigned()
		if err != nil {
			return nil, err
		}
		s.Certificate = cert
	}
	s.Cert = s.Certificate.Leaf
	if cfg.TicketKey != nil {
		s.TicketKey = *cfg.TicketKey
	} else if _, err := rand.Read(s.TicketKey[:]); err != nil {
		return nil, fmt.Errorf("%w: ticket key: %w", ErrListen, err)
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Addr, err)
	}
	if s.udp, err = net.ListenUDP("udp", ua); err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Addr, err)
	}
	s.Addr = s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	s.tr = &quic.Transport{Conn: plainConn{c: s.udp, written: s.written}, ConnectionIDLength: 8}
	if cfg.Rand != nil {
		s.tr.ConnectionIDGenerator = &cidGenerator{r: cfg.Rand, n: 8}
	}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{s.Certificate}, NextProtos: []string{ALPNKV},
		KeyLogWriter: cfg.KeyLog, MinVersion: tls.VersionTLS13}
	tlsConf.SetSessionTicketKeys([][32]byte{s.TicketKey})
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: cfg.HandshakeTimeout, Allow0RTT: true}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	if s.ln, err = s.tr.ListenEarly(tlsConf, qconf); err != nil {
		s.udp.Close()
		return nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Written is how many datagrams the server's socket has written.
func (s *EarlyServer) Written() int { return s.written.count() }

// Writes are the datagrams the server's socket wrote, when recorded.
func (s *EarlyServer) Writes() []Write { return s.written.records() }

// Requests are the requests handled so far, in the order they were
// answered or applied (or given up).
func (s *EarlyServer) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Value is what the store holds for key.
func (s *EarlyServer) Value(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.store[key]
	return v, ok
}

// Close stops the server and closes every connection: what it kept
// (the store, the connections) is gone; its ticket key goes with it
// unless the caller kept TicketKey.
func (s *EarlyServer) Close() error {
	s.once.Do(func() {
		s.ln.Close()
		s.mu.Lock()
		conns := s.conns
		s.mu.Unlock()
		for _, c := range conns {
			c.CloseWithError(0, "server closing")
		}
		s.tr.Close()
		s.udp.Close()
		s.wg.Wait()
	})
	return nil
}

func (s *EarlyServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept(context.Background())
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, conn)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(conn)
		}()
	}
}

func (s *EarlyServer) serve(conn *quic.Conn) {
	serveStreams(conn.Context(), conn, func(st *quic.Stream) { s.handle(conn, st) })
}

// handle reads one request and answers it; see EarlyServer.
func (s *EarlyServer) handle(conn *quic.Conn, st *quic.Stream) {
	b, err := io.ReadAll(io.LimitReader(st, MaxRequest+1))
	if err != nil {
		st.CancelWrite(1)
		return
	}
	req, err := ParseRequest(b)
	if err != nil {
		fmt.Fprintf(st, "ERR %v\n", err)
		st.Close()
		return
	}
	req.Remote = conn.RemoteAddr().(*net.UDPAddr).AddrPort()
	hs := conn.HandshakeComplete()
	select {
	case <-hs:
	default:
		req.Early = true
	}
	var reply string
	s.mu.Lock()
	if req.Method == "GET" {
		v, ok := s.store[req.Key]
		reply = "OK " + v + "\n"
		if !ok {
			reply = "NONE\n"
		}
	}
	s.read[req.Remote]++
	s.notifyLocked()
	s.mu.Unlock()
	switch {
	case req.Method == "GET":
		req.Done = true
	case req.Early:
		// A state-changing request in 0-RTT: not before the handshake
		// proves this connection is the client's, not a replay.
		start := time.Now()
		select {
		case <-hs:
			req.Deferred = time.Since(start)
		case <-conn.Context().Done():
			req.At = time.Now()
			s.record(req, conn)
			st.CancelWrite(2)
			return
		}
		fallthrough
	default:
		s.mu.Lock()
		s.store[req.Key] = req.Value
		s.mu.Unlock()
		req.Done = true
		reply = "APPLIED\n"
	}
	req.At = time.Now()
	s.record(req, conn)
	io.WriteString(st, reply)
	st.Close()
}

func (s *EarlyServer) record(req Request, conn *quic.Conn) {
	select {
	case <-conn.HandshakeComplete():
		req.Confirmed = true
	default:
	}
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *EarlyServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitRead waits until the server has read n requests from the client
// at from (whether or not it has answered them yet).
func (s *EarlyServer) WaitRead(ctx context.Context, from netip.AddrPort, n int) error {
	for range 1 << 10 { // bounded: each round waits for a request
		s.mu.Lock()
		have, ch := s.read[from], s.changed
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d requests from %s read: %w", ErrTransfer, have, n, from, context.Cause(ctx))
		}
	}
	return fmt.Errorf("%w: waiting for requests from %s", ErrTransfer, from)
}

// WaitRequests waits until done reports true for the requests handled
// so far.
func (s *EarlyServer) WaitRequests(ctx context.Context, done func([]Request) bool) error {
	for range 1 << 10 { // bounded: each round waits for a request
		s.mu.Lock()
		reqs, ch := append([]Request(nil), s.reqs...), s.changed
		s.mu.Unlock()
		if done(reqs) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for the server's requests (%d so far): %w", ErrTransfer, len(reqs), context.Cause(ctx))
		}
	}
	return fmt.Errorf("%w: waiting for the server's requests", ErrTransfer)
}

// TicketCache is a tls.ClientSessionCache that remembers what passed
// through it: the session tickets the server issued (their sizes) and the
// session the client last offered back, with its resumption secret, so a
// lab can complete its key log for 0-RTT (EarlySecretLog).
type TicketCache struct {
	inner tls.ClientSessionCache

	mu      sync.Mutex
	tickets [][]byte
	offered *tls.SessionState
	got     chan struct{} // closed and replaced at every Put
}

// NewTicketCache is an empty cache.
func NewTicketCache() *TicketCache {
	return &TicketCache{inner: tls.NewLRUClientSessionCache(8), got: make(chan struct{})}
}

// Get implements tls.ClientSessionCache.
func (c *TicketCache) Get(key string) (*tls.ClientSessionState, bool) {
	cs, ok := c.inner.Get(key)
	var st *tls.SessionState
	if ok && cs != nil {
		_, st, _ = cs.ResumptionState()
	}
	c.mu.Lock()
	c.offered = st
	c.mu.Unlock()
	return cs, ok
}

// Put implements tls.ClientSessionCache.
func (c *TicketCache) Put(key string, cs *tls.ClientSessionState) {
	c.inner.Put(key, cs)
	if cs == nil {
		return
	}
	ticket, _, err := cs.ResumptionState()
	if err != nil {
		return
	}
	c.mu.Lock()
	c.tickets = append(c.tickets, bytes.Clone(ticket))
	close(c.got)
	c.got = make(chan struct{})
	c.mu.Unlock()
}

// Tickets are the session tickets the client received, in order.
func (c *TicketCache) Tickets() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.tickets...)
}

// Offered is the session the client took from the cache to resume on its
// last Get; nil when it found none.
func (c *TicketCache) Offered() *tls.SessionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offered
}

// WaitTickets waits until the client holds n tickets.
func (c *TicketCache) WaitTickets(ctx context.Context, n int) error {
	for range 1 << 10 { // bounded: each round waits for a Put
		c.mu.Lock()
		have, got := len(c.tickets), c.got
		c.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-got:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d session tickets: %w", ErrDial, have, n, context.Cause(ctx))
		}
	}
	return fmt.Errorf("%w: waiting for session tickets", ErrDial)
}

// EarlyClientConfig configures DialEarly.
type EarlyClientConfig struct {
	Server netip.AddrPort
	// Local is the address to send from; default 127.0.0.1:0.
	Local  string
	Trust  *x509.Certificate
	KeyLog io.Writer
	Tracer *Tracer
	// Sessions keeps the client's session tickets between connections.
	Sessions    tls.ClientSessionCache
	IdleTimeout time.Duration
	Rand        io.Reader
	// RecordWrites keeps a record of every datagram written.
	RecordWrites bool
	// KeepFirst keeps the bytes of at most KeepFirst datagrams of the
	// client's first flight, for Client.FirstFlight and InitialFlight.
	KeepFirst int
	// HoldReplies, when set and the client offers a ticket (Sessions is
	// a TicketCache that had one), holds what the server sends back
	// until the client's requests (Client.Requests) have left in 0-RTT
	// packets, by its qlog (Tracer needed), or HoldReplies has passed. On loopback
	// the server's first flight can come back before the client's own
	// goroutine writes its request, which would then go out as 1-RTT; a
	// held reply is what any path longer than a scheduling delay gives.
	HoldReplies time.Duration
	// ReleaseWhen, when set with HoldReplies, is waited for too before
	// the replies are released (a lab's server having read the 0-RTT
	// requests, as it would have long before the client's Finished on
	// any real path); local is the client's address.
	ReleaseWhen func(ctx context.Context, local netip.AddrPort) error
}

// DialEarly opens a connection that sends 0-RTT when Sessions holds a
// ticket for the server, returning before the handshake completes
// (quic.Transport.DialEarly); without a ticket it is a full handshake.
func DialEarly(ctx context.Context, cfg EarlyClientConfig) (*Client, error) {
	if cfg.Local == "" {
		cfg.Local = "127.0.0.1:0"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	c := &Client{}
	c.written.keep = cfg.RecordWrites
	if cfg.Rand != nil {
		c.cids = &cidGenerator{r: cfg.Rand, n: 8}
	}
	la, err := net.ResolveUDPAddr("udp", cfg.Local)
	if err != nil {
		return nil, fmt.Errorf("%w: local address %q: %w", ErrDial, cfg.Local, err)
	}
	udp, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("%w: binding %s: %w", ErrDial, cfg.Local, err)
	}
	c.first = &firstFlight{n: cfg.KeepFirst, hold: cfg.HoldReplies, releaseWhen: cfg.ReleaseWhen, released: make(chan struct{})}
	if tc, ok := cfg.Sessions.(*TicketCache); cfg.HoldReplies <= 0 || !ok || len(tc.Tickets()) == 0 {
		c.first.release() // no ticket to offer: no 0-RTT to wait for
	}
	pc := flightConn{plainConn: plainConn{c: udp, written: &c.written}, f: c.first}
	tr := &quic.Transport{Conn: pc, ConnectionIDLength: 8, ConnectionIDGenerator: c.cids}
	c.mu.Lock()
	c.trs, c.socks = append(c.trs, tr), append(c.socks, udp)
	c.mu.Unlock()
	tlsConf := &tls.Config{NextProtos: []string{ALPNKV}, KeyLogWriter: cfg.KeyLog, MinVersion: tls.VersionTLS13,
		ServerName: "localhost", ClientSessionCache: cfg.Sessions}
	if cfg.Trust != nil {
		pool := x509.NewCertPool()
		pool.AddCert(cfg.Trust)
		tlsConf.RootCAs = pool
	} else {
		tlsConf.InsecureSkipVerify = true
	}
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: cfg.IdleTimeout}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	conn, err := tr.DialEarly(ctx, net.UDPAddrFromAddrPort(cfg.Server), tlsConf, qconf)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrDial, cfg.Server, err)
	}
	c.Conn = conn
	if tc, ok := cfg.Sessions.(*TicketCache); !ok || tc.Offered() == nil {
		c.first.release() // no ticket offered after all
	}
	return c, nil
}

// Request sends one KV request on a new stream and returns the answer.
// On a connection still in its handshake the request goes out as 0-RTT
// data.
func (c *Client) Request(ctx context.Context, req string) (string, error) {
	out, err := c.Requests(ctx, req)
	if len(out) == 0 {
		return "", err
	}
	return out[0], err
}

// Requests sends each request on a stream of its own, all written before
// any answer is read (on a connection in its handshake, all in 0-RTT),
// and returns the answers in order. With EarlyClientConfig.HoldReplies
// it releases the server's replies once the requests have left.
func (c *Client) Requests(ctx context.Context, reqs ...string) ([]string, error) {
	sts := make([]*quic.Stream, len(reqs))
	total := 0
	for i, req := range reqs {
		st, err := c.Conn.OpenStreamSync(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: opening a stream: %w", ErrTransfer, err)
		}
		stop := context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })
		defer stop()
		if _, err := io.WriteString(st, req); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTransfer, err)
		}
		st.Close()
		sts[i] = st
		total += len(req)
	}
	if c.first != nil && c.first.holding() {
		err := c.awaitEarly(ctx, int64(total))
		c.first.release()
		if err != nil {
			return nil, err
		}
	}
	out := make([]string, len(reqs))
	for i, st := range sts {
		b, err := io.ReadAll(io.LimitReader(st, MaxRequest))
		out[i] = string(b)
		if err != nil {
			return out, fmt.Errorf("%w: reading the answer to %q: %w", ErrTransfer, reqs[i], err)
		}
	}
	return out, nil
}

// awaitEarly waits until the connection's qlog shows n bytes of STREAM
// data sent in 0-RTT packets and ReleaseWhen returns, at most the hold's
// time.
func (c *Client) awaitEarly(ctx context.Context, n int64) error {
	ct, ok := c.Conn.QlogTrace().(*ConnTrace)
	if !ok {
		return fmt.Errorf("%w: holding replies needs the client's qlog (a Tracer)", ErrDial)
	}
	ctx, cancel := context.WithTimeout(ctx, c.first.hold)
	defer cancel()
	if err := c.awaitSent(ctx, ct, n); err != nil {
		return err
	}
	if c.first.releaseWhen != nil {
		return c.first.releaseWhen(ctx, c.LocalAddr())
	}
	return nil
}

// awaitSent waits until the trace shows n bytes of STREAM data sent in
// 0-RTT packets.
func (c *Client) awaitSent(ctx context.Context, ct *ConnTrace, n int64) error {
	t := ct.tracer
	for range 1 << 16 { // bounded: each round waits for a qlog event
		t.mu.Lock()
		if t.notify == nil {
			t.notify = make(chan struct{})
		}
		ch := t.notify
		t.mu.Unlock()
		var sent int64
		for _, e := range ct.Packets() {
			if e.Sent && e.Type == "0RTT" {
				sent += e.Stream
			}
		}
		if sent >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d request bytes sent in 0-RTT: %w", ErrTransfer, sent, n, context.Cause(ctx))
		}
	}
	return fmt.Errorf("%w: waiting for the 0-RTT requests", ErrTransfer)
}

// FirstFlight returns the datagrams the client wrote before it read
// anything from the server, in order (at most KeepFirst): what it sends
// unprompted, and what an attacker can replay as a whole.
func (c *Client) FirstFlight() [][]byte {
	if c.first == nil {
		return nil
	}
	d, before := c.first.get()
	return d[:before]
}

// InitialFlight returns every datagram the client wrote before its first
// Handshake or 1-RTT packet (at most KeepFirst): its Initials, ClientHello
// whole, and 0-RTT packets, for EarlySecretLog.
func (c *Client) InitialFlight() [][]byte {
	if c.first == nil {
		return nil
	}
	d, _ := c.first.get()
	return d
}

// firstFlight keeps copies of the first n datagrams written before the
// first Handshake or 1-RTT packet, notes how many came before the first
// datagram read, and holds what is read until released (see
// EarlyClientConfig.HoldReplies).
type firstFlight struct {
	n           int
	hold        time.Duration
	releaseWhen func(context.Context, netip.AddrPort) error
	released    chan struct{}
	once        sync.Once

	mu     sync.Mutex
	d      [][]byte
	read   bool // a datagram was read
	before int  // datagrams kept before the first read
	over   bool // a Handshake or 1-RTT packet was written
}

func (f *firstFlight) add(b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range ParseHeaders(b, 8) {
		if h.Type != "initial" && h.Type != "0RTT" {
			f.over = true
		}
	}
	if f.over || len(f.d) >= f.n {
		return
	}
	f.d = append(f.d, bytes.Clone(b))
	if !f.read {
		f.before = len(f.d)
	}
}

func (f *firstFlight) get() ([][]byte, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.d...), f.before
}

func (f *firstFlight) release() { f.once.Do(func() { close(f.released) }) }

func (f *firstFlight) holding() bool {
	select {
	case <-f.released:
		return false
	default:
		return true
	}
}

// flightConn is the client's socket with its first flight recorded and
// the server's replies held (see firstFlight).
type flightConn struct {
	plainConn
	f *firstFlight
}

func (p flightConn) WriteTo(b []byte, a net.Addr) (int, error) {
	p.f.add(b)
	return p.plainConn.WriteTo(b, a)
}

// ReadFrom delivers a datagram once the replies are released, or the
// hold's time has passed since it arrived.
func (p flightConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := p.plainConn.ReadFrom(b)
	if err != nil {
		return n, a, err
	}
	if p.f.holding() {
		t := time.NewTimer(p.f.hold)
		select {
		case <-p.f.released:
		case <-t.C:
			p.f.release()
		}
		t.Stop()
	}
	p.f.mu.Lock()
	p.f.read = true
	p.f.mu.Unlock()
	return n, a, err
}
