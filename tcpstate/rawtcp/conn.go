package rawtcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// StateChange is one transition a connection took, with when.
type StateChange struct {
	At       time.Duration
	From, To tcpstate.State
	Cause    tcpstate.Cause
}

// Conn is one lab connection: a tcpstate.Endpoint driven on real time over
// the stack's raw link. It is a net.Conn: Read, Write, Close, the
// addresses and deadlines behave as they do on a kernel TCP socket, and
// any method may be called from any goroutine. Beside them it has the
// engine's view (State, TCB, History, WaitState), RFC 9293's CloseWrite
// (CLOSE) and Abort (ABORT), and, apart, the fault injection of the lab's
// link (Faults).
type Conn struct {
	st     *Stack
	id     int
	lport  uint16
	key    connKey
	raddr  [4]byte
	rport  uint16
	tap    chan tcpstate.Segment
	faults *Faults

	mu  sync.Mutex
	ep  *tcpstate.Endpoint
	out tcpstate.Output
	// handled is the time the engine was last called with (clock): flush
	// records what that call emitted at that time, so a record's At is
	// the engine's moment, not a later one (c.mu).
	handled    time.Duration
	hook       Hook
	rhook      Hook
	events     func(time.Duration, tcpstate.Event)
	held       []tcpstate.Segment
	parked     []tcpstate.Segment
	timer      *time.Timer
	timerAt    time.Duration
	timerSet   bool
	ch         chan struct{} // closed and replaced whenever something changes
	done       chan struct{} // closed once CLOSED
	doneSet    bool
	history    []StateChange
	listener   *Listener
	gone       bool  // crashed, aborted by the stack or shut down
	goneErr    error // why, for calls after gone
	userClosed bool  // Close was called: reads and writes fail, CLOSED unregisters
	rdl, wdl   time.Time
	portFree   bool
	rcvPeer    string // the peer's state as the segment being handled arrived
	lent       bool   // a waiting Read's buffer is posted to the engine
}

var _ net.Conn = (*Conn)(nil)

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

// LocalAddr is Local as a *net.TCPAddr (net.Conn).
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.Local()) }

// RemoteAddr is Remote as a *net.TCPAddr (net.Conn).
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.Remote()) }

// State returns the engine's current state.
func (c *Conn) State() tcpstate.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep.State()
}

// TCB returns a copy of the engine's TCB.
func (c *Conn) TCB() tcpstate.TCB {
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

// Done is closed when the connection reaches CLOSED (or crashes).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Observed delivers a copy of every segment the connection receives when
// ConnOptions.Observe was set (nil otherwise). Copies that do not fit the
// buffer are dropped.
func (c *Conn) Observed() <-chan tcpstate.Segment { return c.tap }

// Faults is the connection's fault injection: what the lab's link does to
// its segments, and a crash.
func (c *Conn) Faults() *Faults { return c.faults }

// SetDeadline sets the read and write deadlines (net.Conn; zero: none).
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadlines(&t, &t) }

// SetReadDeadline sets the read deadline (net.Conn; zero: none).
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadlines(&t, nil) }

// SetWriteDeadline sets the write deadline (net.Conn; zero: none).
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadlines(nil, &t) }

// setDeadlines sets the deadlines given and wakes the blocked calls, which
// take the new ones.
func (c *Conn) setDeadlines(r, w *time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != nil {
		c.rdl = *r
	}
	if w != nil {
		c.wdl = *w
	}
	c.changed()
	return nil
}

// changed wakes everything waiting on the connection; c.mu is held.
func (c *Conn) changed() {
	close(c.ch)
	c.ch = make(chan struct{})
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

// record stores a record of this connection (at the stack's time now
// unless r.At is set); c.mu is held.
func (c *Conn) record(r Record) {
	if r.At == 0 {
		r.At = c.st.Now()
	}
	r.Conn, r.PeerAddr = c.id, netip.AddrFrom4(c.raddr)
	c.st.record(r)
}

// sentRecord is the record of seg going out with the TCB t.
func sentRecord(seg *tcpstate.Segment, t tcpstate.TCB, note string) Record {
	return Record{Sent: true, Seg: recSeg(seg), Before: t.State, State: t.State, TCB: t, Note: note}
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

func (c *Conn) handle(seg *tcpstate.Segment) {
	before := c.ep.State()
	if c.rhook != nil {
		t := c.ep.TCB()
		if c.rhook(seg, &t) == Drop {
			c.record(Record{Seg: recSeg(seg), Before: before, State: before, TCB: t, PeerState: c.rcvPeer, Note: "lost: dropped by the link before the lab"})
			return
		}
	}
	c.ep.HandleSegment(c.clock(), seg, &c.out)
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

// clock reads the stack's clock for a call of the engine and keeps it for
// the flush that follows. c.mu is held.
func (c *Conn) clock() time.Duration {
	c.handled = c.st.Now()
	return c.handled
}

// flush sends what the engine emitted, records it, applies the events and
// re-arms the timer. c.mu is held.
func (c *Conn) flush(before tcpstate.State, rcvd *tcpstate.Segment) {
	now := c.handled
	tcb := c.ep.TCB()
	if rcvd != nil {
		c.record(Record{At: now, Seg: recSeg(rcvd), Before: before, State: tcb.State, TCB: tcb, PeerState: c.rcvPeer})
	}
	for i := range c.out.Segments {
		c.transmit(now, &c.out.Segments[i], &tcb)
	}
	changed := len(c.out.Segments) > 0 || rcvd != nil
	for _, e := range c.out.Events {
		if c.applyEvent(now, e) {
			changed = true
		}
	}
	c.out.Reset()
	c.rearm(now)
	if changed {
		c.changed()
	}
}

// transmit passes one emitted segment through the send hook: it goes out
// (after any held ones), is dropped, or is held back. c.mu is held.
func (c *Conn) transmit(now time.Duration, seg *tcpstate.Segment, tcb *tcpstate.TCB) {
	v := Pass
	if c.hook != nil {
		v = c.hook(seg, tcb)
	}
	r := sentRecord(seg, *tcb, "")
	r.At = now
	switch v {
	case Drop:
		r.Note = "dropped by the link"
	case Hold, Park:
		cp := *seg
		cp.Payload = append([]byte(nil), seg.Payload...)
		if v == Hold {
			c.held = append(c.held, cp)
		} else {
			c.parked = append(c.parked, cp)
		}
		r.Note = "held by the link"
	default:
		c.releaseHeld()
		if c.st.link.Send(seg, c.raddr) == ErrSegmentLost {
			r.Note = "lost: no buffer space in the kernel (ENOBUFS)"
		}
	}
	c.record(r) // after sending: the peer's state beside it is the one the segment left
}

// applyEvent takes one engine event into the connection: the history, the
// Done channel, the listener's queue, the Events callback. It reports
// whether a waiter may care. c.mu is held.
func (c *Conn) applyEvent(now time.Duration, e tcpstate.Event) bool {
	if c.events != nil {
		c.events(now, e)
	}
	switch e.Kind {
	case tcpstate.EventStateChanged:
		c.history = append(c.history, StateChange{At: now, From: e.From, To: e.To, Cause: e.Cause})
		switch e.To {
		case tcpstate.Closed:
			if c.userClosed {
				c.detach(nil) // before Done: a waiter on Done finds the port free
			}
			c.markDone()
		case tcpstate.Established:
			if c.listener != nil {
				c.listener.ready(c)
			}
		case tcpstate.Listen:
			if e.From == tcpstate.SynReceived && c.listener != nil { // back to LISTEN
				c.detach(nil)
			}
		}
		return true
	case tcpstate.EventReadable, tcpstate.EventWritable, tcpstate.EventReset, tcpstate.EventRefused, tcpstate.EventTimeout:
		return true
	}
	return false
}

func (c *Conn) releaseHeld() {
	if len(c.held) == 0 {
		return
	}
	t := c.ep.TCB()
	for i := range c.held {
		_ = c.st.link.Send(&c.held[i], c.raddr)
		c.record(sentRecord(&c.held[i], t, "released by the link"))
	}
	c.held = c.held[:0]
}

func (c *Conn) markDone() {
	if !c.doneSet {
		c.doneSet = true
		close(c.done)
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
	c.ep.HandleTimer(c.clock(), &c.out)
	c.flush(before, nil)
}

// wait blocks until the connection changes, ctx ends or the deadline
// passes (os.ErrDeadlineExceeded). c.mu is held on entry and on return.
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
		return os.ErrDeadlineExceeded
	}
}

// ioErr is why a read or write cannot go on, or nil; c.mu is held.
func (c *Conn) ioErr(deadline time.Time) error {
	switch {
	case c.userClosed:
		return net.ErrClosed
	case c.gone:
		return c.goneErr
	case !deadline.IsZero() && !time.Now().Before(deadline):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// WaitFor blocks until cond holds for the connection's state, or ctx ends.
func (c *Conn) WaitFor(ctx context.Context, cond func(tcpstate.State) bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond(c.ep.State()) {
		if c.gone {
			return c.goneErr
		}
		if err := c.wait(ctx, time.Time{}); err != nil {
			return fmt.Errorf("rawtcp: waiting in %v: %w", c.ep.State(), err)
		}
	}
	return nil
}

// WaitState blocks until the connection is in state st (or ctx ends).
func (c *Conn) WaitState(ctx context.Context, st tcpstate.State) error {
	return c.WaitFor(ctx, func(s tcpstate.State) bool { return s == st })
}

// WaitTCB blocks until cond holds for the TCB (checked after every change).
func (c *Conn) WaitTCB(ctx context.Context, cond func(*tcpstate.TCB) bool) error {
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

// Read reads in-order data (net.Conn): it blocks until some arrives, the
// peer's FIN (io.EOF), the connection's error (a reset), the read
// deadline (os.ErrDeadlineExceeded) or Close (net.ErrClosed). A waiting
// Read's buffer takes in-order data directly (tcpstate's PostRead), so of
// two Reads waiting at once the one holding earlier octets may return
// after the other: each gets a contiguous run, in order, but net.Conn
// gives concurrent Reads no order between them, and neither does this.
func (c *Conn) Read(p []byte) (int, error) { return c.ReadContext(context.Background(), p) }

// ReadContext is Read honouring ctx.
func (c *Conn) ReadContext(ctx context.Context, p []byte) (int, error) {
	c.mu.Lock()
	defer c.unlock()
	for {
		if err := c.ioErr(c.rdl); err != nil {
			return 0, err
		}
		before := c.ep.State()
		n, err := c.ep.Receive(c.clock(), p, &c.out)
		c.flush(before, nil)
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		// Lend p to the engine while waiting (tcpstate.Endpoint.PostRead):
		// in-order data then lands in it directly, not through the ring.
		// One reader's buffer at a time; whatever landed is returned even
		// when the wait ended in an error, so nothing is lost.
		lend := !c.lent
		if lend {
			c.lent = true
			c.ep.PostRead(p)
		}
		werr := c.wait(ctx, c.rdl)
		if lend {
			c.lent = false
			if k := c.ep.TakePosted(); k > 0 {
				return k, nil
			}
		}
		if werr != nil {
			return 0, werr
		}
	}
}

// Write queues all of p (net.Conn), blocking while the send buffer is
// full, until the write deadline or Close.
func (c *Conn) Write(p []byte) (int, error) { return c.WriteContext(context.Background(), p) }

// WriteContext is Write honouring ctx.
func (c *Conn) WriteContext(ctx context.Context, p []byte) (int, error) {
	c.mu.Lock()
	defer c.unlock()
	done := 0
	for {
		if err := c.ioErr(c.wdl); err != nil {
			return done, err
		}
		before := c.ep.State()
		n, err := c.ep.Send(c.clock(), p[done:], &c.out)
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

// CloseWrite closes the lab's sending side, RFC 9293's CLOSE (as
// *net.TCPConn.CloseWrite): the FIN follows the queued data, and reading
// goes on until the peer's FIN. It does not wait; WaitState(ctx, Closed)
// does. The connection stays registered after CLOSED until Close or
// Unregister.
func (c *Conn) CloseWrite() error {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return c.goneErr
	}
	before := c.ep.State()
	err := c.ep.Close(c.clock(), &c.out)
	c.flush(before, nil)
	if c.ep.State() == tcpstate.Closed {
		c.detach(nil)
	}
	return err
}

// Close is net.Conn's Close: the user is done with the connection. The
// lab's side closes as with CloseWrite if it has not (a FIN after the
// queued data, not a RST); reads and writes, blocked ones included, return
// net.ErrClosed from now on; and once the engine is CLOSED (at once, or
// after LAST-ACK or TIME-WAIT) the connection unregisters, freeing its
// port. A second Close returns net.ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.unlock()
	if c.userClosed {
		return net.ErrClosed
	}
	c.userClosed = true
	c.changed()
	if c.gone {
		return nil
	}
	var err error
	if st := c.ep.State(); st != tcpstate.Closed && !st.SendClosed() {
		err = c.ep.Close(c.clock(), &c.out)
		c.flush(st, nil)
	}
	if c.ep.State() == tcpstate.Closed {
		c.detach(nil)
	}
	return err
}

// Abort resets the connection (RFC 9293 ABORT): a RST when the peer may
// think it is open, then CLOSED.
func (c *Conn) Abort() error {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return c.goneErr
	}
	before := c.ep.State()
	err := c.ep.Abort(c.clock(), &c.out)
	c.flush(before, nil)
	return err
}

// Unregister frees a CLOSED connection's port and demultiplexing entry, so
// the port can be reused; the stack's CLOSED responder then answers
// segments for it. Close does this by itself once CLOSED; Unregister is
// for a connection the user keeps (CloseWrite, Abort, a reset). On a
// connection that is not CLOSED it does nothing.
func (c *Conn) Unregister() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ep.State() == tcpstate.Closed {
		c.detach(nil)
	}
}

// detach unregisters the connection and stops its timer; c.mu is held.
// With a non-nil err the connection is gone for its user too.
func (c *Conn) detach(err error) {
	if err != nil {
		c.gone, c.goneErr = true, err
		if c.timer != nil {
			c.timer.Stop()
		}
		c.markDone()
		c.changed()
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
