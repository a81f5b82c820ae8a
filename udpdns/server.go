package udpdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Addr to listen on; default "127.0.0.1:0" (the kernel picks the port;
	// Addr reports it once Start has returned).
	Addr string
	// Handler answers every query; default the built-in zone
	// (BuiltinZone). Wrap it in udpdns/dnsfault's middleware to delay,
	// drop, duplicate, hold or misdirect answers.
	Handler dns.Handler
	// TCP also serves DNS over TCP on the same address and port.
	TCP bool
	// TCP limits, each defaulted when zero: how long a connection may sit
	// idle between queries (10s), how many connections may be open at
	// once in total (256) and from one client address (16), and the
	// largest query accepted (4096 bytes; a longer one closes the
	// connection). Connections over a limit are closed on accept.
	TCPIdleTimeout     time.Duration
	MaxConns           int
	MaxConnsPerClient  int
	MaxTCPMessageBytes int
	// Cookies, when set, makes the server answer DNS cookies (RFC 7873,
	// with RFC 9018 server cookies): a query with a client cookie gets a
	// server cookie back, a server cookie that fails the check gets
	// BADCOOKIE and a fresh one, a malformed cookie FORMERR. The server
	// keeps nothing per client: one secret, drawn when the server is
	// built unless given, kept across Stop and Start.
	Cookies *CookieConfig
	// OnTCPClose, when set, is called as each TCP connection the server
	// accepted closes, with the client's address and how long the
	// connection was held (from accept). It must be quick.
	OnTCPClose func(client netip.AddrPort, held time.Duration)
}

// ServerUDPSize is the EDNS0 buffer size the server advertises in the
// OPT record it adds to its answers (the DNS Flag Day 2020 value).
const ServerUDPSize = 1232

// Defaults of the TCP limits.
const (
	DefaultTCPIdleTimeout     = 10 * time.Second
	DefaultMaxConns           = 256
	DefaultMaxConnsPerClient  = 16
	DefaultMaxTCPMessageBytes = 4096
)

// ServerStats counts what the server's handler did with the queries.
type ServerStats struct {
	// Received counts queries handed to the handler.
	Received uint64
	// Answered counts queries that got at least one datagram back;
	// Unanswered those whose handler finished without writing one
	// (dropped, or abandoned when the server stopped).
	Answered, Unanswered uint64
	// Copies counts datagrams written for a query beyond its first: the
	// duplicates.
	Copies uint64
	// Written counts messages written without error (answers and their
	// copies, UDP datagrams and TCP messages); WrittenTCP those written
	// over TCP; WriteErrors the writes that failed.
	Written, WrittenTCP, WriteErrors uint64
	// ConnsRefused counts TCP connections closed on accept for being over
	// a limit.
	ConnsRefused uint64
	// TCPConns counts TCP connections accepted, TCPClosed those closed
	// since; TCPHeld is how long the closed ones were held open, in
	// total, from accept to close.
	TCPConns, TCPClosed uint64
	TCPHeld             time.Duration
	// Cookies counts queries by what the server made of their cookie
	// (with ServerConfig.Cookies), indexed by CookieVerdict.
	Cookies [numCookieVerdicts]uint64
}

// TCPOpen is how many TCP connections were open when the stats were read.
func (st ServerStats) TCPOpen() uint64 { return st.TCPConns - st.TCPClosed }

// Server is a stateless DNS server over UDP built on miekg/dns: it serves
// any dns.Handler on one socket (and, with ServerConfig.TCP, over TCP on
// the same port, within connection and message-size limits), counts what
// the handler wrote, and can be stopped and started again on the same
// address.
//
// A handler that answers after ServeDNS returned (it defers the answer)
// calls the ResponseWriter's Hijack before returning and Close once it is
// done; Stop waits for that Close. The server's ResponseWriters have a
// method Context() context.Context, whose context ends when the server
// stops: a deferred answer still waiting should then give up (dnsfault's
// middleware does).
type Server struct {
	cfg ServerConfig

	received, answered, unanswered, copies, written, writeErrors, connsRefused atomic.Uint64
	tcpConns, tcpClosed, tcpHeldNS, writtenTCP                                 atomic.Uint64
	cookieVerdicts                                                             [numCookieVerdicts]atomic.Uint64
	cookies                                                                    *Cookies // nil: no cookies

	mu   sync.Mutex
	addr netip.AddrPort
	gen  *generation
}

// generation is one run of the server between Start and Stop.
type generation struct {
	conn   *net.UDPConn
	srv    *dns.Server
	ctx    context.Context // ends when Stop begins
	cancel context.CancelFunc
	held   sync.WaitGroup // hijacked answers not yet closed
	done   chan error
	tcp    *dns.Server // nil without TCP
	tdone  chan error
}

// ErrServerRunning / ErrServerStopped report misuse of Start and Stop.
var (
	ErrServerRunning = errors.New("udpdns: server already running")
	ErrServerStopped = errors.New("udpdns: server not running")
)

// NewServer builds a server; Start makes it listen.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Handler == nil {
		cfg.Handler = BuiltinZone()
	}
	if cfg.TCPIdleTimeout <= 0 {
		cfg.TCPIdleTimeout = DefaultTCPIdleTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.MaxConnsPerClient <= 0 {
		cfg.MaxConnsPerClient = DefaultMaxConnsPerClient
	}
	if cfg.MaxTCPMessageBytes <= 0 {
		cfg.MaxTCPMessageBytes = DefaultMaxTCPMessageBytes
	}
	s := &Server{cfg: cfg}
	if cfg.Cookies != nil {
		c, err := NewCookies(*cfg.Cookies)
		if err != nil {
			return nil, err
		}
		s.cookies = c
	}
	return s, nil
}

// StartServer is NewServer followed by Start.
func StartServer(cfg ServerConfig) (*Server, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is where the server listens (after the first Start, kept across
// restarts).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Running reports whether the server is listening.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen != nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	st := ServerStats{Received: s.received.Load(), Answered: s.answered.Load(), Unanswered: s.unanswered.Load(),
		Copies: s.copies.Load(), Written: s.written.Load(), WriteErrors: s.writeErrors.Load(), ConnsRefused: s.connsRefused.Load(),
		TCPClosed: s.tcpClosed.Load(), TCPHeld: time.Duration(s.tcpHeldNS.Load()), WrittenTCP: s.writtenTCP.Load()}
	st.TCPConns = s.tcpConns.Load() // after TCPClosed: never fewer than closed
	for i := range st.Cookies {
		st.Cookies[i] = s.cookieVerdicts[i].Load()
	}
	return st
}

// Cookies is the server's cookie maker and checker, nil without
// ServerConfig.Cookies.
func (s *Server) Cookies() *Cookies { return s.cookies }

// Start listens (on the address of the previous run after a Stop) and
// returns once miekg/dns reports the server started: it is ready, and Addr
// says where.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != nil {
		return ErrServerRunning
	}
	addr := s.cfg.Addr
	if s.addr.IsValid() {
		addr = s.addr.String()
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("udpdns: server address %q: %w", addr, err)
	}
	conn, ln, err := s.listen(ua)
	if err != nil {
		return err
	}
	_ = conn.SetReadBuffer(4 << 20)
	g := &generation{conn: conn, done: make(chan error, 1)}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	started := make(chan struct{})
	g.srv = &dns.Server{PacketConn: conn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(g, w, r) }),
		NotifyStartedFunc: func() { close(started) }}
	go func() { g.done <- g.srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-g.done:
		g.cancel()
		conn.Close()
		if ln != nil {
			ln.Close()
		}
		return fmt.Errorf("udpdns: server did not start: %w", err)
	}
	lap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if ln != nil {
		if err := s.startTCP(g, ln); err != nil {
			g.cancel()
			_ = g.srv.Shutdown()
			conn.Close()
			<-g.done
			return err
		}
	}
	s.addr = netip.AddrPortFrom(lap.Addr().Unmap(), lap.Port())
	s.gen = g
	return nil
}

// listenAttempts bounds the search for a port free for both UDP and TCP
// when the server is asked for port 0.
const listenAttempts = 32

// listenTCP is net.ListenTCP; tests replace it to make a port collide.
var listenTCP = net.ListenTCP

// listen opens the UDP socket and, with TCP set, a TCP listener on the same
// address and port. Port 0 lets the kernel pick the UDP port, which may be
// taken for TCP: then both close and the kernel picks again, at most
// listenAttempts times. A port asked for is tried once.
func (s *Server) listen(ua *net.UDPAddr) (*net.UDPConn, *net.TCPListener, error) {
	attempts := 1
	if ua.Port == 0 && s.cfg.TCP {
		attempts = listenAttempts
	}
	var err error
	for range attempts {
		var conn *net.UDPConn
		conn, err = net.ListenUDP("udp", ua)
		if err != nil {
			return nil, nil, fmt.Errorf("udpdns: server listen %s: %w", ua, err)
		}
		if !s.cfg.TCP {
			return conn, nil, nil
		}
		la := conn.LocalAddr().(*net.UDPAddr)
		var ln *net.TCPListener
		ln, err = listenTCP("tcp", &net.TCPAddr{IP: la.IP, Port: la.Port, Zone: la.Zone})
		if err == nil {
			return conn, ln, nil
		}
		conn.Close()
		err = fmt.Errorf("udpdns: server listen tcp %s: %w", la, err)
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, nil, err
}

// startTCP serves DNS over TCP on ln, behind the connection limits.
func (s *Server) startTCP(g *generation, ln *net.TCPListener) error {
	started := make(chan struct{})
	g.tdone = make(chan error, 1)
	idle := s.cfg.TCPIdleTimeout
	g.tcp = &dns.Server{Listener: &limitListener{Listener: ln, s: s, perClient: map[netip.Addr]int{}},
		Handler:           dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(g, w, r) }),
		IdleTimeout:       func() time.Duration { return idle },
		ReadTimeout:       idle,
		WriteTimeout:      idle,
		DecorateReader:    func(r dns.Reader) dns.Reader { return sizeReader{r, s.cfg.MaxTCPMessageBytes} },
		NotifyStartedFunc: func() { close(started) }}
	go func() { g.tdone <- g.tcp.ActivateAndServe() }()
	select {
	case <-started:
		return nil
	case err := <-g.tdone:
		ln.Close()
		return fmt.Errorf("udpdns: tcp server did not start: %w", err)
	}
}

// sizeReader refuses TCP messages longer than max: the connection closes.
type sizeReader struct {
	dns.Reader
	max int
}

func (r sizeReader) ReadTCP(conn net.Conn, timeout time.Duration) ([]byte, error) {
	b, err := r.Reader.ReadTCP(conn, timeout)
	if err == nil && len(b) > r.max {
		return nil, fmt.Errorf("udpdns: tcp message of %d bytes over the limit of %d", len(b), r.max)
	}
	return b, err
}

// limitListener closes, as soon as they are accepted, connections beyond
// the server's total and per-client limits.
type limitListener struct {
	net.Listener
	s *Server

	mu        sync.Mutex
	total     int
	perClient map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var client netip.Addr
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			client = ta.AddrPort().Addr().Unmap()
		}
		l.mu.Lock()
		ok := l.total < l.s.cfg.MaxConns && l.perClient[client] < l.s.cfg.MaxConnsPerClient
		if ok {
			l.total++
			l.perClient[client]++
		}
		l.mu.Unlock()
		if !ok {
			l.s.connsRefused.Add(1)
			c.Close()
			continue
		}
		l.s.tcpConns.Add(1)
		return &limitConn{Conn: c, l: l, client: client, opened: time.Now()}, nil
	}
}

// limitConn gives its place back when closed.
type limitConn struct {
	net.Conn
	l      *limitListener
	client netip.Addr
	opened time.Time
	once   sync.Once
}

func (c *limitConn) Close() error {
	first := false
	var held time.Duration
	c.once.Do(func() {
		first = true
		held = time.Since(c.opened)
		c.l.s.tcpHeldNS.Add(uint64(held))
		c.l.s.tcpClosed.Add(1)
		c.l.mu.Lock()
		c.l.total--
		if c.l.perClient[c.client]--; c.l.perClient[c.client] <= 0 {
			delete(c.l.perClient, c.client)
		}
		c.l.mu.Unlock()
	})
	err := c.Conn.Close()
	if f := c.l.s.cfg.OnTCPClose; first && f != nil { // after the close: its FIN is on its way
		var ap netip.AddrPort
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ap = ta.AddrPort()
		}
		f(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), held)
	}
	return err
}

// Stop ends the generation's context (answers still deferred are
// abandoned), shuts miekg/dns down (its handlers return, the socket
// closes) and waits for every hijacked answer to be closed. The server
// keeps nothing else: Start picks up where it was.
func (s *Server) Stop() error {
	s.mu.Lock()
	g := s.gen
	s.gen = nil
	s.mu.Unlock()
	if g == nil {
		return ErrServerStopped
	}
	g.cancel()
	err := g.srv.Shutdown()
	if g.tcp != nil {
		_ = g.tcp.Shutdown()
		<-g.tdone
	}
	// Shutdown returned once every handler had: no answer is hijacked
	// after this point, so the wait below cannot miss one.
	g.held.Wait()
	g.conn.Close()
	<-g.done
	return err
}

// Close stops the server if it is running. Safe to call twice.
func (s *Server) Close() error {
	if s.Running() {
		_ = s.Stop()
	}
	return nil
}

func (s *Server) serve(g *generation, w dns.ResponseWriter, r *dns.Msg) {
	s.received.Add(1)
	qw := &queryWriter{ResponseWriter: w, s: s, g: g}
	if s.cookies != nil && !s.judgeCookie(qw, r) {
		qw.returned()
		return
	}
	s.cfg.Handler.ServeDNS(qw, r)
	qw.returned()
}

// judgeCookie checks r's cookie from the client's address. A malformed
// cookie is answered FORMERR, an invalid server cookie BADCOOKIE with a
// fresh one, both without the handler (false); otherwise the handler's
// answer will carry the cookie (true).
func (s *Server) judgeCookie(qw *queryWriter, r *dns.Msg) bool {
	ip, udp := remoteIP(qw.ResponseWriter)
	v, cookie := s.cookies.Judge(r, ip)
	s.cookieVerdicts[v].Add(1)
	switch {
	case v == CookieMalformed:
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		m.SetEdns0(ServerUDPSize, false)
		_ = qw.WriteMsg(m)
		return false
	case v.Bad():
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeBadCookie)
		setCookie(m, cookie, ServerUDPSize)
		_ = qw.WriteMsg(m)
		return false
	}
	qw.cookie = cookie
	if udp {
		qw.udpSize = ClientUDPSize(r)
	}
	return true
}

// remoteIP is the client's address and whether it came over UDP.
func remoteIP(w dns.ResponseWriter) (netip.Addr, bool) {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap(), true
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap(), false
	}
	return netip.Addr{}, false
}

// ClientUDPSize is the largest UDP answer the query allows: its EDNS0
// buffer size, never below 512; 512 without EDNS0.
func ClientUDPSize(req *dns.Msg) int {
	if o := req.IsEdns0(); o != nil {
		return max(int(o.UDPSize()), dns.MinMsgSize)
	}
	return dns.MinMsgSize
}

// queryWriter is the ResponseWriter a handler gets for one query: it
// counts the datagrams written, tracks a hijacked answer until its Close,
// and carries the generation's context.
type queryWriter struct {
	dns.ResponseWriter
	s *Server
	g *generation

	// cookie, when set, goes into every answer written (RFC 7873), which
	// is then truncated again to udpSize (0: over TCP, no limit).
	cookie  []byte
	udpSize int

	mu       sync.Mutex
	hijacked bool
	closed   bool // a hijacked answer's Close came
	finished bool
	writes   int
}

// Context ends when the server stops: a deferred answer gives up then.
func (w *queryWriter) Context() context.Context { return w.g.ctx }

func (w *queryWriter) WriteMsg(m *dns.Msg) error {
	if w.cookie != nil {
		setCookie(m, w.cookie, ServerUDPSize)
		if w.udpSize > 0 {
			m.Truncate(w.udpSize)
		}
	}
	err := w.ResponseWriter.WriteMsg(m)
	w.wrote(err)
	return err
}

func (w *queryWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.wrote(err)
	return n, err
}

func (w *queryWriter) wrote(err error) {
	if err != nil {
		w.s.writeErrors.Add(1)
		return
	}
	w.s.written.Add(1)
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		w.s.writtenTCP.Add(1)
	}
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
}

// Hijack: the handler will answer after it returns, and Close when done.
func (w *queryWriter) Hijack() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hijacked || w.finished {
		return
	}
	w.hijacked = true
	w.g.held.Add(1)
	w.ResponseWriter.Hijack()
}

// Close ends a hijacked answer.
func (w *queryWriter) Close() error {
	w.mu.Lock()
	held := w.hijacked && !w.closed
	w.closed = w.hijacked
	w.mu.Unlock()
	err := w.ResponseWriter.Close()
	if held {
		w.finish()
		w.g.held.Done()
	}
	return err
}

// returned is called once the handler returned: the query is finished
// unless the handler hijacked it.
func (w *queryWriter) returned() {
	w.mu.Lock()
	h := w.hijacked
	w.mu.Unlock()
	if !h {
		w.finish()
	}
}

func (w *queryWriter) finish() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return
	}
	w.finished = true
	switch {
	case w.writes == 0:
		w.s.unanswered.Add(1)
	default:
		w.s.answered.Add(1)
		w.s.copies.Add(uint64(w.writes - 1))
	}
}
