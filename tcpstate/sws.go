package tcpstate

// Receiver-side silly window syndrome avoidance (RFC 9293 §3.8.6.2.2,
// MUST-39). The right edge of the window we advertise, RCV.NXT+RCV.WND,
// stays where it was until it can move on by at least
//
//	min(Fr × RCV.BUFF, Eff.snd.MSS)   with Fr = 1/2
//
// so a reader taking a few octets at a time never offers the sender a
// few-octet window — not in a window update after a read
// (maybeWindowUpdate) and not in any other segment, such as the ACK of a
// zero-window probe. Config.DisableReceiverSWS turns it off.

// swsThreshold is min(half the receive buffer, MSS): how far the right edge
// must be able to move before it is moved (1 octet with the avoidance off).
func (e *Endpoint) swsThreshold() int {
	if e.cfg.DisableReceiverSWS {
		return 1
	}
	return min(len(e.rcv.buf)/2, e.cfg.MSS)
}

// swsHeldWindow is the window to advertise instead of wnd (octets: the free
// buffer free, capped to what the window field can say) when receiver SWS
// avoidance holds the right edge back. ok is false when wnd may be
// advertised as it is: the edge does not move right, or the buffer has room
// for at least the threshold beyond the window now offered (RFC 9293's
// RCV.BUFF - RCV.USER - RCV.WND >= min(Fr * RCV.BUFF, Eff.snd.MSS)).
func (e *Endpoint) swsHeldWindow(free, wnd uint32) (held uint32, ok bool) {
	t := &e.tcb
	if e.cfg.DisableReceiverSWS || !t.State.Synchronized() || e.rcvFin {
		return 0, false // off, or no more data will come: nothing to avoid
	}
	if !e.advRight.LessThan(t.RcvNxt.Add(Size(wnd))) {
		return 0, false
	}
	var cur uint32 // the window the held edge leaves; 0 once RCV.NXT reached it
	if t.RcvNxt.LessThan(e.advRight) {
		cur = uint32(t.RcvNxt.Size(e.advRight))
	}
	if free < cur || int(free-cur) >= e.swsThreshold() {
		return 0, false
	}
	return cur, true
}
