package tcpstate

import "time"

// Keep-alive (RFC 1122 §4.2.3.6), off unless Config.KeepAlive. On an
// ESTABLISHED or CLOSE-WAIT connection with nothing outstanding, once no
// segment has arrived from the peer for KeepAliveIdle, a probe goes out
// every KeepAliveInterval: an ACK with <SEQ=SND.UNA-1>, outside the peer's
// window, so a live peer must answer with an ACK of its own (Linux sends
// the same). Any segment from the peer counts as an answer. After
// KeepAliveCount unanswered probes — or, with UserTimeout set, once the
// peer has been silent for UserTimeout with a probe out — the connection is
// reset: a RST is sent, the cause is "keep-alive timeout" and the error
// ErrTimeout (Linux's ETIMEDOUT).
//
// The timer is armed once per idle period, not per segment: when it fires
// early (the peer spoke since) it is armed again for the rest of the idle
// time, as Linux's keep-alive timer does.

// startKeepAlive arms the keep-alive timer as the connection is
// established.
func (e *Endpoint) startKeepAlive(now time.Duration, out *Output) {
	if !e.cfg.KeepAlive {
		return
	}
	e.lastRecv, e.keepProbes = now, 0
	e.armTimer(out, TimerKeepAlive, now, e.cfg.KeepAliveIdle)
}

// onKeepAliveTimeout probes an idle peer or gives up on a silent one.
func (e *Endpoint) onKeepAliveTimeout(now time.Duration, out *Output) {
	t := &e.tcb
	if !e.cfg.KeepAlive || (t.State != Established && t.State != CloseWait) {
		return
	}
	if t.SndNxt != t.SndUna || e.unsent() {
		// The retransmission or persist timer watches the peer.
		e.keepProbes = 0
		e.armTimer(out, TimerKeepAlive, now, e.cfg.KeepAliveIdle)
		return
	}
	idle := now - e.lastRecv
	if idle < e.cfg.KeepAliveIdle {
		e.keepProbes = 0
		e.armTimer(out, TimerKeepAlive, now, e.cfg.KeepAliveIdle-idle)
		return
	}
	ut := e.cfg.UserTimeout
	if (ut > 0 && idle >= ut && e.keepProbes > 0) || (ut == 0 && e.keepProbes >= e.cfg.KeepAliveCount) {
		e.emit(out, RST, t.SndNxt, nil, nil)
		e.enterClosed(out, CauseKeepAliveTimeout, ErrTimeout)
		return
	}
	e.emit(out, ACK, t.SndUna-1, nil, nil)
	e.keepProbes++
	next := e.cfg.KeepAliveInterval
	if ut > 0 && idle < ut {
		next = min(next, ut-idle)
	}
	e.armTimer(out, TimerKeepAlive, now, next)
}

// KeepAliveProbes returns how many keep-alive probes have gone out since the
// peer was last heard from.
func (e *Endpoint) KeepAliveProbes() int { return e.keepProbes }
