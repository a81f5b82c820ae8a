package quicconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// Errors returned by this package.
var (
	ErrListen    = errors.New("quicconn: cannot listen")
	ErrDial      = errors.New("quicconn: cannot dial")
	ErrProtocol  = errors.New("quicconn: protocol error")
	ErrTransfer  = errors.New("quicconn: transfer failed")
	ErrMigration = errors.New("quicconn: migration failed")
)

// nextProtoH3 is HTTP/3's ALPN.
const nextProtoH3 = "h3"

func nextProtos() []string { return []string{nextProtoH3, ALPN} }

// ALPN is the protocol of the raw streams: upload, download and echo. The
// server also speaks HTTP/3 ("h3").
const ALPN = "statelab-quic"

// Stream operations: the first byte a client writes on a raw stream.
const (
	OpUpload   = 'U' // client sends bytes then FIN; server replies sha256 (32) + count (8)
	OpDownload = 'D' // followed by a big-endian uint64 N; server sends N pattern bytes
	OpEcho     = 'E' // server echoes every byte until FIN
)

// MaxDownload bounds what one stream may ask for.
const MaxDownload = 1 << 30

// Flood defaults of ServerConfig.
const (
	DefaultHandshakeRate = 200
	DefaultMaxHandshakes = 1000
)

// ServerConfig configures a Server. Zero values pick lab defaults.
type ServerConfig struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// KeyLog receives the TLS secrets (NSS key log format).
	KeyLog io.Writer
	// Tracer records every connection's qlog; nil for none.
	Tracer *Tracer
	// Logf receives a line per connection event; nil discards.
	Logf func(format string, args ...any)
	// IdleTimeout closes silent connections; default 5s.
	IdleTimeout time.Duration
	// Rand, when set, is where the server's connection IDs and its token
	// key come from (a lab's seeded stream); default crypto/rand.
	Rand io.Reader
	// RecordWrites keeps a record of every datagram the server writes
	// (Server.Writes), for a lab that matches them with a capture.
	RecordWrites bool

	// Retry validates every client's address with a Retry before the
	// server keeps any state for it (RFC 9000 §8.1.2).
	Retry bool
	// HandshakeRate is how many new handshakes a second (with a burst of
	// as many) the server starts without a Retry; beyond it, a client must
	// first prove its address by echoing a Retry token, which a flood of
	// Initials from spoofed addresses cannot. Default
	// DefaultHandshakeRate.
	HandshakeRate int
	// MaxHandshakes caps the handshakes in progress; a new connection
	// beyond it is refused (CONNECTION_REFUSED). Default
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// HandshakeTimeout abandons a handshake the client went silent in;
	// default 5s. quic-go accepts a Retry token for twice this long.
	HandshakeTimeout time.Duration
	// TokenKey, when set, is the key the server seals its Retry and
	// NEW_TOKEN tokens with: servers (or a restarted server) sharing it
	// accept each other's tokens. Default: drawn from Rand when set,
	// otherwise quic-go's random key.
	TokenKey *quic.TokenGeneratorKey
	// MaxTokenAge is how long a token the server gave in a NEW_TOKEN
	// frame lets a later connection skip the Retry; default quic-go's
	// (24 hours).
	MaxTokenAge time.Duration
	// StatelessResetKey, when set, is the key the server derives its
	// stateless reset tokens from (RFC 9000 §10.3): a server restarted
	// with the same key answers a packet of a connection it forgot with a
	// stateless reset the client recognises. Nil: quic-go sends none.
	StatelessResetKey *quic.StatelessResetKey
	// OnWrite, when set, sees every datagram after the socket wrote it
	// (a count that must survive the server's process being killed).
	OnWrite func(b []byte, to net.Addr)

	// onWrite, for tests, sees every datagram as the socket writes it.
	onWrite func(b []byte, to net.Addr)
}

// Server is a QUIC server speaking the raw stream protocol (ALPN
// "statelab-quic") and, when built with HTTP/3 (see h3.go), HTTP/3 on the
// same UDP socket.
type Server struct {
	// Addr is where it listens.
	Addr netip.AddrPort
	// Cert is its self-signed certificate, for clients to trust.
	Cert *x509.Certificate

	udp     *net.UDPConn
	written *sendLog
	tr      *quic.Transport
	ln      *quic.Listener
	h3      *h3Server
	logf    func(string, ...any)
	gate    *handshakeGate
	open    atomic.Int64 // accepted connections not yet closed
	wg      sync.WaitGroup
	once    sync.Once
}

// NewServer listens and serves until Close.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.HandshakeRate <= 0 {
		cfg.HandshakeRate = DefaultHandshakeRate
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	cert, leaf, err := selfSigned()
	if err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Addr, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("%w on %s: %w", ErrListen, cfg.Addr, err)
	}
	s := &Server{Addr: udp.LocalAddr().(*net.UDPAddr).AddrPort(), Cert: leaf, udp: udp, logf: logf, written: &sendLog{keep: cfg.RecordWrites}}
	s.gate = newHandshakeGate(cfg.Retry, cfg.HandshakeRate, cfg.MaxHandshakes, logf)
	s.tr = &quic.Transport{Conn: plainConn{c: udp, onWrite: cfg.onWrite, afterWrite: cfg.OnWrite, written: s.written}, ConnectionIDLength: 8,
		VerifySourceAddress: s.gate.verify, ConnContext: s.gate.connContext,
		MaxTokenAge: cfg.MaxTokenAge, StatelessResetKey: cfg.StatelessResetKey}
	if cfg.Rand != nil {
		s.tr.ConnectionIDGenerator = &cidGenerator{r: cfg.Rand, n: 8}
		var key quic.TokenGeneratorKey
		if _, err := io.ReadFull(cfg.Rand, key[:]); err != nil {
			udp.Close()
			return nil, fmt.Errorf("%w: token key: %w", ErrListen, err)
		}
		s.tr.TokenGeneratorKey = &key
	}
	if cfg.TokenKey != nil {
		s.tr.TokenGeneratorKey = cfg.TokenKey
	}
	tlsConf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   nextProtos(),
		KeyLogWriter: cfg.KeyLog,
		MinVersion:   tls.VersionTLS13,
	}
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: cfg.HandshakeTimeout}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	s.ln, err = s.tr.Listen(tlsConf, qconf)
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	s.h3 = newH3(httpHandler(), cfg.IdleTimeout)
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// ServerStats are a server's handshake and connection counts.
type ServerStats struct {
	Handshaking int   // handshakes in progress
	Open        int   // connections past their handshake, not yet closed
	Retried     int64 // Initials answered with a Retry (address not yet validated)
	Refused     int64 // connections refused: MaxHandshakes in progress
	Created     int64 // connections quic-go created (each holds state until it ends)
}

// Stats returns the server's handshake and connection counts.
func (s *Server) Stats() ServerStats {
	g := s.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return ServerStats{Handshaking: g.inProgress, Open: int(s.open.Load()), Retried: g.retried, Refused: g.refused, Created: g.created}
}

// Written is how many datagrams the server's socket has written: what a
// capture of its port holds from it, counted at the source.
func (s *Server) Written() int { return s.written.count() }

// Writes are the datagrams the server's socket wrote, in order, when
// ServerConfig.RecordWrites is set.
func (s *Server) Writes() []Write { return s.written.records() }

// Close stops the server and closes every connection.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.ln.Close()
		s.h3.close()
		s.tr.Close()
		s.udp.Close()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept(context.Background())
		if err != nil {
			return
		}
		handshakeDone(conn.Context())
		proto := conn.ConnectionState().TLS.NegotiatedProtocol
		s.logf("connection from %s (%s)", conn.RemoteAddr(), proto)
		s.open.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.open.Add(-1)
			if proto == nextProtoH3 {
				if err := s.h3.serve(conn); err != nil {
					s.logf("HTTP/3 connection from %s: %v", conn.RemoteAddr(), err)
				}
				return
			}
			s.serveRaw(conn)
		}()
	}
}

func (s *Server) serveRaw(conn *quic.Conn) {
	serveStreams(context.Background(), conn, func(st *quic.Stream) {
		if err := serveStream(st); err != nil {
			s.logf("stream %d: %v", st.StreamID(), err)
			st.CancelRead(1)
			st.CancelWrite(1)
		}
	})
}

// serveStreams runs handle on every stream the peer opens on conn, each in
// its own goroutine, until conn (or ctx) ends, and waits for them all.
func serveStreams(ctx context.Context, conn *quic.Conn, handle func(*quic.Stream)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(st)
		}()
	}
}

func serveStream(st *quic.Stream) error {
	var op [1]byte
	if _, err := io.ReadFull(st, op[:]); err != nil {
		return fmt.Errorf("%w: reading the operation: %w", ErrProtocol, err)
	}
	switch op[0] {
	case OpUpload:
		h := sha256.New()
		n, err := io.Copy(h, st)
		if err != nil {
			return fmt.Errorf("%w: upload after %d bytes: %w", ErrTransfer, n, err)
		}
		out := binary.BigEndian.AppendUint64(h.Sum(nil), uint64(n))
		if _, err := st.Write(out); err != nil {
			return err
		}
		return st.Close()
	case OpDownload:
		var nb [8]byte
		if _, err := io.ReadFull(st, nb[:]); err != nil {
			return fmt.Errorf("%w: reading the length: %w", ErrProtocol, err)
		}
		n := binary.BigEndian.Uint64(nb[:])
		if n > MaxDownload {
			return fmt.Errorf("%w: %d bytes asked, at most %d", ErrProtocol, n, MaxDownload)
		}
		if _, err := io.Copy(st, io.LimitReader(&Pattern{}, int64(n))); err != nil {
			return fmt.Errorf("%w: download: %w", ErrTransfer, err)
		}
		return st.Close()
	case OpEcho:
		if _, err := io.Copy(st, st); err != nil {
			return fmt.Errorf("%w: echo: %w", ErrTransfer, err)
		}
		return st.Close()
	}
	return fmt.Errorf("%w: unknown operation %q", ErrProtocol, op[0])
}

// Pattern is an endless reader of the bytes downloads carry: byte i is
// i mod 251, so a receiver can check every byte without a copy.
type Pattern struct{ off int64 }

func (p *Pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// PatternSum is the sha256 of the first n pattern bytes.
func PatternSum(n int64) [32]byte {
	h := sha256.New()
	io.Copy(h, io.LimitReader(&Pattern{}, n))
	return [32]byte(h.Sum(nil))
}

// httpHandler is the HTTP/3 side: an index, /bytes/N and /echo.
func httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "statelab quic server (HTTP/3 over QUIC, connection IDs survive address changes)\n\n"+
			"GET  /bytes/N   N bytes (byte i = i mod 251), long enough to migrate during\n"+
			"POST /echo      the request body back\n\n"+
			"Raw streams: ALPN %q, first byte U (upload → sha256+count), D+uint64 (download), E (echo).\n"+
			"You are %s over %s.\n", ALPN, r.RemoteAddr, r.Proto)
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > MaxDownload {
			http.Error(w, fmt.Sprintf("N must be 0…%d", MaxDownload), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, io.LimitReader(&Pattern{}, n))
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, io.LimitReader(r.Body, MaxDownload))
	})
	return mux
}

// selfSigned makes a P-256 certificate for localhost and the loopback
// addresses, valid for a day.
func selfSigned() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "statelab quic lab"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf, nil
}

// plainConn hides the UDP socket's system-call access from quic-go, so it
// sends one datagram per packet (no GSO batching, which a loopback packet
// socket would record as one oversized datagram) and the capture shows
// every QUIC packet as Wireshark expects.
//
// It also counts the datagrams the socket wrote (written, when set): the
// source's count a capture is checked against, and its record.
type plainConn struct {
	c          *net.UDPConn
	onWrite    func([]byte, net.Addr)
	afterWrite func([]byte, net.Addr)
	onRead     func([]byte, net.Addr)
	written    *sendLog
}

func (p plainConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := p.c.ReadFrom(b)
	if err == nil && p.onRead != nil {
		p.onRead(b[:n], a)
	}
	return n, a, err
}

func (p plainConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if p.onWrite != nil {
		p.onWrite(b, a)
	}
	n, err := p.c.WriteTo(b, a)
	if err == nil && p.written != nil {
		p.written.add(b, a)
	}
	if err == nil && p.afterWrite != nil {
		p.afterWrite(b, a)
	}
	return n, err
}

// Write is one datagram an endpoint's socket wrote, as a capture shows
// it: destination, size, the CRC32C of its payload (as quic-go's qlog logs
// a datagram's checksum) and its QUIC packets' cleartext headers.
type Write struct {
	To      netip.AddrPort
	Size    int
	Sum     uint32
	Headers []Header
}

// sendLog counts the datagrams an endpoint's sockets write (every path)
// and, when keep is set, records each one.
type sendLog struct {
	n    atomic.Int64
	keep bool
	mu   sync.Mutex
	w    []Write
}

func (l *sendLog) add(b []byte, to net.Addr) {
	if l.keep {
		w := Write{Size: len(b), Sum: Checksum(b), Headers: ParseHeaders(b, 8)}
		if ua, ok := to.(*net.UDPAddr); ok {
			w.To = ua.AddrPort()
		}
		l.mu.Lock()
		l.w = append(l.w, w)
		l.n.Add(1)
		l.mu.Unlock()
		return
	}
	l.n.Add(1)
}

func (l *sendLog) count() int { return int(l.n.Load()) }

func (l *sendLog) records() []Write {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Write(nil), l.w...)
}
func (p plainConn) Close() error                       { return p.c.Close() }
func (p plainConn) LocalAddr() net.Addr                { return p.c.LocalAddr() }
func (p plainConn) SetDeadline(t time.Time) error      { return p.c.SetDeadline(t) }
func (p plainConn) SetReadDeadline(t time.Time) error  { return p.c.SetReadDeadline(t) }
func (p plainConn) SetWriteDeadline(t time.Time) error { return p.c.SetWriteDeadline(t) }
func (p plainConn) SetReadBuffer(n int) error          { return p.c.SetReadBuffer(n) }
func (p plainConn) SetWriteBuffer(n int) error         { return p.c.SetWriteBuffer(n) }

// cidGenerator draws connection IDs of n bytes from r (quic-go's
// ConnectionIDGenerator), so a seeded lab chooses the same ones.
type cidGenerator struct {
	mu sync.Mutex
	r  io.Reader
	n  int
}

func (g *cidGenerator) GenerateConnectionID() (quic.ConnectionID, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := make([]byte, g.n)
	if _, err := io.ReadFull(g.r, b); err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(b), nil
}

func (g *cidGenerator) ConnectionIDLen() int { return g.n }

// HTTP3Status says how the server offers HTTP/3.
func HTTP3Status() string { return "on (ALPN h3)" }

// handshakeGate is the server's defence against a flood of Initials: a
// token bucket of handshakes a second, beyond which (or always, with
// retry) a client must first validate its address with a Retry, and a cap
// on the handshakes in progress. quic-go calls verify for every Initial
// without a valid token and connContext for every connection it is about
// to create; a connection's slot is freed when its handshake completes
// (handshakeDone) or it ends, whichever comes first.
type handshakeGate struct {
	retry bool
	rate  float64 // tokens a second; the bucket holds as many
	max   int
	logf  func(string, ...any)

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	inProgress int
	retried    int64
	refused    int64
	created    int64
	flooded    bool      // requiring Retry for the limits (logged on change)
	lastNeed   time.Time // when a Retry was last required
	full       bool      // refusing for the cap (logged on change)
	lastFull   time.Time // when a connection was last refused
}

func newHandshakeGate(retry bool, rate, max int, logf func(string, ...any)) *handshakeGate {
	return &handshakeGate{retry: retry, rate: float64(rate), max: max, logf: logf, tokens: float64(rate), last: time.Now()}
}

// verify is quic.Transport.VerifySourceAddress: true sends a Retry.
func (g *handshakeGate) verify(from net.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	g.tokens = min(g.rate, g.tokens+now.Sub(g.last).Seconds()*g.rate)
	g.last = now
	need := g.retry || g.tokens < 1 || g.inProgress >= g.max
	if !need {
		g.tokens--
	}
	if need {
		g.retried++
	}
	switch {
	case g.retry:
	case need:
		g.lastNeed = now
		if !g.flooded {
			g.flooded = true
			g.logf("more than %.0f new handshakes a second (or %d in progress): clients must validate their address with a Retry first", g.rate, g.max)
		}
	case g.flooded && now.Sub(g.lastNeed) >= gateQuiet:
		g.flooded = false
		g.logf("no Retry needed for %v: handshakes back under the limits (%d Retry packets sent so far)", gateQuiet, g.retried)
	}
	return need
}

// gateQuiet is how long the limits must hold before the gate logs that a
// flood has ended (one line per flood, not one per token).
const gateQuiet = 5 * time.Second

type gateSlotKey struct{}

// gateSlot is one connection's place among the handshakes in progress.
type gateSlot struct {
	g    *handshakeGate
	once sync.Once
}

func (s *gateSlot) release() {
	s.once.Do(func() {
		s.g.mu.Lock()
		s.g.inProgress--
		s.g.mu.Unlock()
	})
}

// connContext is quic.Transport.ConnContext: it takes a slot for the
// handshake, or refuses the connection when every slot is taken.
func (g *handshakeGate) connContext(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	g.mu.Lock()
	full := g.inProgress >= g.max
	if full {
		g.refused++
	} else {
		g.inProgress++
		g.created++
	}
	now := time.Now()
	switch {
	case full:
		g.lastFull = now
		if !g.full {
			g.full = true
			g.logf("%d handshakes in progress: refusing new connections", g.max)
		}
	case g.full && now.Sub(g.lastFull) >= gateQuiet:
		g.full = false
		g.logf("handshakes in progress under %d for %v: accepting new connections (%d refused so far)", g.max, gateQuiet, g.refused)
	}
	g.mu.Unlock()
	if full {
		return nil, fmt.Errorf("%w: %d handshakes in progress", ErrListen, g.max)
	}
	slot := &gateSlot{g: g}
	ctx = context.WithValue(ctx, gateSlotKey{}, slot)
	context.AfterFunc(ctx, slot.release)
	return ctx, nil
}

// handshakeDone frees the slot of a connection whose handshake completed.
func handshakeDone(ctx context.Context) {
	if s, ok := ctx.Value(gateSlotKey{}).(*gateSlot); ok {
		s.release()
	}
}
