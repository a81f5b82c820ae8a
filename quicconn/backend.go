package quicconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// BackendConfig configures a Backend: a QUIC server behind a middlebox
// that hands it its socket.
type BackendConfig struct {
	// Conn is the backend's socket (a load balancer's encapsulating
	// wrapper, for instance); the Backend closes it.
	Conn net.PacketConn
	// Cert is the certificate the backends share, so a client trusts
	// any of them (SharedCert makes one).
	Cert tls.Certificate
	// CIDs issues the backend's connection IDs (a load balancer's
	// server-ID-carrying ones); nil: 8 random bytes.
	CIDs quic.ConnectionIDGenerator
	// ResetKey, shared by the backends, lets one that does not know a
	// connection send a stateless reset its client recognises.
	ResetKey *quic.StatelessResetKey
	KeyLog   io.Writer
	Tracer   *Tracer
	// IdleTimeout closes silent connections; default 5s.
	IdleTimeout time.Duration
}

// Backend is a QUIC server on a socket it is given, speaking the raw
// stream protocol (ALPN "statelab-quic": upload, download, echo).
type Backend struct {
	Addr netip.AddrPort // the socket's address

	tr   *quic.Transport
	ln   *quic.Listener
	wg   sync.WaitGroup
	once sync.Once
}

// SharedCert makes one self-signed certificate for several backends and
// returns it with its parsed leaf, for clients to trust.
func SharedCert() (tls.Certificate, *x509.Certificate, error) { return selfSigned() }

// NewBackend serves on cfg.Conn until Close.
func NewBackend(cfg BackendConfig) (*Backend, error) {
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	ua, ok := cfg.Conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("%w: not a UDP socket: %v", ErrListen, cfg.Conn.LocalAddr())
	}
	b := &Backend{Addr: ua.AddrPort()}
	b.tr = &quic.Transport{Conn: cfg.Conn, ConnectionIDLength: 8, ConnectionIDGenerator: cfg.CIDs, StatelessResetKey: cfg.ResetKey}
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cfg.Cert}, NextProtos: []string{ALPN}, KeyLogWriter: cfg.KeyLog, MinVersion: tls.VersionTLS13}
	qconf := &quic.Config{MaxIdleTimeout: cfg.IdleTimeout}
	if cfg.Tracer != nil {
		qconf.Tracer = cfg.Tracer.Hook
	}
	var err error
	if b.ln, err = b.tr.Listen(tlsConf, qconf); err != nil {
		cfg.Conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// Close stops the backend, closing every connection and its socket.
func (b *Backend) Close() error {
	b.once.Do(func() {
		b.ln.Close()
		b.tr.Close()
		b.tr.Conn.Close()
		b.wg.Wait()
	})
	return nil
}

func (b *Backend) accept() {
	defer b.wg.Done()
	for {
		conn, err := b.ln.Accept(context.Background())
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			serveStreams(context.Background(), conn, func(st *quic.Stream) {
				if err := serveStream(st); err != nil {
					st.CancelRead(1)
					st.CancelWrite(1)
				}
			})
		}()
	}
}
