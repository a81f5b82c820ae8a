package quicconn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Server is where packets go: the server, or a middlebox in front of it.
	Server netip.AddrPort
	// Local is the address to send from; default 127.0.0.1:0.
	Local string
	// Trust is the server's certificate; nil skips verification (a lab
	// tool talking to its own self-signed server).
	Trust *x509.Certificate
	// KeyLog receives the TLS secrets (NSS key log format).
	KeyLog io.Writer
	// Tracer records the connection's qlog; nil for none.
	Tracer *Tracer
	// IdleTimeout closes a silent connection; default 5s.
	IdleTimeout time.Duration
	// ALPN to negotiate; default ALPN.
	ALPN string
	// Rand, when set, is where the client's connection IDs come from (a
	// lab's seeded stream), on every path; default crypto/rand. The
	// Initial's destination connection ID is quic-go's own choice.
	Rand io.Reader
	// RecordWrites keeps a record of every datagram the client writes
	// (Client.Writes), for a lab that matches them with a capture.
	RecordWrites bool
	// TokenStore keeps the tokens servers give in NEW_TOKEN frames, so a
	// later connection to the same server can skip its Retry; nil: none.
	TokenStore quic.TokenStore
	// OnReceive, when set, sees every datagram the client's first socket
	// reads, before quic-go does.
	OnReceive func(b []byte, from net.Addr)
}

// Client is one QUIC connection from a quic.Transport whose connection IDs
// are 8 bytes long: plain quic.Dial would use zero-length client connection
// IDs, and then there is nothing to link or unlink.
type Client struct {
	Conn *quic.Conn

	cids    quic.ConnectionIDGenerator // nil: quic-go's, 8 bytes
	written sendLog                    // datagrams written, every path
	onRead  func([]byte, net.Addr)     // the first socket's reads (ClientConfig.OnReceive)
	first   *firstFlight               // the first flight's bytes (DialEarly), nil: not kept

	mu    sync.Mutex
	trs   []*quic.Transport
	socks []*net.UDPConn
}

// Written is how many datagrams the client's sockets (every path) have
// written: what a capture of the path to the server holds from it,
// counted at the source.
func (c *Client) Written() int { return c.written.count() }

// Writes are the datagrams the client's sockets wrote (every path), in
// order, when ClientConfig.RecordWrites is set.
func (c *Client) Writes() []Write { return c.written.records() }

// Dial opens a connection and completes the handshake.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Local == "" {
		cfg.Local = "127.0.0.1:0"
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	if cfg.ALPN == "" {
		cfg.ALPN = ALPN
	}
	c := &Client{onRead: cfg.OnReceive}
	c.written.keep = cfg.RecordWrites
	if cfg.Rand != nil {
		c.cids = &cidGenerator{r: cfg.Rand, n: 8}
	}
	tr, _, err := c.transport(cfg.Local)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{NextProtos: []string{cfg.ALPN}, KeyLogWriter: cfg.KeyLog, MinVersion: tls.VersionTLS13, ServerName: "localhost"}
	if cfg.Trust != nil {
		pool := x509.NewCertPool()
		pool.AddCert(cfg.Trust)
		tlsConf.RootCAs = pool
	} else {
		tlsConf.InsecureSkipVerify = true
	}
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout, HandshakeIdleTimeout: cfg.IdleTimeout, TokenStore: cfg.TokenStore}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(cfg.Server), tlsConf, qconf)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%w %s: %w", ErrDial, cfg.Server, err)
	}
	c.Conn = conn
	return c, nil
}

// transport opens a UDP socket on local and a Transport with 8-byte
// connection IDs over it.
func (c *Client) transport(local string) (*quic.Transport, netip.AddrPort, error) {
	la, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("%w: local address %q: %w", ErrDial, local, err)
	}
	udp, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("%w: binding %s: %w", ErrDial, local, err)
	}
	pc := plainConn{c: udp, written: &c.written}
	c.mu.Lock()
	if len(c.trs) == 0 {
		pc.onRead = c.onRead
	}
	c.mu.Unlock()
	tr := &quic.Transport{Conn: pc, ConnectionIDLength: 8, ConnectionIDGenerator: c.cids}
	c.mu.Lock()
	c.trs = append(c.trs, tr)
	c.socks = append(c.socks, udp)
	c.mu.Unlock()
	return tr, udp.LocalAddr().(*net.UDPAddr).AddrPort(), nil
}

// LocalAddr is the address the connection currently sends from.
func (c *Client) LocalAddr() netip.AddrPort {
	return c.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close closes the connection and every socket.
func (c *Client) Close() error {
	if c.Conn != nil {
		c.Conn.CloseWithError(0, "done")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tr := range c.trs {
		tr.Close()
	}
	for _, s := range c.socks {
		s.Close()
	}
	c.trs, c.socks = nil, nil
	return nil
}

// Path is a second network path of the connection, from its own socket.
type Path struct {
	*quic.Path
	Local netip.AddrPort
}

// NewPath opens a socket on local and adds it as a path; Probe then Switch
// moves the connection onto it.
func (c *Client) NewPath(local string) (*Path, error) {
	tr, la, err := c.transport(local)
	if err != nil {
		return nil, err
	}
	p, err := c.Conn.AddPath(tr)
	if err != nil {
		return nil, fmt.Errorf("%w: adding path %s: %w", ErrMigration, la, err)
	}
	return &Path{Path: p, Local: la}, nil
}

// UploadResult is what the server reported about an upload.
type UploadResult struct {
	Sent     int64
	Received int64 // as the server counted
	Sum      [32]byte
	Match    bool // the server's sha256 equals the client's
}

// Upload sends data on a new stream and reads the server's sha256 and
// count. progress, when set, is called after every chunk with the bytes
// written so far.
func (c *Client) Upload(ctx context.Context, data []byte, chunk int, progress func(int64)) (UploadResult, error) {
	st, err := c.Conn.OpenStreamSync(ctx)
	if err != nil {
		return UploadResult{}, fmt.Errorf("%w: opening a stream: %w", ErrTransfer, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })
	defer stop()
	if chunk <= 0 {
		chunk = 16 << 10
	}
	if _, err := st.Write([]byte{OpUpload}); err != nil {
		return UploadResult{}, fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	var sent int64
	for off := 0; off < len(data); off += chunk {
		n, err := st.Write(data[off:min(off+chunk, len(data))])
		sent += int64(n)
		if err != nil {
			return UploadResult{Sent: sent}, fmt.Errorf("%w after %d bytes: %w", ErrTransfer, sent, err)
		}
		if progress != nil {
			progress(sent)
		}
	}
	if err := st.Close(); err != nil {
		return UploadResult{Sent: sent}, fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	var reply [40]byte
	if _, err := io.ReadFull(st, reply[:]); err != nil {
		return UploadResult{Sent: sent}, fmt.Errorf("%w: reading the server's digest: %w", ErrTransfer, err)
	}
	want := sha256.Sum256(data)
	r := UploadResult{Sent: sent, Received: int64(binary.BigEndian.Uint64(reply[32:])), Sum: [32]byte(reply[:32])}
	r.Match = bytes.Equal(reply[:32], want[:]) && r.Received == int64(len(data))
	return r, nil
}

// Download asks for n pattern bytes and reads them, calling progress after
// every read. It returns the sha256 of what arrived.
func (c *Client) Download(ctx context.Context, n int64, progress func(int64)) (int64, [32]byte, error) {
	return c.DownloadTo(ctx, n, nil, progress)
}

// DownloadTo is Download that also writes the bytes to w, when not nil; a
// write error ends the transfer.
func (c *Client) DownloadTo(ctx context.Context, n int64, w io.Writer, progress func(int64)) (int64, [32]byte, error) {
	st, err := c.Conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, [32]byte{}, fmt.Errorf("%w: opening a stream: %w", ErrTransfer, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })
	defer stop()
	req := binary.BigEndian.AppendUint64([]byte{OpDownload}, uint64(n))
	if _, err := st.Write(req); err != nil {
		return 0, [32]byte{}, fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	st.Close()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var got int64
	for {
		k, err := st.Read(buf)
		h.Write(buf[:k])
		if w != nil && k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				st.CancelRead(2)
				return got, [32]byte(h.Sum(nil)), fmt.Errorf("%w: writing the bytes after %d: %w", ErrTransfer, got, werr)
			}
		}
		got += int64(k)
		if k > 0 && progress != nil {
			progress(got)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return got, [32]byte(h.Sum(nil)), fmt.Errorf("%w after %d bytes: %w", ErrTransfer, got, err)
		}
	}
	return got, [32]byte(h.Sum(nil)), nil
}

// Echo sends b on a new stream and reads it back: a round trip on the
// connection's active path (after a Switch, the first packets the server
// receives from the new path).
func (c *Client) Echo(ctx context.Context, b []byte) ([]byte, error) {
	st, err := c.Conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: opening a stream: %w", ErrTransfer, err)
	}
	stop := context.AfterFunc(ctx, func() { st.CancelRead(2); st.CancelWrite(2) })
	defer stop()
	if _, err := st.Write(append([]byte{OpEcho}, b...)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTransfer, err)
	}
	st.Close()
	got, err := io.ReadAll(st)
	if err != nil {
		return got, fmt.Errorf("%w: reading the echo: %w", ErrTransfer, err)
	}
	return got, nil
}
