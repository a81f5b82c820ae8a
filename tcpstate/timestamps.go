package tcpstate

import "time"

// The timestamps option (RFC 7323 §3–§5): negotiated on the SYNs, then on
// every segment but a RST; TSecr gives an RTT sample for each ACK of new
// data (§4, fed to RFC 6298), and PAWS refuses a segment whose TSval is
// older than TS.Recent (§5), unless TS.Recent has aged past
// Config.PAWSIdleLimit (§5.5, 24 days). A segment without the option on a
// connection that negotiated it is accepted, as Linux does (§3.2 says
// SHOULD drop).

// optionState is the per-connection state of SACK and timestamps.
type optionState struct {
	tsOffset      uint32        // random offset of our timestamp clock (§7.1)
	tsRecentAt    time.Duration // when TS.Recent was last set
	tsRecentValid bool
	lastAckSent   Seq // Last.ACK.sent (§4.3)

	// sackRecent lists, most recent first, the out-of-order blocks to
	// report (RFC 2018 §4); each is looked up in the reassembler when an
	// ACK is built, so it grows with merges and vanishes once in order.
	sackRecent  [MaxSACKBlocks]span
	nSackRecent int

	sackRecovery bool // RFC 6675 loss recovery (with inRecovery)
	highRxt      Seq  // HighRxt: the end of the highest retransmission
}

// tsNow is our TSval at the time of the call being handled.
func (e *Endpoint) tsNow() uint32 {
	return uint32(e.now/e.cfg.TimestampClock) + e.opts.tsOffset
}

// negotiateOptions records, from the peer's SYN (or SYN,ACK), whether SACK
// and timestamps are on: both ends must send the option in their SYN, and
// ours is sent whenever the Config allows (on a SYN,ACK only if the SYN
// had it).
func (e *Endpoint) negotiateOptions(seg *Segment) {
	t := &e.tcb
	t.SACKOK = seg.Options.SACKPermitted && !e.cfg.DisableSACK
	t.TSOK = seg.Options.HasTimestamps && !e.cfg.DisableTimestamps
	if t.TSOK {
		e.setTSRecent(seg.Options.TSVal)
	}
}

func (e *Endpoint) setTSRecent(v uint32) {
	e.tcb.TSRecent, e.opts.tsRecentAt, e.opts.tsRecentValid = v, e.now, true
}

// synOptions adds SACK-permitted and timestamps to our SYN or SYN,ACK.
func (e *Endpoint) synOptions(o *Options, withACK bool) {
	t := &e.tcb
	o.SACKPermitted = !e.cfg.DisableSACK && (!withACK || t.SACKOK)
	if !e.cfg.DisableTimestamps && (!withACK || t.TSOK) {
		o.HasTimestamps, o.TSVal = true, e.tsNow()
		if withACK {
			o.TSEcr = t.TSRecent
		}
	}
}

// segmentOptions adds the timestamps and SACK options to a segment we send
// on a synchronized connection. With data, the SACK blocks cost payload:
// see sackRoom.
func (e *Endpoint) segmentOptions(s *Segment) {
	t := &e.tcb
	if s.Flags&RST != 0 {
		return
	}
	if t.TSOK {
		s.Options.HasTimestamps, s.Options.TSVal, s.Options.TSEcr = true, e.tsNow(), t.TSRecent
	}
	if s.Flags&ACK != 0 {
		e.opts.lastAckSent = s.Ack
		if t.SACKOK {
			e.sackBlocks(&s.Options)
		}
	}
}

// tsOverhead is the option space the timestamps option takes from every
// segment (RFC 9293 §3.7.1: the MSS does not count options).
func (e *Endpoint) tsOverhead() uint32 {
	if e.tcb.TSOK {
		return 12
	}
	return 0
}

// pawsReject is RFC 7323 §5.3 R1, before the acceptability test: a
// segment (not a RST) whose TSval is older than a valid TS.Recent is a
// duplicate from an old incarnation of the sequence space. It is answered
// with an ACK and dropped.
func (e *Endpoint) pawsReject(a *arrival, out *Output) bool {
	t := &e.tcb
	o := &a.seg.Options
	if !t.TSOK || !o.HasTimestamps || a.flags&RST != 0 || !e.opts.tsRecentValid {
		return false
	}
	if e.now-e.opts.tsRecentAt > e.cfg.PAWSIdleLimit {
		// §5.5: TS.Recent is too old to judge by; it is replaced below.
		e.opts.tsRecentValid = false
		return false
	}
	if int32(o.TSVal-t.TSRecent) >= 0 {
		return false
	}
	t.PAWSRejected++
	e.sendACK(out)
	return true
}

// updateTSRecent is R3 for an acceptable segment: TS.Recent takes its TSval
// if the segment covers Last.ACK.sent (SEG.SEQ =< Last.ACK.sent) and the
// TSval is not older.
func (e *Endpoint) updateTSRecent(a *arrival) {
	t := &e.tcb
	o := &a.seg.Options
	if !t.TSOK || !o.HasTimestamps || e.opts.lastAckSent.LessThan(a.seg.Seq) {
		return
	}
	if !e.opts.tsRecentValid || int32(o.TSVal-t.TSRecent) >= 0 {
		e.setTSRecent(o.TSVal)
	}
}

// tsRTTSample takes an RTT sample from the TSecr of an ACK of new data
// (RFC 7323 §4.1). A TSecr of 0 or from the future gives none. It reports
// whether a sample was taken; the driver's one-timed-segment sampling is
// then not needed.
func (e *Endpoint) tsRTTSample(seg *Segment) bool {
	t := &e.tcb
	o := &seg.Options
	if !t.TSOK || !o.HasTimestamps || o.TSEcr == 0 {
		return false
	}
	ticks := int32(e.tsNow() - o.TSEcr)
	if ticks < 0 || time.Duration(ticks)*e.cfg.TimestampClock > e.cfg.MaxRTO*4 {
		return false
	}
	t.TSRTTSamples++
	e.rttTiming = false
	e.rttSample(time.Duration(ticks) * e.cfg.TimestampClock)
	return true
}
