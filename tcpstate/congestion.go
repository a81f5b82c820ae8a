package tcpstate

// NewReno congestion control: RFC 5681 (slow start, congestion avoidance,
// fast retransmit) with the RFC 6582 fast-recovery modification. Cwnd and
// Ssthresh live in the TCB, in octets.

const maxWindow = 1 << 30

// smss is SMSS: the peer's MSS less the timestamps option every segment
// carries (RFC 9293 §3.7.1: the MSS counts no options).
func (e *Endpoint) smss() uint32 {
	m := uint32(e.tcb.SndMSS)
	if o := e.tsOverhead(); m > 2*o {
		m -= o
	}
	return m
}

// initCongestion sets the initial window (RFC 5681 §3.1, or one segment if
// the SYN had to be retransmitted) and an arbitrarily high ssthresh.
func (e *Endpoint) initCongestion(synRetransmitted bool) {
	iw := e.initialWindow()
	if synRetransmitted {
		iw = e.smss()
	}
	e.tcb.Cwnd = iw
	e.tcb.Ssthresh = maxWindow
}

// initialWindow is IW of RFC 5681 §3.1, or Config.InitialWindow segments.
func (e *Endpoint) initialWindow() uint32 {
	m := e.smss()
	if e.cfg.InitialWindow > 0 {
		return uint32(e.cfg.InitialWindow) * m
	}
	return min(4*m, max(2*m, 4380))
}

func (e *Endpoint) flightSize() uint32 { return uint32(e.tcb.SndUna.Size(e.tcb.SndNxt)) }

// ccOnACK grows or deflates cwnd for an ACK that acknowledged acked new
// octets. It reports whether a partial ACK needs the next hole retransmitted.
func (e *Endpoint) ccOnACK(acked uint32) (retransmit bool) {
	t := &e.tcb
	m := e.smss()
	if e.inRecovery {
		if e.recover.LessThanEq(t.SndUna) {
			// Full acknowledgment: leave fast recovery (RFC 6582 §3.2 step 3).
			e.inRecovery = false
			e.dupAcks = 0
			t.Cwnd = min(t.Ssthresh, max(e.flightSize(), m)+m)
			e.sackEndRecovery()
			return false
		}
		if e.opts.sackRecovery {
			// RFC 6675: cwnd stays; pipe and NextSeg decide (trySend).
			// Without SACK blocks to go by, the next hole is resent as
			// NewReno would.
			return len(e.sacked.spans) == 0
		}
		// Partial acknowledgment: deflate by the amount acknowledged, add
		// back one SMSS if that was at least one SMSS, retransmit the next
		// hole.
		if acked >= t.Cwnd {
			t.Cwnd = m
		} else {
			t.Cwnd -= acked
		}
		if acked >= m {
			t.Cwnd += m
		}
		return true
	}
	e.dupAcks = 0
	if t.Cwnd < t.Ssthresh {
		t.Cwnd += min(acked, m) // slow start
	} else {
		t.Cwnd += max(1, m*m/t.Cwnd) // congestion avoidance
	}
	t.Cwnd = min(t.Cwnd, maxWindow)
	return false
}

// ccOnDupACK counts a duplicate ACK and reports whether fast retransmit
// must send the segment at SND.UNA now.
func (e *Endpoint) ccOnDupACK() (retransmit bool) {
	t := &e.tcb
	m := e.smss()
	e.dupAcks++
	if e.inRecovery {
		t.Cwnd = min(t.Cwnd+m, maxWindow) // inflate for each segment that left
		return false
	}
	if e.dupAcks != 3 {
		return false
	}
	// RFC 6582 §3.2 step 2: only if the ACK covers more than recover, so
	// duplicates caused by go-back-N after a timeout do not trigger it.
	if e.recoverValid && !e.recover.LessThan(t.SndUna) {
		return false
	}
	t.Ssthresh = max(e.flightSize()/2, 2*m)
	e.recover, e.recoverValid = t.SndNxt, true
	e.inRecovery = true
	e.partialACKs = 0
	t.Cwnd = t.Ssthresh + 3*m
	return true
}

// ccOnTimeout applies RFC 5681 (4): ssthresh halves the flight (only for
// the first timeout of a series) and cwnd falls to one segment.
func (e *Endpoint) ccOnTimeout(first bool) {
	t := &e.tcb
	m := e.smss()
	if first {
		t.Ssthresh = max(e.flightSize()/2, 2*m)
	}
	t.Cwnd = m
	e.inRecovery = false
	e.dupAcks = 0
	e.recover, e.recoverValid = t.SndNxt, true
}
