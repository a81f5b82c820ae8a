package rawtcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/statelab/statelab/tcpstate"
)

// Listener accepts connections on a lab port (passive OPEN). It is a
// net.Listener; AcceptConn is the typed accept. Each accepted connection
// had its own LISTEN endpoint: the engine serves one connection per
// endpoint, so the listener opens a fresh one after every SYN.
type Listener struct {
	st   *Stack
	port uint16
	opts ConnOptions

	mu      sync.Mutex
	pending *Conn
	queue   chan *Conn
	closed  bool
	done    chan struct{}
}

var _ net.Listener = (*Listener)(nil)

// Listen opens a listener on port (0: a free one of the lab's range).
func (s *Stack) Listen(port uint16, opts *ConnOptions) (*Listener, error) {
	if opts == nil {
		opts = &ConnOptions{}
	}
	p, err := s.allocPort(port)
	if err != nil {
		return nil, err
	}
	l := &Listener{st: s, port: p, opts: *opts, queue: make(chan *Conn, 16), done: make(chan struct{})}
	l.pending = l.newPending()
	s.mu.Lock()
	if _, dup := s.listeners[p]; dup {
		s.mu.Unlock()
		s.releasePort(p)
		return nil, fmt.Errorf("%w: listener on %d", ErrPortInUse, p)
	}
	s.listeners[p] = l
	s.mu.Unlock()
	return l, nil
}

func (l *Listener) newPending() *Conn {
	c := l.st.newConn(l.port, &l.opts)
	c.portFree = true // the listener owns the port
	c.listener = l
	c.mu.Lock()
	_ = c.ep.OpenPassive(c.clock(), l.port, &c.out)
	c.flush(tcpstate.Closed, nil)
	c.mu.Unlock()
	return c
}

// Port is the listening port.
func (l *Listener) Port() uint16 { return l.port }

// AddrPort is the listening address.
func (l *Listener) AddrPort() netip.AddrPort { return netip.AddrPortFrom(l.st.Addr(), l.port) }

// Addr is the listening address as a *net.TCPAddr (net.Listener).
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.AddrPort()) }

// Pending returns the endpoint currently in LISTEN (for watching its state).
func (l *Listener) Pending() *Conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending
}

func (l *Listener) input(f *frame) {
	l.mu.Lock()
	c := l.pending
	l.mu.Unlock()
	peer := l.st.peerState(f)
	c.mu.Lock()
	defer c.unlock()
	c.setRemote(f.src, f.seg.SrcPort) // a LISTEN endpoint only answers the segment at hand
	c.rcvPeer = peer
	c.handle(&f.seg)
	c.rcvPeer = ""
	if c.ep.State() != tcpstate.Listen {
		s := l.st
		s.mu.Lock()
		s.conns[c.key] = c
		s.mu.Unlock()
		l.mu.Lock()
		if !l.closed {
			l.pending = l.newPending()
		}
		l.mu.Unlock()
	}
}

func (l *Listener) ready(c *Conn) {
	select {
	case l.queue <- c:
	default:
	}
}

// Accept waits for a connection to reach ESTABLISHED (net.Listener); after
// Close it returns net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept returning the *Conn, and giving up when ctx ends.
func (l *Listener) AcceptConn(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.queue:
		c.mu.Lock()
		c.listener = nil
		c.portFree = true
		c.mu.Unlock()
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops listening; accepted connections are unaffected.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	p := l.pending
	l.mu.Unlock()
	s := l.st
	s.mu.Lock()
	if s.listeners[l.port] == l {
		delete(s.listeners, l.port)
	}
	s.mu.Unlock()
	p.shutdown(ErrLinkClosed)
	s.releasePort(l.port)
	return nil
}
