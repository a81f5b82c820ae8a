package rawtcp

import "github.com/statelab/statelab/tcpstate"

// Verdict is what a Hook decides for one segment.
type Verdict uint8

const (
	// Pass sends the segment (after any held ones), or lets a received one
	// through.
	Pass Verdict = iota
	// Drop loses the segment: it never reaches the wire (sent), or the
	// engine (received).
	Drop
	// Hold keeps a sent segment back until the next segment that passes,
	// or Release, and sends it then, in order (it is overtaken by nothing).
	Hold
	// Park keeps a sent segment back until Release: later segments
	// overtake it (reordering).
	Park
)

// Hook decides the fate of each segment a connection's engine emits (a
// send hook) or receives (a receive hook, where only Drop matters); tcb is
// the connection's TCB after the call that emitted the segment, or before
// the received one is processed. Hooks run under the connection's lock:
// they must not block or call the connection.
//
// A send hook may also rewrite seg's Options before it goes out (or is
// held): the segment sent and recorded is the rewritten one. This is how
// an experiment chooses the options on the wire itself, such as
// SACK-permitted or timestamps on the lab's SYN; with the engine's own
// turned off in its Config (DisableSACK, DisableTimestamps), the engine
// does not act on them. A send hook must not write into seg's Payload: it
// is the engine's send buffer itself (tcpstate.Output.BorrowPayloads),
// what a retransmission would resend; to change the text, Drop the
// segment. It must not keep seg or its Payload past the call either.
type Hook func(seg *tcpstate.Segment, tcb *tcpstate.TCB) Verdict

// Faults is a connection's fault injection, apart from its I/O: the lab's
// link dropping, holding back and reordering its segments (hooks), a crash
// that forgets its TCB, and hand-made segments from its ports. Every
// segment a fault touches is recorded with a note saying what happened to
// it, so a capture's comments tell simulated loss from real loss.
type Faults struct{ c *Conn }

// SetSendHook replaces the send hook (ConnOptions.SendHook); nil sends
// everything.
func (f *Faults) SetSendHook(h Hook) {
	f.c.mu.Lock()
	f.c.hook = h
	f.c.mu.Unlock()
}

// SetRecvHook replaces the receive hook (ConnOptions.RecvHook).
func (f *Faults) SetRecvHook(h Hook) {
	f.c.mu.Lock()
	f.c.rhook = h
	f.c.mu.Unlock()
}

// Release sends the held and parked segments now.
func (f *Faults) Release() {
	c := f.c
	c.mu.Lock()
	defer c.unlock()
	c.releaseHeld()
	t := c.ep.TCB()
	for i := range c.parked {
		_ = c.st.link.Send(&c.parked[i], c.raddr)
		c.record(sentRecord(&c.parked[i], t, "released late by the link"))
	}
	c.parked = c.parked[:0]
}

// Crash drops the TCB without a word, as a host that crashes and restarts
// does: no segment is sent, timers stop, calls on the connection return
// tcpstate.ErrConnectionAborted, and from now on the stack answers the
// peer's segments as a CLOSED endpoint (with RST).
func (f *Faults) Crash() {
	c := f.c
	c.mu.Lock()
	defer c.unlock()
	c.detach(tcpstate.ErrConnectionAborted)
	c.record(Record{Note: "lab forgot its TCB (crash)", State: tcpstate.Closed, Before: c.ep.State()})
}

// Inject sends seg from the connection's ports as it is, bypassing the
// engine (a probe's Inject step). Zero ports are the connection's.
func (f *Faults) Inject(seg tcpstate.Segment) error {
	c := f.c
	c.mu.Lock()
	defer c.unlock()
	if seg.SrcPort == 0 {
		seg.SrcPort = c.lport
	}
	if seg.DstPort == 0 {
		seg.DstPort = c.rport
	}
	err := c.st.link.Send(&seg, c.raddr)
	c.record(sentRecord(&seg, c.ep.TCB(), "injected"))
	return err
}
