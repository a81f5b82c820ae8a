package rawtcp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// ErrPortInUse: the stack already has a connection or listener on the port.
var ErrPortInUse = errors.New("rawtcp: port in use")

// StackConfig configures a Stack.
type StackConfig struct {
	// Link configures the raw link the stack opens.
	Link LinkConfig
	// Engine is the default configuration of the stack's endpoints.
	Engine tcpstate.Config
	// RecordLimit bounds the segment records kept for annotating captures
	// (default 20000); negative turns recording off (bulk transfers).
	RecordLimit int
	// PeerState, when set, is asked for the peer's state beside every
	// recorded segment (e.g. KernelStateOr). It may block (a netlink round
	// trip), so it never runs under a connection's lock: the record is
	// stored at once and its PeerState field filled in as soon as the goroutine
	// that produced it has released the connection (see annotate).
	PeerState func(lab, peer netip.AddrPort) string
	// FirstPort, when set, is the first local port the stack hands out,
	// then the ones after it, wrapping in the link's range; 0 continues a
	// counter shared by every stack of the process. The experiments draw
	// it from their seed, so a run repeats its ports.
	FirstPort uint16
}

// Stack is the driver: it owns the raw link, demultiplexes received
// segments to connections by (local port, remote address, remote port),
// runs each engine's timers on real time, and answers segments for lab
// ports without a connection as a CLOSED TCP does (with a RST), the job the
// kernel's suppressed RSTs would otherwise do.
//
// Concurrency: one goroutine reads the link; each connection serialises its
// engine calls with its own mutex (user calls, segment arrivals and timer
// expiries), so the engine never sees concurrent calls.
type Stack struct {
	cfg   StackConfig
	link  *Link
	epoch time.Time
	// testClock, set by tests before any connection, replaces the clock.
	testClock func() time.Duration

	mu        sync.Mutex
	conns     map[connKey]*Conn
	listeners map[uint16]*Listener
	used      map[uint16]int // local ports in use → users
	portNext  uint32         // ports handed out from FirstPort
	closed    bool
	nextID    int

	closedMu  sync.Mutex
	closedEP  *tcpstate.Endpoint
	closedOut tcpstate.Output

	recMu   sync.Mutex
	records []Record
	recCh   chan struct{} // closed and replaced whenever a record is added
	pending []int         // records whose Peer is still to be looked up
	npend   atomic.Int32  // len(pending), read without recMu on the hot path

	readErr  error
	readDone chan struct{}
}

type connKey struct {
	lport uint16
	raddr [4]byte
	rport uint16
}

var portSeq atomic.Uint32

// NewStack opens a link and starts reading it.
func NewStack(cfg StackConfig) (*Stack, error) {
	if cfg.RecordLimit == 0 {
		cfg.RecordLimit = 20000
	}
	link, err := OpenLink(cfg.Link)
	if err != nil {
		return nil, err
	}
	cfg.Link = link.Config()
	s := &Stack{
		cfg: cfg, link: link, epoch: time.Now(),
		conns:     map[connKey]*Conn{},
		listeners: map[uint16]*Listener{},
		used:      map[uint16]int{},
		closedEP:  tcpstate.NewEndpoint(tcpstate.Config{}),
		readDone:  make(chan struct{}),
		recCh:     make(chan struct{}),
	}
	go func() {
		defer close(s.readDone)
		s.readErr = link.receive(s.deliver)
	}()
	return s, nil
}

// Link returns the stack's link.
func (s *Stack) Link() *Link { return s.link }

// Addr is the lab's address.
func (s *Stack) Addr() netip.Addr { return s.link.Addr() }

// Now is the stack's clock: the monotonic time since the stack started,
// the time base of every engine call and record.
func (s *Stack) Now() time.Duration {
	if s.testClock != nil {
		return s.testClock()
	}
	return time.Since(s.epoch)
}

// Close closes every connection's timers and the link (removing the RST
// filter). Connections still open are abandoned without a segment.
func (s *Stack) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*Conn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	ls := make([]*Listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown(ErrLinkClosed)
	}
	for _, l := range ls {
		l.Close()
	}
	err := s.link.Close()
	<-s.readDone
	return err
}

// allocPort reserves a local port: want, or a free one of the range.
func (s *Stack) allocPort(want uint16) (uint16, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, ErrLinkClosed
	}
	lc := s.cfg.Link
	if want != 0 {
		if want < lc.PortMin || want > lc.PortMax {
			return 0, fmt.Errorf("%w: port %d outside the lab's range %d-%d", ErrPortInUse, want, lc.PortMin, lc.PortMax)
		}
		s.used[want]++
		return want, nil
	}
	span := uint32(lc.PortMax-lc.PortMin) + 1
	next := func() uint32 { return portSeq.Add(1) }
	if f := s.cfg.FirstPort; f >= lc.PortMin && f <= lc.PortMax {
		next = func() uint32 {
			s.portNext++
			return uint32(f-lc.PortMin) + s.portNext - 1
		}
	}
	for range span {
		p := lc.PortMin + uint16(next()%span)
		if s.used[p] == 0 {
			s.used[p]++
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: all %d lab ports busy", ErrPortInUse, span)
}

func (s *Stack) releasePort(p uint16) {
	s.mu.Lock()
	if s.used[p]--; s.used[p] <= 0 {
		delete(s.used, p)
	}
	s.mu.Unlock()
}

// deliver runs on the reader goroutine for every received segment.
func (s *Stack) deliver(f *frame) {
	key := connKey{f.seg.DstPort, f.src, f.seg.SrcPort}
	s.mu.Lock()
	c := s.conns[key]
	var l *Listener
	if c == nil {
		l = s.listeners[f.seg.DstPort]
	}
	s.mu.Unlock()
	switch {
	case c != nil:
		c.input(f)
	case l != nil:
		l.input(f)
	default:
		s.closedInput(f)
	}
}

// closedInput answers a segment for a lab port without a connection the
// way RFC 9293 §3.10.7.1 says a CLOSED endpoint does: a RST unless it is
// one, through a CLOSED engine so the rule lives in one place.
func (s *Stack) closedInput(f *frame) {
	peer := s.peerState(f)
	s.closedMu.Lock()
	defer s.closedMu.Unlock()
	now := s.Now()
	s.closedEP.HandleSegment(now, &f.seg, &s.closedOut)
	from := netip.AddrFrom4(f.src)
	s.record(Record{At: now, Seg: recSeg(&f.seg), State: tcpstate.Closed, Before: tcpstate.Closed, Note: "no TCB", PeerAddr: from, PeerState: peer})
	for i := range s.closedOut.Segments {
		seg := &s.closedOut.Segments[i]
		_ = s.link.Send(seg, f.src)
		s.record(Record{At: now, Sent: true, Seg: recSeg(seg), State: tcpstate.Closed, Before: tcpstate.Closed, Note: "no TCB", PeerAddr: from})
	}
	s.closedOut.Reset()
	s.annotate() // no connection lock is held here
}

// record stores r and wakes WaitRecords. It runs under connection locks, so
// it does not call PeerState: a received segment's record comes with the
// peer's state looked up before the lock (peerState), a sent one's is
// queued for annotate.
func (s *Stack) record(r Record) {
	if s.cfg.RecordLimit < 0 {
		return
	}
	s.recMu.Lock()
	if len(s.records) < s.cfg.RecordLimit {
		if s.cfg.PeerState != nil && r.PeerState == "" && (r.Seg.SrcPort != 0 || r.Seg.DstPort != 0) {
			s.pending = append(s.pending, len(s.records))
			s.npend.Store(int32(len(s.pending)))
		}
		s.records = append(s.records, r)
		close(s.recCh)
		s.recCh = make(chan struct{})
	}
	s.recMu.Unlock()
}

// peerState is the peer's state as received segment f arrives, looked up
// before any connection lock is taken ("" when not recording).
func (s *Stack) peerState(f *frame) string {
	if s.cfg.PeerState == nil || s.cfg.RecordLimit < 0 {
		return ""
	}
	return s.cfg.PeerState(netip.AddrPortFrom(s.Addr(), f.seg.DstPort), netip.AddrPortFrom(netip.AddrFrom4(f.src), f.seg.SrcPort))
}

// annotate looks up the peer's state for the records queued by record and
// fills it in. Callers hold no connection lock: the lookup is a netlink
// round trip that may take up to its timeout, and the reader goroutine or a
// user call must not wait for it with a connection locked. It is called
// right after the lock that produced the records is released, so the state
// is the one the segment left.
func (s *Stack) annotate() {
	if s.npend.Load() == 0 {
		return
	}
	s.recMu.Lock()
	idx := s.pending
	s.pending = nil
	s.npend.Store(0)
	type job struct {
		i         int
		lab, peer netip.AddrPort
	}
	jobs := make([]job, 0, len(idx))
	for _, i := range idx {
		r := &s.records[i]
		lab, peer := r.Seg.DstPort, r.Seg.SrcPort
		if r.Sent {
			lab, peer = peer, lab
		}
		jobs = append(jobs, job{i, netip.AddrPortFrom(s.Addr(), lab), netip.AddrPortFrom(r.PeerAddr, peer)})
	}
	s.recMu.Unlock()
	for _, j := range jobs {
		st := s.cfg.PeerState(j.lab, j.peer)
		s.recMu.Lock()
		s.records[j.i].PeerState = st
		s.recMu.Unlock()
	}
}

// Records returns a copy of every segment the stack sent or received, in
// order, with the lab's state beside each.
func (s *Stack) Records() []Record {
	s.annotate()
	s.recMu.Lock()
	defer s.recMu.Unlock()
	return append([]Record(nil), s.records...)
}

// WaitRecords blocks until cond holds for the stack's records (checked now
// and after every new record) or ctx ends. cond gets a copy it may keep.
// With recording off (RecordLimit < 0) or the limit reached, no record
// arrives and only ctx ends the wait.
func (s *Stack) WaitRecords(ctx context.Context, cond func([]Record) bool) error {
	for {
		s.annotate()
		s.recMu.Lock()
		recs := append([]Record(nil), s.records...)
		ch := s.recCh
		s.recMu.Unlock()
		if cond(recs) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("rawtcp: waiting for records: %w", ctx.Err())
		}
	}
}

// ConnOptions tune one connection.
type ConnOptions struct {
	// Config replaces the stack's engine configuration.
	Config *tcpstate.Config
	// LocalPort picks the lab's port (0: a free one of the range).
	LocalPort uint16
	// SendHook sees every segment the engine emits before it is sent and
	// may drop or hold it (fault injection, from the first SYN on; later
	// Conn.Faults().SetSendHook replaces it); nil sends everything.
	SendHook Hook
	// RecvHook sees every segment that arrives for the connection before
	// the engine does; Drop loses it (the other verdicts pass it).
	RecvHook Hook
	// NoWait makes Dial return as soon as the SYN is out (SYN-SENT).
	NoWait bool
	// Observe makes the connection copy every segment it receives to
	// Observed(), for probes.
	Observe bool
	// Events, when set, sees every event the engine reports (state
	// changes, timers armed and cancelled) with the stack's time. It runs
	// under the connection's lock: it must not block or call the
	// connection.
	Events func(now time.Duration, e tcpstate.Event)
}

// Dial opens a connection from the lab to raddr (active OPEN) and waits
// until it is ESTABLISHED, refused, timed out or ctx ends.
func (s *Stack) Dial(ctx context.Context, raddr netip.AddrPort, opts *ConnOptions) (*Conn, error) {
	if opts == nil {
		opts = &ConnOptions{}
	}
	if !raddr.Addr().Is4() || !raddr.Addr().IsLoopback() {
		return nil, fmt.Errorf("%w: %v", ErrNotLoopback, raddr)
	}
	port, err := s.allocPort(opts.LocalPort)
	if err != nil {
		return nil, err
	}
	c := s.newConn(port, opts)
	c.setRemote(raddr.Addr().As4(), raddr.Port())
	key := c.key
	s.mu.Lock()
	if _, dup := s.conns[key]; dup {
		s.mu.Unlock()
		s.releasePort(port)
		return nil, fmt.Errorf("%w: %v", ErrPortInUse, c.Local())
	}
	s.conns[key] = c
	s.mu.Unlock()

	c.mu.Lock()
	err = c.ep.OpenActive(c.clock(), port, raddr.Port(), &c.out)
	c.flush(tcpstate.Closed, nil)
	c.unlock()
	if err != nil {
		c.shutdown(err)
		return nil, err
	}
	if opts.NoWait {
		return c, nil
	}
	if err := c.WaitFor(ctx, func(st tcpstate.State) bool { return st != tcpstate.SynSent && st != tcpstate.SynReceived }); err != nil {
		return c, err
	}
	if st := c.State(); st == tcpstate.Closed {
		if err := c.Err(); err != nil {
			return c, err
		}
		return c, tcpstate.ErrNotConnected
	}
	return c, nil
}

func (s *Stack) newConn(port uint16, opts *ConnOptions) *Conn {
	cfg := s.cfg.Engine
	if opts.Config != nil {
		cfg = *opts.Config
	}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	c := &Conn{
		st: s, id: id, ep: tcpstate.NewEndpoint(cfg), lport: port, hook: opts.SendHook, rhook: opts.RecvHook, events: opts.Events,
		ch: make(chan struct{}), done: make(chan struct{}),
	}
	// Every emitted segment is transmitted (or copied, when a hook holds
	// it) before the next engine call, under c.mu: its payload may be the
	// send buffer's own octets, one copy fewer per segment.
	c.out.BorrowPayloads = true
	c.faults = &Faults{c: c}
	if opts.Observe {
		c.tap = make(chan tcpstate.Segment, 1024)
	}
	return c
}
