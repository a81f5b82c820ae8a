package quicconn

// HTTP/3 (quic-go/http3) on the same server, so that standard QUIC clients
// can be pointed at it, and an HTTP/3 client whose connections come from
// this package's Client (8-byte connection IDs, extra paths for migration).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type h3Server struct{ s *http3.Server }

func newH3(h http.Handler, idle time.Duration) *h3Server {
	return &h3Server{&http3.Server{Handler: h, IdleTimeout: idle}}
}

func (h *h3Server) serve(conn *quic.Conn) error { return h.s.ServeQUICConn(conn) }
func (h *h3Server) close()                      { h.s.Close() }

// H3Config configures an H3Client.
type H3Config struct {
	// Server, when valid, is where packets go (e.g. a NAT in front of the
	// server); otherwise the URL's host and port.
	Server netip.AddrPort
	// Local is the address to send from; default 127.0.0.1:0 towards a
	// loopback server, :0 otherwise.
	Local string
	// Trust is the certificate to trust; nil: the system's roots.
	Trust *x509.Certificate
	// Insecure skips verifying the server's certificate.
	Insecure bool
	// KeyLog receives the TLS secrets (NSS key log format).
	KeyLog io.Writer
	// Tracer records each connection's qlog; nil for none.
	Tracer *Tracer
	// IdleTimeout closes a silent connection; default 5s.
	IdleTimeout time.Duration
	// OnDial, when set, is called with every new connection once its
	// handshake is complete (e.g. to schedule a migration).
	OnDial func(*Client)
}

// H3Client is an HTTP/3 client on an http3.Transport whose Dial hook opens
// each connection as a Client: a quic.Transport of this package's own with
// 8-byte connection IDs, so the connection can be rebound and migrated
// (Client.NewPath) while a request is in flight.
type H3Client struct {
	cfg H3Config
	tr  *http3.Transport

	mu    sync.Mutex
	conns []*Client
}

// NewH3Client makes a client; Close releases its connections and sockets.
func NewH3Client(cfg H3Config) *H3Client {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	h := &H3Client{cfg: cfg}
	tlsConf := &tls.Config{KeyLogWriter: cfg.KeyLog, MinVersion: tls.VersionTLS13, InsecureSkipVerify: cfg.Insecure}
	if cfg.Trust != nil {
		pool := x509.NewCertPool()
		pool.AddCert(cfg.Trust)
		tlsConf.RootCAs = pool
	}
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: cfg.IdleTimeout}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	h.tr = &http3.Transport{TLSClientConfig: tlsConf, QUICConfig: qconf, Dial: h.dial}
	return h
}

// dial is the http3.Transport's Dial hook: addr is the URL's host:port,
// tlsConf already carries ALPN h3 and the server name.
func (h *H3Client) dial(ctx context.Context, addr string, tlsConf *tls.Config, qconf *quic.Config) (*quic.Conn, error) {
	to := h.cfg.Server
	if !to.IsValid() {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", ErrDial, addr, err)
		}
		ap := ua.AddrPort()
		to = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	local := h.cfg.Local
	if local == "" {
		local = "127.0.0.1:0"
		if !to.Addr().IsLoopback() {
			local = ":0"
		}
	}
	c := &Client{}
	tr, _, err := c.transport(local)
	if err != nil {
		return nil, err
	}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(to), tlsConf, qconf)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrDial, to, err)
	}
	c.Conn = conn
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	if h.cfg.OnDial != nil {
		h.cfg.OnDial(c)
	}
	return conn, nil
}

// Conns returns the connections dialled so far, in order: one, unless a
// connection died and the transport opened another.
func (h *H3Client) Conns() []*Client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Client(nil), h.conns...)
}

// Close closes every connection with H3_NO_ERROR (http3.Transport.Close
// would use 0, which HTTP/3 servers log as an error), then the transport
// and every socket.
func (h *H3Client) Close() error {
	conns := h.Conns()
	for _, c := range conns {
		c.Conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
	}
	h.tr.Close()
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// H3Result is what one HTTP/3 GET brought.
type H3Result struct {
	Status        string // e.g. "200 OK"
	StatusCode    int
	Proto         string
	ContentLength int64  // as the response announced; -1 when unknown
	ContentType   string // as the response announced
	Bytes         int64  // body bytes received
	Sum           [32]byte
}

// Get fetches url (https://HOST:PORT/PATH) over HTTP/3, reading the body
// and calling progress after every read with the bytes so far.
func (h *H3Client) Get(ctx context.Context, url string, progress func(int64)) (H3Result, error) {
	return h.Fetch(ctx, url, nil, progress)
}

// Fetch is Get that also writes the body to body, when not nil; a write
// error ends the transfer.
func (h *H3Client) Fetch(ctx context.Context, url string, body io.Writer, progress func(int64)) (H3Result, error) {
	return h.Do(ctx, http.MethodGet, url, nil, body, progress)
}

// Do is Fetch with a method and a request body (nil: none), for POST
// /echo.
func (h *H3Client) Do(ctx context.Context, method, url string, reqBody []byte, body io.Writer, progress func(int64)) (H3Result, error) {
	var rb io.Reader
	if reqBody != nil {
		rb = bytes.NewReader(reqBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rb)
	if err != nil {
		return H3Result{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	resp, err := h.tr.RoundTrip(req)
	if err != nil {
		return H3Result{}, fmt.Errorf("%w: %s %s: %w", ErrTransfer, method, url, err)
	}
	defer resp.Body.Close()
	r := H3Result{Status: resp.Status, StatusCode: resp.StatusCode, Proto: resp.Proto, ContentLength: resp.ContentLength,
		ContentType: resp.Header.Get("Content-Type")}
	hash := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		k, err := resp.Body.Read(buf)
		hash.Write(buf[:k])
		if body != nil && k > 0 {
			if _, werr := body.Write(buf[:k]); werr != nil {
				r.Sum = [32]byte(hash.Sum(nil))
				return r, fmt.Errorf("%w: writing the body after %d bytes: %w", ErrTransfer, r.Bytes, werr)
			}
		}
		r.Bytes += int64(k)
		if k > 0 && progress != nil {
			progress(r.Bytes)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Sum = [32]byte(hash.Sum(nil))
			return r, fmt.Errorf("%w: %s %s after %d bytes: %w", ErrTransfer, method, url, r.Bytes, err)
		}
	}
	r.Sum = [32]byte(hash.Sum(nil))
	return r, nil
}
