package tcpstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"
)

// ErrDeadline: a Read or Write deadline passed.
var ErrDeadline = errors.New("tcpstate: deadline exceeded")

// Verdict is what a SendHook decides for one outgoing segment.
type Verdict uint8

const (
	// Pass sends the segment (after any held ones).
	Pass Verdict = iota
	// Drop loses the segment: it never reaches the wire.
	Drop
	// Hold keeps the segment back until the next segment that passes, or
	// Release, and sends it then, in order (it is overtaken by nothing).
	Hold
	// Park keeps the segment back until Release: later segments overtake
	// it (reordering).
	Park
)

// SendHook decides the fate of each segment a connection's engine emits;
// tcb is the connection's TCB after the call that emitted it.
type SendHook func(seg *Segment, tcb *TCB) Verdict

// StateChange is one transition a connection took, with when.
type StateChange struct {
	At       time.Duration
	From, To State
	Cause    Cause
}

// Conn is one lab connection: an Endpoint driven on real time over the
// stack's raw link. Read, Write and Close may be called from any goroutine.
type Conn struct {
	st    *Stack
	id    int
	lport uint16
	key   connKey
	raddr [4]byte
	rport uint16
	tap   chan Segment

	mu        sync.Mutex
	ep        *Endpoint
	out       Output
	hook      SendHook
	rhook     SendHook
	events    func(time.Duration, Event)
	held      []Segment
	parked    []Segment
	timer     *time.Timer
	timerAt   time.Duration
	timerSet  bool
	ch        chan struct{} // closed and replaced whenever something changes
	closedCh  chan struct{}
	closedSet bool
	history   []StateChange
	listener  *Listener
	gone      bool  // forgotten, aborted by the stack or shut down
	goneErr   error // why, for calls after gone
	rdl, wdl  time.Time
	portFree  bool
	rcvPeer   string // the peer's state as the segment being handled arrived
}

func (c *Conn) setRemote(addr [4]byte, port uint16) {
	c.raddr, c.rport = addr, port
	c.key = connKey{c.lport, addr, port}
}

// ID numbers the connections of a stack from 1; records carry it.
func (c *Conn) ID() int { return c.id }

// Local is the lab's end of the connection.
func (c *Conn) Local() netip.AddrPort { return netip.AddrPortFrom(c.st.Addr(), c.lport) }

// Remote is the peer's end.
func (c *Conn) Remote() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4(c.raddr), c.rport)
}

// State returns the engine's current state.
func (c *Conn) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep.State()
}

// TCB returns a copy of the engine's TCB.
func (c *Conn) TCB() TCB {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep.TCB()
}

// Err returns why the connection ended, if not gracefully.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.ep.Err(); err != nil {
		return err
	}
	return c.goneErr
}

// History returns the transitions taken so far.
func (c *Conn) History() []StateChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]StateChange(nil), c.history...)
}

// Closed is closed when the connection reaches CLOSED (or is forgotten).
func (c *Conn) Closed() <-chan struct{} { return c.closedCh }

// Observed delivers a copy of every segment the connection receives when
// ConnOptions.Observe was set (nil otherwise). Copies that do not fit the
// buffer are dropped.
func (c *Conn) Observed() <-chan Segment { return c.tap }

// SetHook replaces the send hook.
func (c *Conn) SetHook(h SendHook) {
	c.mu.Lock()
	c.hook = h
	c.mu.Unlock()
}

// SetRecvHook replaces the receive hook.
func (c *Conn) SetRecvHook(h SendHook) {
	c.mu.Lock()
	c.rhook = h
	c.mu.Unlock()
}

// SetDeadline sets the read and write deadlines (zero: none).
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.Unlock()
	return nil
}

// unlock releases c.mu and then looks up the peer's state for the records
// made under it (Stack.annotate), so no lookup runs with c.mu held.
func (c *Conn) unlock() {
	c.mu.Unlock()
	c.st.annotate()
}

// String describes the connection's engine (state and TCB); it takes the
// connection's lock, so it is safe beside the reader and timers.
func (c *Conn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep.String()
}

// input handles a segment from the link (reader goroutine).
func (c *Conn) input(f *frame) {
	peer := c.st.peerState(f) // before the lock: it may block
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		c.mu.Unlock()
		c.st.closedInput(f)
		c.mu.Lock()
		return
	}
	c.rcvPeer = peer
	c.handle(&f.seg)
	c.rcvPeer = ""
}

func (c *Conn) handle(seg *Segment) {
	before := c.ep.State()
	if c.rhook != nil {
		t := c.ep.TCB()
		if c.rhook(seg, &t) == Drop {
			c.st.record(Record{At: c.st.Now(), Conn: c.id, peerAddr: c.raddr, Seg: recSeg(seg), Before: before, State: before, TCB: t, Peer: c.rcvPeer, Note: "lost: dropped by the link before the lab"})
			return
		}
	}
	c.ep.HandleSegment(c.st.Now(), seg, &c.out)
	if c.tap != nil {
		cp := *seg
		cp.Payload = append([]byte(nil), seg.Payload...)
		select {
		case c.tap <- cp:
		default:
		}
	}
	c.flush(before, seg)
}

// flush sends what the engine emitted, records it, applies the events and
// re-arms the timer. c.mu is held.
func (c *Conn) flush(before State, rcvd *Segment) {
	s := c.st
	now := s.Now()
	tcb := c.ep.TCB()
	if rcvd != nil {
		s.record(Record{At: now, Conn: c.id, peerAddr: c.raddr, Seg: recSeg(rcvd), Before: before, State: tcb.State, TCB: tcb, Peer: c.rcvPeer})
	}
	for i := range c.out.Segments {
		seg := &c.out.Segments[i]
		v := Pass
		if c.hook != nil {
			v = c.hook(seg, &tcb)
		}
		r := Record{At: now, Conn: c.id, peerAddr: c.raddr, Sent: true, Seg: recSeg(seg), Before: tcb.State, State: tcb.State, TCB: tcb}
		switch v {
		case Drop:
			r.Note = "dropped by the link"
			s.record(r)
		case Hold, Park:
			cp := *seg
			cp.Payload = append([]byte(nil), seg.Payload...)
			if v == Hold {
				c.held = append(c.held, cp)
			} else {
				c.parked = append(c.parked, cp)
			}
			r.Note = "held by the link"
			s.record(r)
		default:
			c.releaseHeld()
			if s.link.Send(seg, c.raddr) == ErrSegmentLost {
				r.Note = "lost: no buffer space in the kernel (ENOBUFS)"
			}
			s.record(r) // after: the peer's state beside it is the one the segment left
		}
	}
	changed := len(c.out.Segments) > 0 || rcvd != nil
	for _, e := range c.out.Events {
		if c.events != nil {
			c.events(now, e)
		}
		switch e.Kind {
		case EventStateChanged:
			changed = true
			c.history = append(c.history, StateChange{At: now, From: e.From, To: e.To, Cause: e.Cause})
			switch e.To {
			case Closed:
				c.markClosed()
			case Established:
				if c.listener != nil {
					c.listener.ready(c)
				}
			case Listen:
				if e.From == SynReceived && c.listener != nil { // back to LISTEN
					c.detach(nil)
				}
			}
		case EventReadable, EventWritable, EventReset, EventRefused, EventTimeout:
			changed = true
		}
	}
	c.out.Reset()
	c.rearm(now)
	if changed {
		close(c.ch)
		c.ch = make(chan struct{})
	}
}

func (c *Conn) releaseHeld() {
	if len(c.held) == 0 {
		return
	}
	t := c.ep.TCB()
	for i := range c.held {
		_ = c.st.link.Send(&c.held[i], c.raddr)
		c.st.record(Record{At: c.st.Now(), Conn: c.id, peerAddr: c.raddr, Sent: true, Seg: recSeg(&c.held[i]), Before: t.State, State: t.State, TCB: t, Note: "released by the link"})
	}
	c.held = c.held[:0]
}

// Release sends the held and parked segments now.
func (c *Conn) Release() {
	c.mu.Lock()
	defer c.unlock()
	c.releaseHeld()
	for i := range c.parked {
		_ = c.st.link.Send(&c.parked[i], c.raddr)
		t := c.ep.TCB()
		c.st.record(Record{At: c.st.Now(), Conn: c.id, peerAddr: c.raddr, Sent: true, Seg: recSeg(&c.parked[i]), Before: t.State, State: t.State, TCB: t, Note: "released late by the link"})
	}
	c.parked = c.parked[:0]
}

func (c *Conn) markClosed() {
	if !c.closedSet {
		c.closedSet = true
		close(c.closedCh)
	}
}

func (c *Conn) rearm(now time.Duration) {
	at, ok := c.ep.NextTimer()
	if !ok || c.gone {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.timerSet = false
		return
	}
	if c.timerSet && at == c.timerAt {
		return
	}
	c.timerAt, c.timerSet = at, true
	d := max(at-now, 0)
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.onTimer)
	} else {
		c.timer.Reset(d)
	}
}

func (c *Conn) onTimer() {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return
	}
	c.timerSet = false
	before := c.ep.State()
	c.ep.HandleTimer(c.st.Now(), &c.out)
	c.flush(before, nil)
}

// wait blocks until the connection changes, ctx ends or the deadline
// passes. c.mu is held on entry and on return.
func (c *Conn) wait(ctx context.Context, deadline time.Time) error {
	ch := c.ch
	c.unlock()
	defer c.mu.Lock()
	var tc <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-tc:
		return ErrDeadline
	}
}

// WaitFor blocks until cond holds for the connection's state, or ctx ends.
func (c *Conn) WaitFor(ctx context.Context, cond func(State) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond(c.ep.State()) {
		if c.gone {
			return c.goneErr
		}
		if err := c.wait(ctx, time.Time{}); err != nil {
			return fmt.Errorf("tcpstate: waiting in %v: %w", c.ep.State(), err)
		}
	}
	return nil
}

// WaitState blocks until the connection is in state st (or ctx ends).
func (c *Conn) WaitState(ctx context.Context, st State) error {
	return c.WaitFor(ctx, func(s State) bool { return s == st })
}

// WaitTCB blocks until cond holds for the TCB (checked after every change).
func (c *Conn) WaitTCB(ctx context.Context, cond func(*TCB) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		t := c.ep.TCB()
		if cond(&t) {
			return nil
		}
		if c.gone {
			return c.goneErr
		}
		if err := c.wait(ctx, time.Time{}); err != nil {
			return err
		}
	}
}

// Read reads in-order data (io.Reader): it blocks until some arrives, the
// peer's FIN (io.EOF), an error, or the read deadline.
func (c *Conn) Read(p []byte) (int, error) { return c.ReadContext(context.Background(), p) }

// ReadContext is Read honouring ctx.
func (c *Conn) ReadContext(ctx context.Context, p []byte) (int, error) {
	c.mu.Lock()
	defer c.unlock()
	for {
		if c.gone {
			return 0, c.goneErr
		}
		before := c.ep.State()
		n, err := c.ep.Receive(c.st.Now(), p, &c.out)
		c.flush(before, nil)
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		if err := c.wait(ctx, c.rdl); err != nil {
			return 0, err
		}
	}
}

// Write queues all of p (io.Writer), blocking while the send buffer is full.
func (c *Conn) Write(p []byte) (int, error) { return c.WriteContext(context.Background(), p) }

// WriteContext is Write honouring ctx.
func (c *Conn) WriteContext(ctx context.Context, p []byte) (int, error) {
	c.mu.Lock()
	defer c.unlock()
	done := 0
	for {
		if c.gone {
			return done, c.goneErr
		}
		before := c.ep.State()
		n, err := c.ep.Send(c.st.Now(), p[done:], &c.out)
		c.flush(before, nil)
		done += n
		if err != nil || done == len(p) {
			return done, err
		}
		if err := c.wait(ctx, c.wdl); err != nil {
			return done, err
		}
	}
}

// Close closes the lab's sending side (CLOSE): the FIN follows the queued
// data. It does not wait; WaitState(ctx, Closed) does.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return c.goneErr
	}
	before := c.ep.State()
	err := c.ep.Close(c.st.Now(), &c.out)
	c.flush(before, nil)
	if c.ep.State() == Closed {
		c.detach(nil)
	}
	return err
}

// Abort resets the connection (ABORT): a RST when the peer may think it is
// open, then CLOSED.
func (c *Conn) Abort() error {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return c.goneErr
	}
	before := c.ep.State()
	err := c.ep.Abort(c.st.Now(), &c.out)
	c.flush(before, nil)
	return err
}

// Forget drops the TCB without a word, as a host that crashes and restarts
// does: no segment is sent, timers stop, and from now on the stack answers
// the peer's segments as a CLOSED endpoint (with RST).
func (c *Conn) Forget() {
	c.mu.Lock()
	defer c.unlock()
	c.detach(ErrConnectionAborted)
	c.st.record(Record{At: c.st.Now(), Conn: c.id, peerAddr: c.raddr, Note: "lab forgot its TCB (crash)", State: Closed, Before: c.ep.State()})
}

// Inject sends seg from the connection's ports as it is, bypassing the
// engine (the probe's "inject" step). Ports are filled in when zero.
func (c *Conn) Inject(seg Segment) error {
	c.mu.Lock()
	defer c.unlock()
	if seg.SrcPort == 0 {
		seg.SrcPort = c.lport
	}
	if seg.DstPort == 0 {
		seg.DstPort = c.rport
	}
	t := c.ep.TCB()
	err := c.st.link.Send(&seg, c.raddr)
	c.st.record(Record{At: c.st.Now(), Conn: c.id, peerAddr: c.raddr, Sent: true, Seg: recSeg(&seg), Before: t.State, State: t.State, TCB: t, Note: "injected"})
	return err
}

// detach unregisters the connection and stops its timer; c.mu is held.
// With a non-nil err the connection is gone for its user too.
func (c *Conn) detach(err error) {
	if err != nil {
		c.gone, c.goneErr = true, err
		if c.timer != nil {
			c.timer.Stop()
		}
		c.markClosed()
		close(c.ch)
		c.ch = make(chan struct{})
	}
	s := c.st
	s.mu.Lock()
	if s.conns[c.key] == c {
		delete(s.conns, c.key)
	}
	s.mu.Unlock()
	if !c.portFree {
		c.portFree = true
		s.releasePort(c.lport)
	}
}

// shutdown is detach from outside the lock.
func (c *Conn) shutdown(err error) {
	c.mu.Lock()
	c.detach(err)
	c.mu.Unlock()
}

// Release of the port and table entry once CLOSED is done by Done.

// Done unregisters a CLOSED connection (after TIME-WAIT, reset or abort)
// so its port can be reused; segments for it are then answered by the
// stack's CLOSED responder. Calls on a connection that is not CLOSED are
// ignored.
func (c *Conn) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep.State() == Closed {
		c.detach(nil)
	}
}

var _ io.ReadWriter = (*Conn)(nil)

// Listener accepts connections on a lab port (passive OPEN). Each accepted
// connection had its own LISTEN endpoint: the engine serves one connection
// per endpoint, so the listener opens a fresh one after every SYN.
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
	_ = c.ep.OpenPassive(l.st.Now(), l.port, &c.out)
	c.flush(Closed, nil)
	c.mu.Unlock()
	return c
}

// Port is the listening port.
func (l *Listener) Port() uint16 { return l.port }

// Addr is the listening address.
func (l *Listener) Addr() netip.AddrPort { return netip.AddrPortFrom(l.st.Addr(), l.port) }

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
	if c.ep.State() != Listen {
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

// Accept waits for a connection to reach ESTABLISHED.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.queue:
		c.mu.Lock()
		c.listener = nil
		c.portFree = true
		c.mu.Unlock()
		return c, nil
	case <-l.done:
		return nil, ErrLinkClosed
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
