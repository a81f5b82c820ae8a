package tcpstate

import "time"

// The send side: segmentising queued data within min(SND.WND, cwnd), the
// retransmission timer of RFC 6298 with go-back-N recovery after a timeout,
// and zero-window probing.

// emit appends a segment from this endpoint carrying the current ACK and
// window. The payload (a then b) is copied into the Output's arena.
func (e *Endpoint) emit(out *Output, flags Flags, seq Seq, a, b []byte) {
	t := &e.tcb
	s := Segment{
		SrcPort: t.LocalPort,
		DstPort: t.RemotePort,
		Seq:     seq,
		Flags:   flags,
		Window:  e.windowField(),
		Payload: out.payload(a, b),
	}
	if flags&ACK != 0 {
		s.Ack = t.RcvNxt
		e.ackSent(out)
	}
	e.segmentOptions(&s)
	out.Segments = append(out.Segments, s)
}

// windowField computes the window to advertise: the free receive buffer,
// scaled down by RCV.WIND.SHIFT and capped at 16 bits.
func (e *Endpoint) windowField() uint16 {
	t := &e.tcb
	free := uint32(e.rcv.free())
	t.RcvWnd = free
	w := min(free>>t.RcvWScale, 65535)
	if held, ok := e.swsHeldWindow(free, w<<t.RcvWScale); ok {
		w = held >> t.RcvWScale
	}
	e.advRight = t.RcvNxt.Add(Size(w << t.RcvWScale))
	return uint16(w)
}

func (e *Endpoint) sendACK(out *Output) { e.emit(out, ACK, e.tcb.SndNxt, nil, nil) }

// sendSYN sends our SYN (or SYN,ACK) with the MSS and window scale options.
func (e *Endpoint) sendSYN(now time.Duration, out *Output, withACK, retransmit bool) {
	t := &e.tcb
	free := uint32(e.rcv.free())
	t.RcvWnd = free
	s := Segment{
		SrcPort: t.LocalPort,
		DstPort: t.RemotePort,
		Seq:     t.ISS,
		Flags:   SYN,
		Window:  uint16(min(free, 65535)), // never scaled in a SYN
	}
	s.Options.MSS = uint16(e.cfg.MSS)
	if !e.cfg.DisableWindowScale && (!withACK || e.wsOK) {
		s.Options.HasWScale, s.Options.WScale = true, e.wsShift
	}
	if withACK {
		s.Flags |= ACK
		s.Ack = t.RcvNxt
		// A SYN,ACK sent again after data was taken (CLOSE in
		// SYN-RECEIVED leaves it to be retransmitted from FIN-WAIT-1)
		// holds the right edge like any other segment (sws.go).
		if held, ok := e.swsHeldWindow(free, uint32(s.Window)); ok {
			s.Window = uint16(min(held, 65535))
		}
		e.advRight = t.RcvNxt.Add(Size(s.Window))
		e.opts.lastAckSent = s.Ack
	}
	e.synOptions(&s.Options, withACK)
	out.Segments = append(out.Segments, s)
	if retransmit {
		e.rttTiming = false
	} else {
		e.startTiming(now, t.ISS+1)
		e.progressAt = now
	}
}

// canTransmit reports whether data or FIN may be (re)sent: our SYN is
// acknowledged and our FIN is not.
func (e *Endpoint) canTransmit() bool {
	switch e.tcb.State {
	case Established, FinWait1, CloseWait, Closing, LastAck:
		return e.tcb.SndUna != e.tcb.ISS
	}
	return false
}

// unsent reports whether queued data or a queued FIN has never been sent.
func (e *Endpoint) unsent() bool {
	dataEnd := e.sndBase.Add(Size(e.snd.len()))
	return e.tcb.SndNxt.LessThan(dataEnd) || (e.finQueued && !e.finSent)
}

// trySend sends segments from rtxNxt while the send window and the
// congestion window have room and the send policy (sendpolicy.go: Nagle,
// sender SWS avoidance) lets them go.
func (e *Endpoint) trySend(now time.Duration, out *Output) {
	e.held = HoldNone
	if !e.canTransmit() {
		return
	}
	if e.inRecovery && e.opts.sackRecovery {
		e.sackSend(now, out) // RFC 6675 step C
		return
	}
	e.restartAfterIdle(now)
	for {
		seq, mss := e.skipSACKed(e.rtxNxt, e.smss())
		e.rtxNxt = seq
		room := min(e.sendRoom(seq), mss)
		if !e.mayTransmit(seq, room) {
			return
		}
		n := e.sendDataAt(now, seq, room, out)
		if n == 0 {
			return
		}
		e.rtxNxt = seq.Add(n)
	}
}

// sendDataAt sends up to maxLen octets of queued data starting at seq, with
// FIN if that reaches the end of the data and CLOSE was called. It returns
// the sequence space used (0: nothing to send). Sending new data starts RTT
// timing; resending timed data stops it (Karn).
func (e *Endpoint) sendDataAt(now time.Duration, seq Seq, maxLen uint32, out *Output) Size {
	t := &e.tcb
	if o, m := e.sackOptLen(), e.smss(); o > 0 && maxLen+o > m && m > o {
		maxLen = m - o // SACK blocks ride on this segment (RFC 2018 §3)
	}
	dataEnd := e.sndBase.Add(Size(e.snd.len()))
	var n uint32
	if seq.LessThan(dataEnd) {
		n = min(uint32(seq.Size(dataEnd)), maxLen)
	}
	end := seq.Add(Size(n))
	fin := e.finQueued && end == dataEnd
	if n == 0 && !fin {
		return 0
	}
	flags := ACK
	if n > 0 && end == dataEnd {
		flags |= PSH
	}
	if t.SndNxt == t.SndUna {
		e.progressAt = now // the first octet outstanding: the user timeout counts from here
	}
	e.sentData, e.lastDataSend = true, now
	if fin {
		flags |= FIN
		end++
		e.finSent = true
	}
	a, b := e.snd.peek(int(e.sndBase.Size(seq)), int(n))
	e.emit(out, flags, seq, a, b)
	if e.rttTiming && seq.LessThan(e.rttSeq) {
		e.rttTiming = false
	}
	if t.SndNxt.LessThan(end) {
		if seq == t.SndNxt {
			e.startTiming(now, end)
		}
		t.SndNxt = end
	}
	return seq.Size(end)
}

// onRetransmitTimeout handles expiry of the retransmission timer: back off
// the RTO (RFC 6298 (5.5)), collapse cwnd (RFC 5681 (4)), resend the first
// unacknowledged segment and go back to it for the rest (go-back-N), or give
// up after MaxRetries.
func (e *Endpoint) onRetransmitTimeout(now time.Duration, out *Output) {
	t := &e.tcb
	switch t.State {
	case Closed, Listen, TimeWait:
		return
	}
	if t.SndNxt == t.SndUna {
		return
	}
	e.retries++
	if e.userTimedOut(now) {
		e.enterClosed(out, CauseUserTimeout, ErrTimeout)
		return
	}
	if e.cfg.UserTimeout == 0 && e.retries > e.cfg.MaxRetries {
		e.enterClosed(out, CauseRetransmitTimeout, ErrTimeout)
		return
	}
	e.backoffRTO()
	e.rttTiming = false
	if t.SndUna == t.ISS {
		e.synRetransmitted = true
		e.sendSYN(now, out, t.State != SynSent, true)
	} else {
		e.ccOnTimeout(e.retries == 1)
		e.sackOnTimeout()
		n := e.sendDataAt(now, t.SndUna, e.smss(), out)
		e.rtxNxt = t.SndUna.Add(n)
	}
	e.armTimer(out, TimerRetransmit, now, e.retransmitIn(now))
}

// onPersistTimeout sends a zero-window probe: one octet beyond the window
// (or the FIN), repeated with backoff as long as the window stays shut. The
// probe never counts toward MaxRetries (RFC 9293 §3.8.6.1).
func (e *Endpoint) onPersistTimeout(now time.Duration, out *Output) {
	t := &e.tcb
	if !e.canTransmit() {
		return
	}
	if t.SndWnd != 0 {
		e.trySend(now, out)
		e.rearmTimers(now, out, true)
		return
	}
	if e.persistGivesUp(now) {
		e.enterClosed(out, CauseUserTimeout, ErrTimeout)
		return
	}
	e.persistBackoff++
	if t.SndNxt == t.SndUna {
		if n := e.sendDataAt(now, t.SndNxt, 1, out); n > 0 {
			e.rtxNxt = t.SndNxt
		}
	} else {
		e.sendDataAt(now, t.SndUna, 1, out)
	}
	e.rttTiming = false
	e.armTimer(out, TimerPersist, now, e.persistIn(now))
}
