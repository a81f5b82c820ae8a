package quicexp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

// The contrast's TCP endpoints: a client uploading through the TCP NAT,
// and a server hashing what it receives.

type tcpResult struct {
	err     error
	at      time.Time // of err
	rebound <-chan nat.TCPRebinding
}

// tcpUpload writes data through the NAT, which rebinds once a third has
// been relayed, then reads the server's digest, until the connection
// fails (at most stepTimeout).
func tcpUpload(ctx context.Context, n *nat.TCP, data []byte) (r tcpResult) {
	defer func() {
		if r.err != nil {
			r.at = time.Now()
		}
	}()
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", n.Front.String())
	if err != nil {
		r.err = err
		return r
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(stepTimeout))
	r.rebound = n.Rebind(int64(len(data) / 3))
	for off := 0; off < len(data); off += uploadChunk {
		if _, err := c.Write(data[off:min(off+uploadChunk, len(data))]); err != nil {
			r.err = err
			return r
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var reply [32]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: no reply within %v (timeout): %w", quicconn.ErrTransfer, stepTimeout, err)
		}
		r.err = err
	}
	return r
}

// tcpSink is the TCP server: it hashes what it receives and replies with
// the sha256 at EOF.
type tcpSink struct {
	addr     netip.AddrPort
	ln       net.Listener
	wg       sync.WaitGroup
	accepted chan struct{} // closed at the first connection
	mu       sync.Mutex
	n        int64
	cs       []net.Conn
}

func newTCPSink() (*tcpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", quicconn.ErrListen, err)
	}
	s := &tcpSink{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln, accepted: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *tcpSink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.cs = append(s.cs, c)
		if len(s.cs) == 1 {
			close(s.accepted)
		}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve hashes what c sends and replies with the sha256 at EOF.
func (s *tcpSink) serve(c net.Conn) {
	defer s.wg.Done()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	for {
		k, err := c.Read(buf)
		h.Write(buf[:k])
		s.mu.Lock()
		s.n += int64(k)
		s.mu.Unlock()
		if err != nil {
			break
		}
	}
	c.Write(h.Sum(nil))
}

// count is what the server's socket counted (its first connection's
// tcp_info), once it has accepted it: under load the kernel completes the
// handshake and takes data long before the server's goroutine accepts.
func (s *tcpSink) count(ctx context.Context) nat.TCPCount {
	select {
	case <-s.accepted:
	case <-ctx.Done():
		return nat.TCPCount{Err: fmt.Errorf("%w: the server accepted no connection: %w", quicconn.ErrTransfer, context.Cause(ctx))}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.cs[0].(*net.TCPConn)
	return nat.CountTCP(c)
}

func (s *tcpSink) received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *tcpSink) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
