package tcpstate

import "time"

// Delayed ACK (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2, RFC 5681 §4.2): an ACK
// for in-order data may wait Config.DelayedACK (at most 500 ms, MUST-40)
// for data or a window update to ride on. It is sent at once
//
//   - for every second full-sized segment: when more than one receive MSS
//     has arrived since the last ACK we sent (the receive MSS starts at
//     min(536, Config.MSS) and grows to the largest segment seen, up to
//     Config.MSS, as Linux's rcv_mss estimate does),
//   - during quick-ACK mode: the first Config.QuickACKs data segments of a
//     connection (Linux's quickack mode, so slow start is not slowed),
//   - for a segment out of order, one that fills all or part of a gap, one
//     that repeats old data or is cut short by the window, and one with FIN
//     (RFC 5681 §4.2 asks for the first three),
//   - with Config.DisableDelayedACK.
//
// A PSH does not make an ACK immediate (as in Linux), and Linux's
// interactive ("pingpong") refinements are not modelled. Any segment we
// send carries the ACK and ends the wait. Unacceptable segments, RFC 5961
// challenge ACKs and zero-window answers are never delayed.

// MaxDelayedACK is the longest an ACK may be delayed (RFC 9293 MUST-40,
// RFC 1122 §4.2.3.2: less than 0.5 seconds); Config.DelayedACK is clamped
// to it.
const MaxDelayedACK = 500 * time.Millisecond

// ackNow decides, for a segment whose text was just taken (RCV.NXT was
// nxt before it), whether its ACK goes at once.
func (e *Endpoint) ackNow(a *arrival, nxt Seq) bool {
	t := &e.tcb
	n := uint32(len(a.payload))
	e.rcvMSS = min(max(e.rcvMSS, n), uint32(e.cfg.MSS))
	switch {
	case e.cfg.DisableDelayedACK, a.flags&FIN != 0:
		return true
	case a.seq != nxt, t.RcvNxt != nxt.Add(Size(n)), e.reasm.pending():
		return true // out of order, a gap filled or remaining, trimmed, old
	case e.quickLeft > 0:
		e.quickLeft--
		return true
	}
	return uint32(e.ackedRcvNxt.Size(t.RcvNxt)) > max(e.rcvMSS, 1)
}

// delayACK holds the ACK of in-order data back; the timer is not restarted
// by later segments, so no ACK waits longer than Config.DelayedACK.
func (e *Endpoint) delayACK(now time.Duration, out *Output) {
	e.ackPending = true
	if !e.timers[TimerDelayedACK].armed {
		e.armTimer(out, TimerDelayedACK, now, e.cfg.DelayedACK)
	}
}

// ackSent notes that a segment carrying our ACK left: nothing is pending.
func (e *Endpoint) ackSent(out *Output) {
	e.ackedRcvNxt = e.tcb.RcvNxt
	e.ackPending = false
	e.cancelTimer(out, TimerDelayedACK)
}

// onDelayedACKTimeout sends the held ACK.
func (e *Endpoint) onDelayedACKTimeout(out *Output) {
	if e.ackPending && e.tcb.State.Synchronized() {
		e.sendACK(out)
	}
	e.ackPending = false
}

// startDelayedACK begins a connection's ACK policy as its SYN arrives:
// quick-ACK mode, and the SYN counted as acknowledged.
func (e *Endpoint) startDelayedACK() {
	e.quickLeft = e.cfg.QuickACKs
	e.ackedRcvNxt = e.tcb.RcvNxt
	e.rcvMSS = uint32(min(536, e.cfg.MSS))
}
