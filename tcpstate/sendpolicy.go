package tcpstate

import "time"

// The send policy: when new data may leave (RFC 9293 §3.8.6.2.1 and
// §3.7.4). A segment of new data goes out when
//
//   - it is a full-sized segment (SND.MSS octets), or
//   - it carries the last queued data and the FIN (Nagle never holds a
//     FIN, as in Linux), or
//   - it carries all the queued data (every SEND is pushed, as on a socket)
//     and, with Nagle on (RFC 896), nothing sent is unacknowledged, or
//   - with Nagle off or nothing unacknowledged, it carries at least half
//     the largest window the peer has offered (Fs = 1/2).
//
// Anything else — a segment the windows cut short while more data waits —
// is held back: sender SWS avoidance (MUST-38). The ACK of data in flight
// reopens the question; with nothing in flight the override timer
// (Config.SWSOverride, TimerSWSOverride) sends what the window allows.
// Retransmissions, zero-window probes and fast retransmit are not held.
//
// Config.NoDelay (per connection: SetNoDelay) turns Nagle off, like
// TCP_NODELAY; Config.DisableSenderSWS turns SWS avoidance off.

// HoldReason says why queued data is waiting although the window has room
// for some of it.
type HoldReason uint8

const (
	// HoldNone: nothing is held back by the send policy.
	HoldNone HoldReason = iota
	// HoldNagle: a small segment waits for the ACK of the data in flight
	// (RFC 896).
	HoldNagle
	// HoldSWS: the windows allow only a small piece of a larger queue
	// (sender SWS avoidance, RFC 9293 §3.8.6.2.1).
	HoldSWS
)

var holdNames = [...]string{"", "nagle", "sws"}

// String names the reason: "nagle", "sws", or "" for none.
func (h HoldReason) String() string {
	if int(h) < len(holdNames) {
		return holdNames[h]
	}
	return "HoldReason(?)"
}

// SetNoDelay switches Nagle's algorithm off (on = true) or back on for this
// connection, like setsockopt TCP_NODELAY. Switching it off sends what
// Nagle was holding, as Linux does.
func (e *Endpoint) SetNoDelay(now time.Duration, on bool, out *Output) {
	out = e.output(out)
	e.noDelay = on
	if on && e.holding() == HoldNagle {
		e.trySend(now, out)
		e.rearmTimers(now, out, false)
	}
}

// holding is why queued data waits, as the last send attempt found, while
// any data or FIN is still unsent (a retransmission after a timeout may
// have sent what was held since).
func (e *Endpoint) holding() HoldReason {
	if e.held != HoldNone && !e.unsent() {
		e.held = HoldNone
	}
	return e.held
}

// NoDelay reports whether Nagle's algorithm is off for this connection.
func (e *Endpoint) NoDelay() bool { return e.noDelay }

// mayTransmit applies the send policy to a segment of up to n octets of
// new data starting at seq; it records why it holds the segment back.
func (e *Endpoint) mayTransmit(seq Seq, n uint32) bool {
	t := &e.tcb
	if seq.LessThan(t.SndNxt) {
		return true // a retransmission (go-back-N): never held
	}
	dataEnd := e.sndBase.Add(Size(e.snd.len()))
	var avail uint32
	if seq.LessThan(dataEnd) {
		avail = uint32(seq.Size(dataEnd))
	}
	seg := min(n, avail)
	switch {
	case seg == 0 || seg >= e.smss():
		return true // nothing (or a bare FIN), or a full-sized segment
	case seg == avail && e.finQueued:
		return true // the last data, with the FIN
	case !e.noDelay && t.SndNxt != t.SndUna:
		e.held = HoldNagle
		return false
	case seg == avail || e.cfg.DisableSenderSWS || seg >= max(e.maxSndWnd/2, 1):
		return true
	}
	e.held = HoldSWS
	return false
}

// sendRoom is how many octets from seq the send window and the congestion
// window allow.
func (e *Endpoint) sendRoom(seq Seq) uint32 {
	t := &e.tcb
	var room uint32
	if edge := t.SndUna.Add(Size(t.SndWnd)); seq.LessThan(edge) {
		room = uint32(seq.Size(edge))
	}
	if inFlight := uint32(t.SndUna.Size(seq)); inFlight < t.Cwnd {
		return min(room, t.Cwnd-inFlight)
	}
	return 0
}

// rearmSWSOverride runs the override timer while sender SWS avoidance holds
// data back with nothing in flight (no ACK will come to send it) and the
// window is open (a shut one is the persist timer's).
func (e *Endpoint) rearmSWSOverride(now time.Duration, out *Output) {
	t := &e.tcb
	if e.holding() == HoldSWS && t.SndNxt == t.SndUna && t.SndWnd != 0 {
		if !e.timers[TimerSWSOverride].armed {
			e.armTimer(out, TimerSWSOverride, now, e.cfg.SWSOverride)
		}
		return
	}
	e.cancelTimer(out, TimerSWSOverride)
}

// onSWSOverride is the override timeout: the held data goes, as much as the
// windows allow (RFC 9293 §3.8.6.2.1: "data is PUSHed and the override
// timeout occurs").
func (e *Endpoint) onSWSOverride(now time.Duration, out *Output) {
	if !e.canTransmit() || e.holding() != HoldSWS {
		return
	}
	seq := e.rtxNxt
	if n := e.sendDataAt(now, seq, min(e.sendRoom(seq), e.smss()), out); n > 0 {
		e.rtxNxt = seq.Add(n)
	}
	e.held = HoldNone
	e.rearmTimers(now, out, false)
}
