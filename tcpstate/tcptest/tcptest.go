package tcptest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// The fixed numbers of a script.
const (
	LocalPort  uint16       = 80    // the endpoint's port
	PeerPort   uint16       = 4000  // the scripted peer's port
	LocalISS   tcpstate.Seq = 100   // the endpoint's ISS, unless Config.ISS is set
	PeerISS    tcpstate.Seq = 300   // the peer's ISS in Reach's handshakes
	PeerWindow uint16       = 64000 // the window field of the peer's segments, unless Win says otherwise
	// LocalTSOffset is the endpoint's timestamp offset unless
	// Config.TSOffset is set: its TSval is the script's time in ms (the
	// script starts at 1 s, TSval 1000).
	LocalTSOffset uint32 = 0
	// PeerTSOffset is added to the peer's TSval (see Negotiate).
	PeerTSOffset uint32 = 50000
)

// TB is what a Peer needs of its test: *testing.T and *testing.B satisfy
// it. Fatalf is expected to stop the test (as testing's does); an
// implementation that returns lets the script run on.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Peer is the scripted remote end of one Endpoint. It is not safe for
// concurrent use.
type Peer struct {
	t       TB
	e       *tcpstate.Endpoint
	mss     uint16 // the MSS option of the peer's SYNs in Reach
	start   time.Duration
	now     time.Duration
	out     tcpstate.Output
	pending []tcpstate.Segment // emitted, not yet checked
	options bool               // Negotiate: SACK-permitted and timestamps on
	lastTS  uint32             // the endpoint's last TSval, echoed by Send
	events  []tcpstate.Event
	seen    int // events already returned by NewEvents
	ladder  []rung
	lent    []byte // the buffer of a posted read (PostRead), or nil
}

// New returns a peer for a new CLOSED endpoint with configuration cfg,
// whose ISS is LocalISS unless cfg.ISS is set, and whose timestamp clock
// starts at LocalTSOffset unless cfg.TSOffset is set.
func New(t TB, cfg tcpstate.Config) *Peer {
	if cfg.ISS == nil {
		cfg.ISS = func() tcpstate.Seq { return LocalISS }
	}
	if cfg.TSOffset == nil {
		cfg.TSOffset = func() uint32 { return LocalTSOffset }
	}
	mss := uint16(1460)
	if cfg.MSS > 0 && cfg.MSS < 65536 {
		mss = uint16(cfg.MSS)
	}
	return &Peer{t: t, e: tcpstate.NewEndpoint(cfg), mss: mss, start: time.Second, now: time.Second}
}

// Endpoint is the endpoint under test, for calls the script has no step
// for; pass Peer.Now and an Output to Call to keep the ladder.
func (p *Peer) Endpoint() *tcpstate.Endpoint { return p.e }

// Now is the simulated time (it starts at one second).
func (p *Peer) Now() time.Duration { return p.now }

// State is the endpoint's state.
func (p *Peer) State() tcpstate.State { return p.e.State() }

// TCB is a copy of the endpoint's TCB.
func (p *Peer) TCB() tcpstate.TCB { return p.e.TCB() }

// BorrowPayloads lets the endpoint's segments borrow its send buffer
// (tcpstate.Output.BorrowPayloads), as rawtcp's driver does. The peer
// copies each payload as soon as the call that emitted it returns, as a
// driver transmits it, so Want and Pending see the octets of that moment.
func (p *Peer) BorrowPayloads() *Peer {
	p.out.BorrowPayloads = true
	return p
}

// Pending returns the segments the endpoint emitted that no Want has
// checked yet, oldest first.
func (p *Peer) Pending() []tcpstate.Segment { return p.pending }

// Discard drops the pending segments and returns them.
func (p *Peer) Discard() []tcpstate.Segment {
	s := p.pending
	p.pending = nil
	return s
}

// Events returns every event the endpoint has reported.
func (p *Peer) Events() []tcpstate.Event { return p.events }

// NewEvents returns the events reported since the last call.
func (p *Peer) NewEvents() []tcpstate.Event {
	ev := p.events[p.seen:]
	p.seen = len(p.events)
	return ev
}

// HasEvent reports whether the endpoint has reported an event of kind k.
func (p *Peer) HasEvent(k tcpstate.EventKind) bool {
	for _, e := range p.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// ---- the peer's segments ----

// Send delivers a segment from the peer: flags, SEQ and ACK, the window
// PeerWindow, and what opts add (text, window, options, ports).
func (p *Peer) Send(flags tcpstate.Flags, seq, ack tcpstate.Seq, opts ...Opt) {
	p.t.Helper()
	s := newSpec(flags, seq, ack, opts)
	if s.set&setWindow == 0 {
		s.seg.Window = PeerWindow
	}
	if s.set&setLen != 0 && s.set&setPayload == 0 {
		s.seg.Payload = make([]byte, s.n)
	}
	if p.options {
		o := &s.seg.Options
		if flags&tcpstate.SYN != 0 {
			o.SACKPermitted = true
		}
		if s.set&setTS == 0 && flags&tcpstate.RST == 0 {
			o.HasTimestamps, o.TSVal, o.TSEcr = true, p.PeerTSVal(), p.lastTS
			if flags&tcpstate.ACK == 0 {
				o.TSEcr = 0
			}
		}
	}
	p.SendSegment(s.seg)
}

// Negotiate makes the peer offer SACK-permitted and timestamps in every
// SYN it sends (Reach's handshakes included) and put the timestamps option
// on every other segment but a RST: TSval PeerTSVal, TSecr the endpoint's
// last TSval. A TS option given to Send replaces it. It returns p.
func (p *Peer) Negotiate() *Peer {
	p.options = true
	return p
}

// EndpointTSVal is the endpoint's last TSval (0 before any), what the
// peer echoes in TSecr.
func (p *Peer) EndpointTSVal() uint32 { return p.lastTS }

// PeerTSVal is the TSval the peer sends now: the script's time in ms plus
// PeerTSOffset.
func (p *Peer) PeerTSVal() uint32 { return uint32(p.now/time.Millisecond) + PeerTSOffset }

// SendSegment delivers seg as it is, from the peer; zero ports are the
// peer's and the endpoint's.
func (p *Peer) SendSegment(seg tcpstate.Segment) {
	p.t.Helper()
	if seg.SrcPort == 0 {
		seg.SrcPort = PeerPort
	}
	if seg.DstPort == 0 {
		seg.DstPort = LocalPort
	}
	before := p.e.State()
	p.e.HandleSegment(p.now, &seg, &p.out)
	p.record(rung{dir: "<--", text: seg.String(), before: before})
}

// ---- expectations ----

// Want takes the endpoint's next emitted segment and checks its flags,
// SEQ, ACK (when it carries ACK) and payload length (0 unless Len or Text
// say otherwise), and any window, text, option or ports opts give; the
// ports are LocalPort to PeerPort unless Ports says otherwise. It returns
// the segment.
func (p *Peer) Want(flags tcpstate.Flags, seq, ack tcpstate.Seq, opts ...Opt) tcpstate.Segment {
	p.t.Helper()
	w := newSpec(flags, seq, ack, opts)
	got, ok := p.next(w.String())
	if !ok {
		return got
	}
	if d := w.diff(&got); d != "" {
		p.fail("want %s\n got  %s (%s)", w.String(), got.String(), d)
	}
	return got
}

// WantExact takes the endpoint's next emitted segment and checks every
// field against want: ports (zero ones are LocalPort and PeerPort), SEQ,
// ACK, flags, window, urgent pointer, options and payload.
func (p *Peer) WantExact(want tcpstate.Segment) tcpstate.Segment {
	p.t.Helper()
	if want.SrcPort == 0 {
		want.SrcPort = LocalPort
	}
	if want.DstPort == 0 {
		want.DstPort = PeerPort
	}
	got, ok := p.next("exactly " + want.String())
	if !ok {
		return got
	}
	if d := exactDiff(&want, &got); d != "" {
		p.fail("want exactly %s\n got          %s (%s)", want.String(), got.String(), d)
	}
	return got
}

// next pops the oldest pending segment, failing when there is none.
func (p *Peer) next(want string) (tcpstate.Segment, bool) {
	p.t.Helper()
	if len(p.pending) == 0 {
		p.fail("want %s\n got  no segment (the endpoint is in %v)", want, p.e.State())
		return tcpstate.Segment{}, false
	}
	s := p.pending[0]
	p.pending = p.pending[1:]
	return s, true
}

// WantNone checks that the endpoint has emitted nothing unchecked.
func (p *Peer) WantNone() {
	p.t.Helper()
	if len(p.pending) > 0 {
		var b strings.Builder
		for i := range p.pending {
			b.WriteString("\n      " + p.pending[i].String())
		}
		p.fail("want no segment\n got  %d:%s", len(p.pending), b.String())
	}
}

// WantState checks the endpoint's state.
func (p *Peer) WantState(s tcpstate.State) {
	p.t.Helper()
	if got := p.e.State(); got != s {
		p.fail("want state %v\n got  %v", s, got)
	}
}

// WantErr checks why the connection ended: errors.Is(Endpoint.Err(),
// err), or no error at all when err is nil.
func (p *Peer) WantErr(err error) {
	p.t.Helper()
	got := p.e.Err()
	if (err == nil && got != nil) || (err != nil && !errors.Is(got, err)) {
		p.fail("want the connection's error %v\n got  %v", err, got)
	}
}

// ---- user calls ----

// Call makes a user call f on the endpoint at the current time, puts it on
// the ladder as name and returns its error.
func (p *Peer) Call(name string, f func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error) error {
	before := p.e.State()
	err := f(p.e, p.now, &p.out)
	text := "user " + name
	if err != nil {
		text += ": " + err.Error()
	}
	p.record(rung{text: text, before: before})
	return err
}

// must fails the test when a user call returned an error.
func (p *Peer) must(name string, err error) {
	p.t.Helper()
	if err != nil {
		p.fail("user %s: %v", name, err)
	}
}

// OpenPassive makes the endpoint LISTEN on LocalPort.
func (p *Peer) OpenPassive() {
	p.t.Helper()
	p.must("OPEN (passive)", p.Call("OPEN (passive)", func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error {
		return e.OpenPassive(now, LocalPort, out)
	}))
}

// OpenActive makes the endpoint connect from LocalPort to PeerPort.
func (p *Peer) OpenActive() {
	p.t.Helper()
	p.must("OPEN (active)", p.Call("OPEN (active)", func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error {
		return e.OpenActive(now, LocalPort, PeerPort, out)
	}))
}

// Write is the user's SEND of text; it returns how many octets the
// endpoint accepted.
func (p *Peer) Write(text string) int {
	p.t.Helper()
	var n int
	p.must("SEND", p.Call(fmt.Sprintf("SEND %d octets", len(text)), func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) (err error) {
		n, err = e.Send(now, []byte(text), out)
		return err
	}))
	return n
}

// Read is the user's RECEIVE of everything readable: io.EOF once the
// peer's FIN is reached, the connection's error after a reset.
func (p *Peer) Read() (string, error) {
	var b []byte
	var err error
	p.Call("RECEIVE", func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error {
		buf := make([]byte, max(e.Readable(), 1))
		var n int
		n, err = e.Receive(now, buf, out)
		b = buf[:n]
		return nil
	})
	return string(b), err
}

// PostRead lends the endpoint a buffer of n octets, as a RECEIVE that
// waits for data does (tcpstate.Endpoint.PostRead).
func (p *Peer) PostRead(n int) {
	p.lent = make([]byte, n)
	p.Call(fmt.Sprintf("RECEIVE waits, lending %d octets", n), func(e *tcpstate.Endpoint, _ time.Duration, _ *tcpstate.Output) error {
		e.PostRead(p.lent)
		return nil
	})
}

// TakePosted ends the loan of PostRead and returns what the endpoint placed
// in the buffer.
func (p *Peer) TakePosted() string {
	var n int
	p.Call("RECEIVE wakes", func(e *tcpstate.Endpoint, _ time.Duration, _ *tcpstate.Output) error {
		n = e.TakePosted()
		return nil
	})
	if n > len(p.lent) {
		p.fail("the endpoint reports %d octets placed in a posted buffer of %d", n, len(p.lent))
		n = len(p.lent)
	}
	b := p.lent[:n]
	p.lent = nil
	return string(b)
}

// Close is the user's CLOSE.
func (p *Peer) Close() {
	p.t.Helper()
	p.must("CLOSE", p.Call("CLOSE", func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error {
		return e.Close(now, out)
	}))
}

// Abort is the user's ABORT.
func (p *Peer) Abort() {
	p.t.Helper()
	p.must("ABORT", p.Call("ABORT", func(e *tcpstate.Endpoint, now time.Duration, out *tcpstate.Output) error {
		return e.Abort(now, out)
	}))
}

// ---- time ----

// Advance moves the clock by d, firing the endpoint's timers as they fall
// due.
func (p *Peer) Advance(d time.Duration) {
	p.t.Helper()
	end := p.now + d
	for {
		at, ok := p.e.NextTimer()
		if !ok || at > end {
			break
		}
		p.now = max(p.now, at)
		p.timer()
	}
	p.now = end
}

// Fire moves the clock to the endpoint's next timer deadline (if it is
// not already past) and fires it; it fails when no timer is armed.
func (p *Peer) Fire() {
	p.t.Helper()
	at, ok := p.e.NextTimer()
	if !ok {
		p.fail("want a timer armed\n got  none (the endpoint is in %v)", p.e.State())
		return
	}
	p.now = max(p.now, at)
	p.timer()
}

func (p *Peer) timer() {
	p.t.Helper()
	before := p.e.State()
	var fired []string
	for _, t := range []tcpstate.Timer{tcpstate.TimerRetransmit, tcpstate.TimerPersist, tcpstate.TimerTimeWait, tcpstate.TimerKeepAlive} {
		if at, ok := p.e.TimerDeadline(t); ok && at <= p.now {
			fired = append(fired, t.String())
		}
	}
	p.e.HandleTimer(p.now, &p.out)
	p.record(rung{text: "timer " + strings.Join(fired, ", ") + " fires", before: before})
}

// ---- reaching a state ----

// Reach drives a CLOSED endpoint into s by the usual path, with the
// peer's ISS PeerISS, and checks that nothing is left unchecked. It
// returns p, for chaining.
//
//	LISTEN        OPEN (passive)
//	SYN-SENT      OPEN (active), the SYN
//	SYN-RECEIVED  LISTEN, then the peer's SYN; the SYN,ACK
//	ESTABLISHED   SYN-SENT, then the peer's SYN,ACK; the ACK
//	FIN-WAIT-1    ESTABLISHED, CLOSE; the FIN
//	FIN-WAIT-2    FIN-WAIT-1, then the peer's ACK of the FIN
//	CLOSE-WAIT    ESTABLISHED, then the peer's FIN; its ACK
//	CLOSING       FIN-WAIT-1, then the peer's FIN (not acknowledging ours); its ACK
//	LAST-ACK      CLOSE-WAIT, CLOSE; the FIN
//	TIME-WAIT     FIN-WAIT-2, then the peer's FIN; its ACK
func (p *Peer) Reach(s tcpstate.State) *Peer {
	p.t.Helper()
	p.reach(s)
	p.WantNone()
	p.WantState(s)
	p.NewEvents()
	return p
}

func (p *Peer) reach(s tcpstate.State) {
	p.t.Helper()
	const ack, fin, syn = tcpstate.ACK, tcpstate.FIN | tcpstate.ACK, tcpstate.SYN
	iss := func() tcpstate.Seq { return p.e.TCB().ISS }
	switch s {
	case tcpstate.Closed:
	case tcpstate.Listen:
		p.OpenPassive()
	case tcpstate.SynSent:
		p.OpenActive()
		p.Want(syn, iss(), 0)
	case tcpstate.SynReceived:
		p.reach(tcpstate.Listen)
		p.Send(syn, PeerISS, 0, MSS(p.mss))
		p.Want(syn|ack, iss(), PeerISS+1)
	case tcpstate.Established:
		p.reach(tcpstate.SynSent)
		p.Send(syn|ack, PeerISS, iss()+1, MSS(p.mss))
		p.Want(ack, iss()+1, PeerISS+1)
	case tcpstate.FinWait1:
		p.reach(tcpstate.Established)
		p.Close()
		p.Want(fin, iss()+1, PeerISS+1)
	case tcpstate.FinWait2:
		p.reach(tcpstate.FinWait1)
		p.Send(ack, PeerISS+1, iss()+2)
	case tcpstate.CloseWait:
		p.reach(tcpstate.Established)
		p.Send(fin, PeerISS+1, iss()+1)
		p.Want(ack, iss()+1, PeerISS+2)
	case tcpstate.Closing:
		p.reach(tcpstate.FinWait1)
		p.Send(fin, PeerISS+1, iss()+1)
		p.Want(ack, iss()+2, PeerISS+2)
	case tcpstate.LastAck:
		p.reach(tcpstate.CloseWait)
		p.Close()
		p.Want(fin, iss()+1, PeerISS+2)
	case tcpstate.TimeWait:
		p.reach(tcpstate.FinWait2)
		p.Send(fin, PeerISS+1, iss()+2)
		p.Want(ack, iss()+2, PeerISS+2)
	default:
		p.fail("Reach: no path to %v", s)
	}
}

// ---- the ladder ----

// rung is one line of the ladder: a segment in (<--) or out (-->), or a
// user call or timer, with the endpoint's state before and after.
type rung struct {
	at            time.Duration
	dir           string
	text          string
	before, after tcpstate.State
	moves         []string // the transitions the input caused
}

// record collects what the last engine call emitted: the input's rung,
// then a rung per segment sent. Every transition is checked against the
// state table.
func (p *Peer) record(r rung) {
	p.t.Helper()
	r.at, r.after = p.now, p.e.State()
	bad := ""
	for _, ev := range p.out.Events {
		if ev.Kind != tcpstate.EventStateChanged {
			continue
		}
		r.moves = append(r.moves, ev.Cause.String())
		if !tcpstate.Allowed(ev.From, ev.To, ev.Cause) {
			bad = fmt.Sprintf("%v -> %v on %v", ev.From, ev.To, ev.Cause)
		}
	}
	p.ladder = append(p.ladder, r)
	for _, s := range p.out.Segments {
		s.Payload = bytes.Clone(s.Payload)
		if s.Options.HasTimestamps {
			p.lastTS = s.Options.TSVal
		}
		p.pending = append(p.pending, s)
		p.ladder = append(p.ladder, rung{at: p.now, dir: "-->", text: s.String(), before: r.after, after: r.after})
	}
	p.events = append(p.events, p.out.Events...)
	p.out.Reset()
	if bad != "" {
		p.fail("the endpoint took the transition %s, which is not a row of the state table", bad)
	}
}

// Ladder renders the script so far, one line per segment, user call and
// timer: the time since the start, the endpoint's state (before → after
// where it changed, with the causes), and the segment with its direction
// (<-- from the peer, --> from the endpoint).
func (p *Peer) Ladder() string {
	var b strings.Builder
	p.WriteLadder(&b)
	return b.String()
}

// WriteLadder writes Ladder's text to w.
func (p *Peer) WriteLadder(w io.Writer) {
	states := make([]string, len(p.ladder))
	width := len("endpoint")
	for i, r := range p.ladder {
		s := r.after.String()
		if r.before != r.after {
			s = r.before.String() + " → " + s
		}
		if len(r.moves) > 0 {
			s += " (" + strings.Join(r.moves, ", ") + ")"
		}
		states[i] = s
		width = max(width, len([]rune(s)))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-len([]rune(s))) }
	fmt.Fprintf(w, "%9s  %s      %s\n", "time", pad("endpoint"), "peer")
	for i, r := range p.ladder {
		at := fmt.Sprintf("+%.3fs", (r.at - p.start).Seconds())
		switch r.dir {
		case "":
			fmt.Fprintf(w, "%9s  %s      %s\n", at, pad(states[i]), "["+r.text+"]")
		default:
			fmt.Fprintf(w, "%9s  %s  %s  %s\n", at, pad(states[i]), r.dir, r.text)
		}
	}
}

// fail reports a broken expectation with the ladder so far.
func (p *Peer) fail(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("tcptest: "+format+"\nladder so far:\n%s", append(args, p.Ladder())...)
}
