package tcpstate

import "time"

// SACK (RFC 2018) and SACK-based loss recovery (RFC 6675).
//
// Receiving: while out-of-order data is held, every ACK carries SACK
// blocks, the block holding the most recently received segment first, then
// the other blocks most recently reported, as many as the option space
// holds (4, or 3 beside timestamps). No D-SACK (RFC 2883).
//
// Sending: the peer's blocks fill a scoreboard of SACKed ranges above
// SND.UNA. A duplicate ACK (RFC 6675 §2: one that SACKs new data, or
// RFC 5681's) is counted; the third, or IsLost(SND.UNA), starts loss
// recovery (§5, with RFC 6582's "recover" guard): ssthresh and cwnd
// become half the flight, the first hole is retransmitted and from then on
// each ACK sends what NextSeg picks — lost holes (§4 rule 1), new data
// (rule 2), unSACKed holes below SACKed data (rule 3) — while cwnd - pipe
// is at least one SMSS. The cumulative ACK of RecoveryPoint ends it. After
// a retransmission timeout the scoreboard is kept and the go-back-N skips
// SACKed ranges, unless the peer reneged (its cumulative ACK stops at a
// block it SACKed), when the scoreboard is cleared.

// dupThresh is DupThresh of RFC 6675 (and RFC 5681's three duplicates).
const dupThresh = 3

// noteSACKRecent records that data starting at start arrived out of
// order: the reassembler's range holding it becomes the first block to
// report (RFC 2018 §4).
func (e *Endpoint) noteSACKRecent(start Seq) {
	if !e.tcb.SACKOK {
		return
	}
	o := &e.opts
	sp, ok := e.reasm.find(start)
	if !ok {
		return
	}
	// Drop entries now inside sp (merged into it), keep the order of the rest.
	k := 0
	for _, r := range o.sackRecent[:o.nSackRecent] {
		if sp.start.LessThanEq(r.start) && r.start.LessThan(sp.end) {
			continue
		}
		o.sackRecent[k] = r
		k++
	}
	k = min(k, MaxSACKBlocks-1)
	copy(o.sackRecent[1:k+1], o.sackRecent[:k])
	o.sackRecent[0] = sp
	o.nSackRecent = k + 1
}

// maxSACKBlocks is how many blocks fit beside the other options of a
// non-SYN segment: 4, or 3 with timestamps (RFC 2018 §3).
func (e *Endpoint) maxSACKBlocks() int {
	if e.tcb.TSOK {
		return 3
	}
	return MaxSACKBlocks
}

// sackBlocks fills o's SACK blocks from the recent list, each as the
// reassembler holds it now; ranges that have become in order are dropped.
func (e *Endpoint) sackBlocks(o *Options) {
	st := &e.opts
	limit := e.maxSACKBlocks()
	k := 0
	for _, r := range st.sackRecent[:st.nSackRecent] {
		sp, ok := e.reasm.find(r.start)
		if !ok || !e.sackable(sp) {
			continue
		}
		st.sackRecent[k] = sp
		k++
		if int(o.NumSACK) < limit {
			o.AddSACK(SACKBlock{sp.start, sp.end})
		}
	}
	st.nSackRecent = k
	// Ranges not in the recent list (forgotten beyond four) are reported
	// too if there is room, lowest first.
	for _, sp := range e.reasm.spans {
		if int(o.NumSACK) >= limit {
			break
		}
		if !e.sackable(sp) {
			continue
		}
		dup := false
		for _, b := range o.SACKBlocks() {
			if b.Left == sp.start {
				dup = true
				break
			}
		}
		if !dup {
			o.AddSACK(SACKBlock{sp.start, sp.end})
		}
	}
}

// sackable reports whether a held range is out of order, above RCV.NXT
// (data beyond the peer's FIN can sit at RCV.NXT once the FIN is
// consumed: it is never reported).
func (e *Endpoint) sackable(sp span) bool { return e.tcb.RcvNxt.LessThan(sp.start) }

// sackOptLen is the option space the SACK blocks of our next segment
// take, to keep a data segment within the MSS.
func (e *Endpoint) sackOptLen() uint32 {
	if !e.tcb.SACKOK || len(e.reasm.spans) == 0 {
		return 0
	}
	n := 0
	for _, sp := range e.reasm.spans {
		if e.sackable(sp) {
			n++
		}
	}
	if n = min(n, e.maxSACKBlocks()); n == 0 {
		return 0
	}
	return uint32(4 + 8*n)
}

// onSACK adds the peer's valid blocks (within SND.UNA..SND.NXT) to the
// scoreboard and reports whether any SACKed new octets.
func (e *Endpoint) onSACK(seg *Segment) bool {
	t := &e.tcb
	if !t.SACKOK || seg.Options.NumSACK == 0 {
		return false
	}
	before := t.SACKed
	for _, b := range seg.Options.SACKBlocks() {
		if !b.Left.LessThan(b.Right) || !t.SndUna.LessThan(b.Left) || t.SndNxt.LessThan(b.Right) {
			continue // invalid, or a D-SACK at or below SND.UNA
		}
		e.sacked.add(b.Left, b.Right)
	}
	t.SACKed = uint32(e.sacked.bytes())
	return t.SACKed != before
}

// pruneSACK drops what the cumulative ACK covers from the scoreboard.
func (e *Endpoint) pruneSACK() {
	if len(e.sacked.spans) == 0 {
		return
	}
	e.sacked.dropBelow(e.tcb.SndUna)
	e.tcb.SACKed = uint32(e.sacked.bytes())
}

// lostEdge is the sequence number below which every unSACKed octet is
// lost by RFC 6675's IsLost: DupThresh SACKed ranges above it, or more
// than (DupThresh-1)*SMSS SACKed octets. IsLost(s) is s < lostEdge for an
// s in a hole.
func (e *Endpoint) lostEdge() Seq {
	edge := e.tcb.SndUna
	var octets uint32
	m := e.smss()
	sp := e.sacked.spans
	for i := len(sp) - 1; i >= 0; i-- {
		octets += uint32(sp[i].start.Size(sp[i].end))
		if len(sp)-i >= dupThresh || octets > (dupThresh-1)*m {
			return sp[i].start
		}
	}
	return edge
}

// pipe is RFC 6675's SetPipe, in octets: every unSACKed octet between
// SND.UNA and SND.NXT counts once if not lost and once more if it was
// retransmitted (below HighRxt).
func (e *Endpoint) pipe() uint32 {
	t := &e.tcb
	lost := e.lostEdge()
	var p uint32
	hole := func(a, b Seq) {
		if !a.LessThan(b) {
			return
		}
		n := uint32(a.Size(b))
		if !a.LessThan(lost) {
			p += n
		} else if lost.LessThan(b) {
			p += uint32(lost.Size(b))
		}
		if a.LessThan(e.opts.highRxt) {
			p += uint32(a.Size(MinSeq(b, e.opts.highRxt)))
		}
	}
	at := t.SndUna
	for _, sp := range e.sacked.spans {
		hole(at, sp.start)
		at = MaxSeq(at, sp.end)
	}
	hole(at, t.SndNxt)
	return p
}

// nextHole returns the first unSACKed range at or after from and below
// SND.NXT, at most max octets.
func (e *Endpoint) nextHole(from Seq, maxLen uint32) (Seq, uint32, bool) {
	t := &e.tcb
	at := MaxSeq(from, t.SndUna)
	for _, sp := range e.sacked.spans {
		if at.LessThan(sp.start) {
			return at, min(maxLen, uint32(at.Size(sp.start))), true
		}
		at = MaxSeq(at, sp.end)
	}
	if at.LessThan(t.SndNxt) {
		return at, min(maxLen, uint32(at.Size(t.SndNxt))), true
	}
	return at, 0, false
}

// sackDupACK is RFC 6675 §5 steps 2–4 for a duplicate ACK: count it and,
// at the third or when the first hole is lost, enter loss recovery and
// retransmit the first hole. In recovery it does nothing more: step C runs
// from trySend after every ACK.
func (e *Endpoint) sackDupACK(now time.Duration, out *Output) {
	t := &e.tcb
	if e.inRecovery {
		return // step C runs from trySend
	}
	e.dupAcks++
	if e.dupAcks < dupThresh && !t.SndUna.LessThan(e.lostEdge()) {
		return
	}
	if e.recoverValid && !e.recover.LessThan(t.SndUna) {
		return // RFC 6582 / RFC 6675 §5 step 2: still within the last recovery
	}
	m := e.smss()
	t.Ssthresh = max(e.flightSize()/2, 2*m)
	t.Cwnd = t.Ssthresh
	e.recover, e.recoverValid = t.SndNxt, true
	e.inRecovery, e.opts.sackRecovery, t.InSACKRecovery = true, true, true
	e.rttTiming = false
	n := e.sendDataAt(now, t.SndUna, min(m, e.holeLen(t.SndUna)), out)
	e.opts.highRxt = t.SndUna.Add(n)
}

// holeLen is how many octets from seq are unSACKed (up to SND.NXT).
func (e *Endpoint) holeLen(seq Seq) uint32 {
	_, n, _ := e.nextHole(seq, maxWindow)
	return n
}

// sackSend is RFC 6675 §5 step C: while cwnd - pipe is at least one SMSS,
// send what NextSeg picks. Bounded by the scoreboard and window.
func (e *Endpoint) sackSend(now time.Duration, out *Output) {
	t := &e.tcb
	m := e.smss()
	for range 1 + int(t.Cwnd/max(m, 1)) {
		if p := e.pipe(); t.Cwnd < p+m {
			return
		}
		lost := e.lostEdge()
		// Rule 1: the first lost hole above HighRxt.
		if seq, n, ok := e.nextHole(e.opts.highRxt, m); ok && seq.LessThan(lost) {
			n = min(n, uint32(seq.Size(lost)))
			sent := e.sendDataAt(now, seq, n, out)
			if sent == 0 {
				return
			}
			e.opts.highRxt = seq.Add(sent)
			continue
		}
		// Rule 2: new data, within the peer's window.
		if e.unsent() {
			var room uint32
			if edge := t.SndUna.Add(Size(t.SndWnd)); t.SndNxt.LessThan(edge) {
				room = uint32(t.SndNxt.Size(edge))
			}
			if n := e.sendDataAt(now, t.SndNxt, min(room, m), out); n > 0 {
				e.rtxNxt = t.SndNxt
				continue
			}
		}
		// Rule 3: a hole above HighRxt with SACKed data above it.
		if seq, n, ok := e.nextHole(e.opts.highRxt, m); ok && len(e.sacked.spans) > 0 &&
			seq.LessThan(e.sacked.spans[len(e.sacked.spans)-1].start) {
			sent := e.sendDataAt(now, seq, n, out)
			if sent == 0 {
				return
			}
			e.opts.highRxt = seq.Add(sent)
			continue
		}
		return
	}
}

// sackEndRecovery ends RFC 6675 recovery at the cumulative ACK of
// RecoveryPoint (the caller checked it).
func (e *Endpoint) sackEndRecovery() {
	e.opts.sackRecovery, e.tcb.InSACKRecovery = false, false
}

// sackOnTimeout keeps the scoreboard through a retransmission timeout
// unless the peer reneged: its cumulative ACK stops at the left edge of a
// range it SACKed (it dropped what it had reported).
func (e *Endpoint) sackOnTimeout() {
	e.opts.sackRecovery, e.tcb.InSACKRecovery = false, false
	e.opts.highRxt = e.tcb.SndUna
	if sp := e.sacked.spans; len(sp) > 0 && sp[0].start == e.tcb.SndUna {
		e.sacked.reset()
		e.tcb.SACKed = 0
	}
}

// skipSACKed moves a go-back-N retransmission at seq past SACKed ranges,
// returning where to send and how much before the next SACKed range.
func (e *Endpoint) skipSACKed(seq Seq, maxLen uint32) (Seq, uint32) {
	if len(e.sacked.spans) == 0 || !seq.LessThan(e.tcb.SndNxt) {
		return seq, maxLen
	}
	at, n, ok := e.nextHole(seq, maxLen)
	if !ok {
		return e.tcb.SndNxt, maxLen
	}
	return at, n
}
