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

	"golang.org/x/sys/unix"

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
	grew     chan struct{} // closed and replaced each time n grows
	cs       []net.Conn
}

func newTCPSink() (*tcpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", quicconn.ErrListen, err)
	}
	s := &tcpSink{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln, accepted: make(chan struct{}), grew: make(chan struct{})}
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
		if k > 0 {
			close(s.grew)
			s.grew = make(chan struct{})
		}
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
// An ACK the socket has delayed is sent first (TCP_QUICKACK sends a
// pending one at once), so no segment of it comes after the count.
func (s *tcpSink) count(ctx context.Context) nat.TCPCount {
	select {
	case <-s.accepted:
	case <-ctx.Done():
		return nat.TCPCount{Err: fmt.Errorf("%w: the server accepted no connection: %w", quicconn.ErrTransfer, context.Cause(ctx))}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.cs[0].(*net.TCPConn)
	if c != nil {
		if err := flushACK(c); err != nil {
			return nat.TCPCount{Err: err}
		}
	}
	return nat.CountTCP(c)
}

// flushACK sends the ACK c's kernel is delaying, if any, now.
func flushACK(c *net.TCPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) }); err != nil {
		return err
	}
	return serr
}

// waitReceived waits until the server has read n bytes, or ctx ends.
func (s *tcpSink) waitReceived(ctx context.Context, n int64) error {
	for {
		s.mu.Lock()
		got, grew := s.n, s.grew
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-grew:
		case <-ctx.Done():
			return fmt.Errorf("%w: the server read %d of the %d bytes relayed: %w", quicconn.ErrTransfer, got, n, context.Cause(ctx))
		}
	}
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
