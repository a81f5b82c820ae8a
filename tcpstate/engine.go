package tcpstate

import (
	"fmt"
	"io"
	"time"
)

// Endpoint is one end of one TCP connection, as a pure state machine. It
// owns no socket, goroutine or clock: every input — a user call, a received
// segment, a timer expiry — is a method call that carries the current time
// (a monotonic time.Duration from any fixed origin), and every output is
// appended to the caller's *Output. An Endpoint is not safe for concurrent
// use; the driver serialises calls.
//
// Inputs and where RFC 9293 describes them:
//
//	OpenActive, OpenPassive  §3.10.1   Send      §3.10.2
//	Receive                  §3.10.3   Close     §3.10.4
//	Abort                    §3.10.5   HandleSegment  §3.10.7
//	HandleTimer              §3.10.8
type Endpoint struct {
	cfg     Config
	wsShift uint8 // window scale we offer (RFC 7323)
	timers  [numTimers]timerSlot
	snd     ring // unacknowledged + unsent data; snd[0] is at sndBase
	rcv     ring // in-order data not yet read; out-of-order data beyond it
	reasm   reassembler
	sacked  reassembler   // the RFC 6675 scoreboard: what the peer SACKed above SND.UNA
	scratch Output        // used when a call passes a nil *Output
	now     time.Duration // the time of the call being handled (timestamps.go)
	noDelay bool          // Nagle off (Config.NoDelay, SetNoDelay)
	post    []byte        // a posted read's buffer (postread.go), or nil
	placed  int           // octets placed at the front of post
	conn
}

// conn is the per-connection state besides the TCB; OpenActive/OpenPassive
// zero it.
type conn struct {
	tcb     TCB
	passive bool // reached SYN-RECEIVED from LISTEN
	wsOK    bool // both SYNs carried the window scale option

	sndBase   Seq  // sequence number of the first byte in snd
	rtxNxt    Seq  // next sequence number to (re)transmit; < SND.NXT after a timeout
	finQueued bool // user called CLOSE: FIN follows the data
	finSent   bool

	rcvFin        bool // peer's FIN processed
	rcvFinPending bool // peer's FIN received out of order
	rcvFinSeq     Seq
	advRight      Seq // right edge of the window last advertised

	maxSndWnd    uint32 // MAX.SND.WND of RFC 5961
	dupAcks      int
	inRecovery   bool
	recover      Seq // RFC 6582 "recover"
	recoverValid bool

	rttTiming        bool
	rttSeq           Seq
	rttStart         time.Duration
	retries          int
	synRetransmitted bool
	hasRTT           bool // an RTT sample was taken (SRTT may be 0)
	persistBackoff   int

	held HoldReason // why queued data waits although the window has room (sendpolicy.go)

	ackPending  bool   // an ACK is delayed (delack.go)
	ackedRcvNxt Seq    // RCV.NXT as our last ACK carried it
	quickLeft   int    // data segments still to ACK at once (quick-ACK mode)
	rcvMSS      uint32 // largest segment received, for "every second full-sized segment"

	chStarted bool // challenge ACK rate limit window
	chStart   time.Duration
	chCount   int

	partialACKs int // partial ACKs in this fast recovery (RFC 6582 timer rule)

	sentData     bool          // data or FIN was sent (restart window after idle)
	lastDataSend time.Duration // when data or FIN was last sent

	progressAt     time.Duration // SND.UNA last advanced, or data left with none outstanding (user timeout)
	persistProbing bool          // zero-window probes unanswered by an opening window
	persistSince   time.Duration // when the first of them went out

	lastRecv   time.Duration // a segment of this connection last arrived (keep-alive)
	keepProbes int           // keep-alive probes sent since

	rcvUp      Seq  // RCV.UP, the urgent pointer (RFC 9293 §3.10.7.4 sixth step)
	rcvUpValid bool // an urgent pointer was received

	opts optionState // SACK and timestamps (sack.go, timestamps.go)

	err error // why the connection ended, if not gracefully
}

// NewEndpoint returns a CLOSED endpoint.
func NewEndpoint(cfg Config) *Endpoint {
	cfg = cfg.withDefaults()
	e := &Endpoint{
		cfg:    cfg,
		snd:    newRing(cfg.SendBufferSize),
		rcv:    newRing(cfg.RecvBufferSize),
		reasm:  newReassembler(cfg.MaxOutOfOrder),
		sacked: newReassembler(cfg.MaxOutOfOrder),
	}
	e.noDelay = cfg.NoDelay
	if !cfg.DisableWindowScale {
		for cfg.RecvBufferSize>>e.wsShift > 65535 && e.wsShift < 14 {
			e.wsShift++
		}
	}
	e.tcb.RTO = cfg.InitialRTO
	return e
}

// State returns the current state.
func (e *Endpoint) State() State { return e.tcb.State }

// TCB returns a copy of the transmission control block.
func (e *Endpoint) TCB() TCB {
	e.tcb.RcvWnd = uint32(e.rcv.free())
	e.tcb.ACKDelayed, e.tcb.Held = e.ackPending, e.holding()
	return e.tcb
}

// String summarises the TCB, e.g. "ESTABLISHED snd.una=… snd.nxt=… …".
func (e *Endpoint) String() string {
	t := e.TCB()
	return t.String()
}

// Err returns why the connection ended (reset, refused, timeout, abort), or
// nil.
func (e *Endpoint) Err() error { return e.err }

// Readable returns how many in-order octets Receive can return now.
func (e *Endpoint) Readable() int { return e.rcv.len() }

// SendSpace returns how many octets Send would accept now.
func (e *Endpoint) SendSpace() int { return e.snd.free() }

// Unacked returns how many octets of sent or queued data are not yet
// acknowledged.
func (e *Endpoint) Unacked() int { return e.snd.len() }

func (e *Endpoint) output(out *Output) *Output {
	if out == nil {
		e.scratch.Reset()
		return &e.scratch
	}
	return out
}

func (e *Endpoint) resetConn() {
	st := e.tcb.State
	e.conn = conn{}
	e.tcb.State = st
	e.tcb.RTO = e.cfg.InitialRTO
	e.snd.head, e.snd.n = 0, 0
	e.rcv.head, e.rcv.n = 0, 0
	e.reasm.reset()
	e.sacked.reset()
}

// setState is the only place the state changes. It reports the transition
// and, in tests, rejects any transition that is not a row of the table.
func (e *Endpoint) setState(out *Output, to State, cause Cause) {
	from := e.tcb.State
	if strictTransitions && !Allowed(from, to, cause) {
		panic(fmt.Sprintf("tcpstate: transition %v -> %v on %v is not in the table", from, to, cause))
	}
	e.tcb.State = to
	out.Events = append(out.Events, Event{Kind: EventStateChanged, From: from, To: to, Cause: cause})
}

func (e *Endpoint) enterClosed(out *Output, cause Cause, err error) {
	e.setState(out, Closed, cause)
	e.cancelAllTimers(out)
	if err == nil {
		return
	}
	e.err = err
	var k EventKind
	switch err {
	case ErrConnectionReset:
		k = EventReset
	case ErrConnectionRefused:
		k = EventRefused
	case ErrTimeout:
		k = EventTimeout
	default:
		return
	}
	out.Events = append(out.Events, Event{Kind: k, Err: err})
}

func (e *Endpoint) enterTimeWait(now time.Duration, out *Output, cause Cause) {
	e.setState(out, TimeWait, cause)
	e.cancelTimer(out, TimerRetransmit)
	e.cancelTimer(out, TimerPersist)
	e.cancelTimer(out, TimerKeepAlive)
	e.armTimer(out, TimerTimeWait, now, 2*e.cfg.MSL)
}

func (e *Endpoint) returnToListen(out *Output, cause Cause) {
	e.setState(out, Listen, cause)
	e.cancelAllTimers(out)
	local := e.tcb.LocalPort
	e.resetConn()
	e.tcb.LocalPort = local
	e.passive = true
}

// ---- user calls (RFC 9293 §3.10.1–§3.10.5) ----

// OpenActive sends a SYN from localPort to remotePort: CLOSED -> SYN-SENT,
// or LISTEN -> SYN-SENT (RFC 9293 §3.10.1: an active OPEN on a listening
// connection turns it active).
func (e *Endpoint) OpenActive(now time.Duration, localPort, remotePort uint16, out *Output) error {
	e.now = now
	out = e.output(out)
	if e.tcb.State != Closed && e.tcb.State != Listen {
		return fmt.Errorf("%w (state %v)", ErrConnectionExists, e.tcb.State)
	}
	e.resetConn()
	t := &e.tcb
	t.LocalPort, t.RemotePort = localPort, remotePort
	e.initSend(e.cfg.ISS())
	e.setState(out, SynSent, CauseActiveOpen)
	e.sendSYN(now, out, false, false)
	e.armTimer(out, TimerRetransmit, now, e.retransmitIn(now))
	return nil
}

// OpenPassive waits for a SYN on localPort: CLOSED -> LISTEN. One Endpoint
// serves one connection; a driver wanting a backlog keeps a listener per
// expected peer.
func (e *Endpoint) OpenPassive(now time.Duration, localPort uint16, out *Output) error {
	e.now = now
	out = e.output(out)
	if e.tcb.State != Closed {
		return fmt.Errorf("%w (state %v)", ErrConnectionExists, e.tcb.State)
	}
	e.resetConn()
	e.tcb.LocalPort = localPort
	e.passive = true
	e.setState(out, Listen, CausePassiveOpen)
	return nil
}

func (e *Endpoint) initSend(iss Seq) {
	t := &e.tcb
	t.ISS, t.SndUna, t.SndNxt = iss, iss, iss+1
	e.sndBase, e.rtxNxt = iss+1, iss+1
	t.SndMSS = 536
	e.opts.tsOffset = e.cfg.TSOffset()
}

// Send queues data and transmits what the windows allow. It returns how
// many octets were accepted (fewer than len(p) when the send buffer is full;
// EventWritable reports room). Data sent before the connection is
// established is queued.
func (e *Endpoint) Send(now time.Duration, p []byte, out *Output) (int, error) {
	e.now = now
	out = e.output(out)
	switch e.tcb.State {
	case Closed:
		if e.err != nil {
			return 0, e.err
		}
		return 0, fmt.Errorf("%w (state %v)", ErrNotConnected, e.tcb.State)
	case Listen:
		return 0, fmt.Errorf("%w (state %v, remote unknown)", ErrNotConnected, e.tcb.State)
	case SynSent, SynReceived:
		return e.snd.write(p), nil
	case Established, CloseWait:
		n := e.snd.write(p)
		e.trySend(now, out)
		e.rearmTimers(now, out, false)
		return n, nil
	}
	return 0, fmt.Errorf("%w (state %v)", ErrClosing, e.tcb.State)
}

// Receive moves received in-order data into p. It returns io.EOF once the
// peer's FIN has been reached, and the connection's error after a reset,
// abort or timeout. (0, nil) means "nothing yet": wait for EventReadable.
// Reading may open the window enough to send a window update.
func (e *Endpoint) Receive(now time.Duration, p []byte, out *Output) (int, error) {
	e.now = now
	out = e.output(out)
	if e.err != nil {
		return 0, e.err
	}
	n := e.rcv.read(p)
	if n > 0 {
		e.maybeWindowUpdate(out)
		return n, nil
	}
	if e.rcvFin {
		return 0, io.EOF
	}
	if e.tcb.State == Closed {
		return 0, fmt.Errorf("%w (state %v)", ErrNotConnected, e.tcb.State)
	}
	return 0, nil
}

// Close closes the sending side: the FIN follows any queued data.
func (e *Endpoint) Close(now time.Duration, out *Output) error {
	e.now = now
	out = e.output(out)
	switch e.tcb.State {
	case Closed:
		return fmt.Errorf("%w (state %v)", ErrNotConnected, e.tcb.State)
	case Listen, SynSent:
		e.enterClosed(out, CauseClose, nil)
		return nil
	case SynReceived:
		// §3.10.4: with nothing queued the FIN goes now; otherwise it
		// follows the data once the SYN is acknowledged.
		e.finQueued = true
		e.setState(out, FinWait1, CauseClose)
		if e.snd.len() == 0 {
			e.sendDataAt(now, e.sndBase, 0, out)
			e.rtxNxt = e.tcb.SndNxt
		}
	case Established:
		e.finQueued = true
		e.setState(out, FinWait1, CauseClose)
	case CloseWait:
		e.finQueued = true
		e.setState(out, LastAck, CauseClose)
	default:
		return fmt.Errorf("%w (state %v)", ErrClosing, e.tcb.State)
	}
	e.trySend(now, out)
	e.rearmTimers(now, out, false)
	return nil
}

// Abort drops the connection at once, sending a RST when the peer may still
// think it is open (RFC 9293 §3.10.5).
func (e *Endpoint) Abort(now time.Duration, out *Output) error {
	e.now = now
	out = e.output(out)
	switch e.tcb.State {
	case Closed:
		return fmt.Errorf("%w (state %v)", ErrNotConnected, e.tcb.State)
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		e.emit(out, RST, e.tcb.SndNxt, nil, nil)
	}
	e.enterClosed(out, CauseAbort, ErrConnectionAborted)
	return nil
}

// ---- segment arrival (RFC 9293 §3.10.7) ----

// HandleSegment processes one received segment. Segments for another port
// pair are ignored (the driver demultiplexes); a CLOSED endpoint answers
// anything but a RST with a RST.
func (e *Endpoint) HandleSegment(now time.Duration, seg *Segment, out *Output) {
	e.now = now
	out = e.output(out)
	t := &e.tcb
	if t.State == Closed {
		e.replyRST(seg, out)
		return
	}
	if seg.DstPort != t.LocalPort || (t.State != Listen && seg.SrcPort != t.RemotePort) {
		return
	}
	switch t.State {
	case Listen:
		e.segListen(now, seg, out)
	case SynSent:
		e.segSynSent(now, seg, out)
	default:
		e.segOther(now, seg, out)
	}
}

// replyRST answers seg with a RST that the sender will accept: <SEQ=SEG.ACK>
// if it carried an ACK, else <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func (e *Endpoint) replyRST(seg *Segment, out *Output) {
	if seg.Flags&RST != 0 {
		return
	}
	r := Segment{SrcPort: seg.DstPort, DstPort: seg.SrcPort}
	if seg.Flags&ACK != 0 {
		r.Seq, r.Flags = seg.Ack, RST
	} else {
		r.Ack, r.Flags = seg.Seq.Add(seg.Len()), RST|ACK
	}
	out.Segments = append(out.Segments, r)
}

func (e *Endpoint) segListen(now time.Duration, seg *Segment, out *Output) {
	switch {
	case seg.Flags&RST != 0:
		return
	case seg.Flags&ACK != 0:
		e.replyRST(seg, out)
		return
	case seg.Flags&SYN == 0:
		return
	}
	t := &e.tcb
	t.RemotePort = seg.SrcPort
	e.initSend(e.cfg.ISS())
	e.acceptSYN(seg)
	e.setState(out, SynReceived, CauseRcvSYN)
	e.sendSYN(now, out, true, false)
	e.armTimer(out, TimerRetransmit, now, e.retransmitIn(now))
}

// acceptSYN records the peer's SYN: IRS, RCV.NXT, MSS and window scale
// (RFC 7323: scaling applies only if both SYNs carry the option; the window
// field of a SYN is never scaled).
func (e *Endpoint) acceptSYN(seg *Segment) {
	t := &e.tcb
	t.IRS, t.RcvNxt = seg.Seq, seg.Seq+1
	mss := seg.Options.MSS
	if mss == 0 {
		mss = 536 // RFC 9293 §3.7.1 default for IPv4
	}
	t.SndMSS = min(mss, uint16(e.cfg.MSS))
	e.wsOK = seg.Options.HasWScale && !e.cfg.DisableWindowScale
	if e.wsOK {
		t.SndWScale = min(seg.Options.WScale, 14)
		t.RcvWScale = e.wsShift
	} else {
		t.SndWScale, t.RcvWScale = 0, 0
	}
	t.SndWnd = uint32(seg.Window)
	t.SndWL1, t.SndWL2 = seg.Seq, t.ISS
	e.maxSndWnd = t.SndWnd
	e.advRight = t.RcvNxt
	e.negotiateOptions(seg)
	e.startDelayedACK()
}

func (e *Endpoint) segSynSent(now time.Duration, seg *Segment, out *Output) {
	t := &e.tcb
	ackOK := false
	if seg.Flags&ACK != 0 {
		if seg.Ack.LessThanEq(t.ISS) || t.SndNxt.LessThan(seg.Ack) {
			e.replyRST(seg, out)
			return
		}
		ackOK = t.SndUna.LessThan(seg.Ack)
	}
	if seg.Flags&RST != 0 {
		if ackOK {
			e.enterClosed(out, CauseRcvRST, ErrConnectionRefused)
		}
		return
	}
	if seg.Flags&SYN == 0 {
		return
	}
	e.acceptSYN(seg)
	if !ackOK {
		// Simultaneous open: answer with SYN,ACK and wait for its ACK.
		e.setState(out, SynReceived, CauseRcvSYN)
		e.sendSYN(now, out, true, true)
		return
	}
	t.SndUna = seg.Ack
	t.SndWL1, t.SndWL2 = seg.Seq, seg.Ack
	e.tsRTTSample(seg)
	e.ackTiming(now, seg.Ack)
	e.initCongestion(e.synRetransmitted)
	e.retries = 0
	e.synLossRTO()
	e.setState(out, Established, CauseRcvSYNACK)
	e.startKeepAlive(now, out)
	e.sendACK(out)
	e.trySend(now, out)
	e.rearmTimers(now, out, true)
}

// acceptable is the segment acceptability test of RFC 9293 §3.10.7.4:
//
//	SEG.LEN  RCV.WND  test
//	0        0        SEG.SEQ = RCV.NXT
//	0        >0       RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
//	>0       0        not acceptable
//	>0       >0       RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND
//	                  or RCV.NXT =< SEG.SEQ+SEG.LEN-1 < RCV.NXT+RCV.WND
func acceptable(seq Seq, segLen Size, rcvNxt Seq, rcvWnd Size) bool {
	switch {
	case segLen == 0 && rcvWnd == 0:
		return seq == rcvNxt
	case segLen == 0:
		return seq.InWindow(rcvNxt, rcvWnd)
	case rcvWnd == 0:
		return false
	}
	return seq.InWindow(rcvNxt, rcvWnd) || seq.Add(segLen-1).InWindow(rcvNxt, rcvWnd)
}

// arrival is a segment on its way through segOther's steps: the control
// bits, sequence number and text still to process (a step may trim them)
// and what the steps found out on the way.
type arrival struct {
	seg      *Segment
	flags    Flags
	seq      Seq
	payload  []byte
	forceACK bool // the text was refused (zero window): answer with our window
	restart  bool // new data was acknowledged: restart the retransmission timer
	finAcked bool // our FIN is acknowledged (by this segment or before)
}

// segOther handles SYN-RECEIVED and the synchronized states, following the
// steps of RFC 9293 §3.10.7.4 with RFC 5961 in steps two, four and five.
// Each step is a method, called when the segment has what it is about; a
// step that consumes the segment (answers it or drops it) returns false
// and the rest are skipped.
func (e *Endpoint) segOther(now time.Duration, seg *Segment, out *Output) {
	a := arrival{seg: seg, flags: seg.Flags, seq: seg.Seq, payload: seg.Payload}
	e.lastRecv, e.keepProbes = now, 0
	synUnacked := e.tcb.State == SynReceived || (e.tcb.State == FinWait1 && e.tcb.SndUna == e.tcb.ISS)
	if synUnacked && a.flags&SYN != 0 && !e.repeatedSYN(now, &a, out) {
		return // the peer's SYN again
	}
	if e.pawsReject(&a, out) { // RFC 7323 §5.3 R1: PAWS, before the sequence number
		return
	}
	if !e.checkSequence(now, &a, out) { // first: the sequence number
		return
	}
	e.updateTSRecent(&a) // RFC 7323 §5.3 R3
	switch {
	case a.flags&RST != 0: // second: RST (RFC 5961 §3.2)
		e.handleRST(now, &a, out)
		return
	case a.flags&SYN != 0: // fourth: SYN (RFC 5961 §4.2)
		e.handleSYN(now, out)
		return
	case a.flags&ACK == 0: // fifth: no ACK, drop
		return
	}
	if !e.handleACK(now, &a, out) { // fifth: the ACK
		return
	}
	if a.flags&URG != 0 {
		e.receiveUrgent(&a, out) // sixth: URG
	}
	if len(a.payload) > 0 || a.flags&FIN != 0 {
		e.receiveSegmentText(now, &a, out) // seventh: text
	}
	if e.rcvFinPending {
		e.receiveFIN(now, &a, out) // eighth: FIN
	}
	if e.tcb.State == FinWait1 && a.finAcked {
		e.setState(out, FinWait2, CauseRcvACKOfFIN)
	}
	if a.forceACK {
		e.sendACK(out)
	}
	e.trySend(now, out)
	e.rearmTimers(now, out, a.restart)
}

// repeatedSYN handles a SYN in SYN-RECEIVED that repeats the peer's SYN
// (SEG.SEQ = IRS): without ACK the peer retransmitted it, so our SYN,ACK
// was lost and goes again; with ACK it is the peer's SYN,ACK of a
// simultaneous open, whose SYN we already hold, and the rest of it is
// processed as an ACK.
func (e *Endpoint) repeatedSYN(now time.Duration, a *arrival, out *Output) bool {
	if a.flags&RST != 0 || a.seq != e.tcb.IRS {
		return true
	}
	if a.flags&ACK == 0 {
		e.sendSYN(now, out, true, true)
		return false
	}
	a.flags &^= SYN
	a.seq++
	return true
}

// checkSequence is the first step: the acceptability test. An
// unacceptable segment is answered with an ACK (a RST with nothing, a SYN
// on a synchronized connection with a rate-limited challenge ACK, a
// retransmitted FIN in TIME-WAIT also restarts 2MSL), except that in a zero
// window a segment at RCV.NXT still has its ACK processed (RFC 9293's
// "special allowance"): its text is dropped and our window sent.
func (e *Endpoint) checkSequence(now time.Duration, a *arrival, out *Output) bool {
	t := &e.tcb
	segLen := Size(len(a.payload))
	if a.flags&SYN != 0 {
		segLen++
	}
	if a.flags&FIN != 0 {
		segLen++
	}
	rcvWnd := Size(e.rcv.free())
	switch {
	case acceptable(a.seq, segLen, t.RcvNxt, rcvWnd):
		return true
	case a.flags&RST != 0:
		return false
	case rcvWnd == 0 && a.seq == t.RcvNxt && a.flags&SYN == 0:
		a.payload, a.flags, a.forceACK = nil, a.flags&^FIN, true
		return true
	case a.flags&SYN != 0 && t.State.Synchronized():
		// RFC 5961 §4.2: a SYN gets the rate-limited challenge ACK
		// irrespective of its sequence number.
		e.challengeACK(now, out)
		return false
	case t.State == TimeWait && a.flags&FIN != 0 && a.seq.Add(Size(len(a.payload))+1) == t.RcvNxt:
		// Retransmitted FIN: acknowledge and restart 2MSL.
		e.armTimer(out, TimerTimeWait, now, 2*e.cfg.MSL)
	}
	e.sendACK(out)
	return false
}

// handleRST is the second step (RFC 5961 §3.2): a RST exactly at RCV.NXT
// resets the connection, one elsewhere in the window draws a challenge ACK.
func (e *Endpoint) handleRST(now time.Duration, a *arrival, out *Output) {
	if a.seq == e.tcb.RcvNxt {
		e.onRST(out)
	} else {
		e.challengeACK(now, out)
	}
}

// handleSYN is the fourth step (RFC 5961 §4.2): a SYN in the window takes
// a SYN-RECEIVED that came from LISTEN back there, and otherwise draws a
// challenge ACK.
func (e *Endpoint) handleSYN(now time.Duration, out *Output) {
	if e.tcb.State == SynReceived && e.passive {
		e.returnToListen(out, CauseRcvSYN)
	} else {
		e.challengeACK(now, out)
	}
}

// handleACK is the fifth step for a segment with ACK: in SYN-RECEIVED an
// ACK of our SYN establishes the connection (any other is answered with a
// RST); then the ACK is processed, and one that acknowledges our FIN ends
// CLOSING (TIME-WAIT) and LAST-ACK (CLOSED).
func (e *Endpoint) handleACK(now time.Duration, a *arrival, out *Output) bool {
	t := &e.tcb
	seg := a.seg
	if t.State == SynReceived {
		if !t.SndUna.LessThan(seg.Ack) || t.SndNxt.LessThan(seg.Ack) {
			e.replyRST(seg, out)
			return false
		}
		t.SndWnd = segWindow(seg, t.SndWScale)
		t.SndWL1, t.SndWL2 = seg.Seq, seg.Ack
		e.synLossRTO()
		e.setState(out, Established, CauseRcvACKOfSYN)
		e.startKeepAlive(now, out)
	}
	finWasAcked := e.ourFINAcked()
	restart, ok := e.processACK(now, seg, a.flags, out)
	if !ok {
		return false
	}
	a.restart, a.finAcked = restart, e.ourFINAcked()
	if a.finAcked && !finWasAcked {
		switch t.State {
		case Closing:
			e.enterTimeWait(now, out, CauseRcvACKOfFIN)
			return false
		case LastAck:
			e.enterClosed(out, CauseRcvACKOfFIN, nil)
			return false
		}
	}
	return true
}

// receiveSegmentText is the seventh step, for a segment with text or FIN:
// the text (and the FIN's place) is taken in the states that accept data,
// and acknowledged, at once or after a delay (delack.go).
func (e *Endpoint) receiveSegmentText(now time.Duration, a *arrival, out *Output) {
	if e.tcb.State.AcceptsData() {
		nxt := e.tcb.RcvNxt
		e.receiveText(a.seq, a.payload, a.flags&FIN != 0, out)
		if e.ackNow(a, nxt) {
			a.forceACK = true
		} else {
			e.delayACK(now, out)
		}
	}
}

// receiveFIN is the eighth step, with the peer's FIN received: once it is
// reached in order, it is consumed and the connection moves (ESTABLISHED
// → CLOSE-WAIT, FIN-WAIT-1 → CLOSING or, with our FIN acknowledged,
// TIME-WAIT, FIN-WAIT-2 → TIME-WAIT).
func (e *Endpoint) receiveFIN(now time.Duration, a *arrival, out *Output) {
	t := &e.tcb
	if t.RcvNxt != e.rcvFinSeq {
		return
	}
	e.rcvFinPending, e.rcvFin = false, true
	t.RcvNxt++
	out.Events = append(out.Events, Event{Kind: EventReadable})
	switch t.State {
	case Established:
		e.setState(out, CloseWait, CauseRcvFIN)
	case FinWait1:
		if a.finAcked {
			e.enterTimeWait(now, out, CauseRcvFINACK)
		} else {
			e.setState(out, Closing, CauseRcvFIN)
		}
	case FinWait2:
		e.enterTimeWait(now, out, CauseRcvFIN)
	}
}

// synLossRTO applies RFC 6298 (5.7) as data transfer begins: if the SYN
// or SYN,ACK was retransmitted and no RTT sample exists, the RTO is reset
// to Config.RTOAfterSYNLoss (3 s).
func (e *Endpoint) synLossRTO() {
	if e.synRetransmitted && !e.hasRTT {
		e.tcb.RTO = min(e.cfg.RTOAfterSYNLoss, e.cfg.MaxRTO)
	}
}

func (e *Endpoint) onRST(out *Output) {
	switch e.tcb.State {
	case SynReceived:
		if e.passive {
			e.returnToListen(out, CauseRcvRST)
		} else {
			e.enterClosed(out, CauseRcvRST, ErrConnectionRefused)
		}
	case Established, FinWait1, FinWait2, CloseWait:
		e.enterClosed(out, CauseRcvRST, ErrConnectionReset)
	default: // CLOSING, LAST-ACK, TIME-WAIT
		e.enterClosed(out, CauseRcvRST, nil)
	}
}

// challengeACK sends <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at most
// ChallengeACKLimit per ChallengeACKInterval (RFC 5961 §7).
func (e *Endpoint) challengeACK(now time.Duration, out *Output) {
	if !e.chStarted || now-e.chStart >= e.cfg.ChallengeACKInterval {
		e.chStarted, e.chStart, e.chCount = true, now, 0
	}
	if e.chCount >= e.cfg.ChallengeACKLimit {
		return
	}
	e.chCount++
	e.sendACK(out)
}

func (e *Endpoint) ourFINAcked() bool {
	return e.finSent && e.tcb.SndUna == e.sndBase.Add(Size(e.snd.len())+1)
}

// segWindow is the peer's window in octets: the window field scaled by
// SND.WIND.SHIFT, except in a segment with SYN, whose window field is never
// scaled (RFC 7323 §2.2).
func segWindow(seg *Segment, shift uint8) uint32 {
	if seg.Flags&SYN != 0 {
		return uint32(seg.Window)
	}
	return uint32(seg.Window) << shift
}

// processACK is the ACK processing of the fifth step for ESTABLISHED and
// later states. ok is false when the segment must be dropped.
func (e *Endpoint) processACK(now time.Duration, seg *Segment, flags Flags, out *Output) (restart, ok bool) {
	t := &e.tcb
	ack := seg.Ack
	if t.SndNxt.LessThan(ack) {
		// Acknowledges something not yet sent: answered with an ACK, at
		// the challenge-ACK rate (RFC 5961 §5.2, §7) unless configured
		// otherwise.
		if e.cfg.UnthrottledUnsentACKs {
			e.sendACK(out)
		} else {
			e.challengeACK(now, out)
		}
		return false, false
	}
	if ack.LessThan(t.SndUna.Sub(Size(e.maxSndWnd))) {
		// RFC 5961 §5.2: too old to be plausible.
		e.challengeACK(now, out)
		return false, false
	}
	wnd := segWindow(seg, t.SndWScale)
	sackedNew := e.onSACK(seg)
	if t.SndUna.LessThan(ack) {
		e.tsRTTSample(seg)
		restart = e.onNewACK(now, ack, out)
		e.pruneSACK()
	} else if ack == t.SndUna && len(seg.Payload) == 0 && flags&(SYN|FIN) == 0 &&
		t.SndNxt != t.SndUna && (wnd == t.SndWnd || sackedNew) && wnd != 0 && !e.timers[TimerPersist].armed {
		// Duplicate ACK (RFC 5681 §2, or RFC 6675 §2: one that SACKs new
		// data). Not while the window is shut: the
		// ACKs that answer zero-window probes repeat themselves by design,
		// and a "fast retransmit" then would send beyond the window (seen
		// against Linux).
		if t.SACKOK {
			e.sackDupACK(now, out)
		} else if e.ccOnDupACK() {
			// Karn: sendDataAt stops timing the segment it resends.
			e.sendDataAt(now, t.SndUna, e.smss(), out)
		}
	}
	// Window update (RFC 9293 §3.10.7.4): only if SND.UNA =< SEG.ACK =<
	// SND.NXT (the upper bound is checked above) and the segment is newer
	// than the last update. SND.UNA is already advanced to a new SEG.ACK.
	if t.SndUna.LessThanEq(ack) &&
		(t.SndWL1.LessThan(seg.Seq) || (t.SndWL1 == seg.Seq && t.SndWL2.LessThanEq(ack))) {
		if t.SndWnd == 0 && wnd > 0 && t.SndUna.Size(t.SndNxt) == 1 && e.rtxNxt != t.SndUna {
			// The window reopens with only our zero-window probe octet
			// outstanding: the receiver dropped it (its window was shut),
			// so send it again in order instead of leaving a hole for the
			// retransmission timer (seen against Linux, which drops probe
			// data beyond a zero window).
			e.rtxNxt = t.SndUna
		}
		t.SndWnd, t.SndWL1, t.SndWL2 = wnd, seg.Seq, ack
		e.maxSndWnd = max(e.maxSndWnd, wnd)
		if wnd > 0 {
			e.persistBackoff = 0
			e.persistProbing = false
		}
	}
	return restart, true
}

// onNewACK takes an ACK of new data (SND.UNA < SEG.ACK =< SND.NXT). It
// reports whether the retransmission timer restarts: always, except on a
// partial ACK of fast recovery after the first (RFC 6582 §3.2 step 5)
// unless Config.SlowButSteady.
func (e *Endpoint) onNewACK(now time.Duration, ack Seq, out *Output) (restart bool) {
	t := &e.tcb
	acked := uint32(t.SndUna.Size(ack))
	if t.SndUna == t.ISS {
		// Our SYN is acknowledged.
		t.SndUna++
		acked--
		e.initCongestion(e.synRetransmitted)
		e.synLossRTO()
	}
	e.progressAt = now
	if n := min(int(acked), e.snd.len()); n > 0 {
		e.snd.discard(n)
		e.sndBase = e.sndBase.Add(Size(n))
		out.Events = append(out.Events, Event{Kind: EventWritable})
	}
	t.SndUna = ack
	if e.rtxNxt.LessThan(ack) {
		e.rtxNxt = ack
	}
	e.ackTiming(now, ack)
	e.retries = 0
	restart = true
	if e.ccOnACK(acked) {
		e.sendDataAt(now, ack, e.smss(), out)
		e.partialACKs++
		restart = e.partialACKs == 1 || e.cfg.SlowButSteady
	}
	if !e.inRecovery && e.recoverValid && e.recover.LessThan(ack) {
		e.recoverValid = false
	}
	return restart
}

// receiveText trims the text to the window, stores it (in order, or out of
// order into the reassembler) and notes a FIN.
func (e *Endpoint) receiveText(seq Seq, payload []byte, fin bool, out *Output) {
	t := &e.tcb
	if seq.LessThan(t.RcvNxt) {
		finSeq := seq.Add(Size(len(payload)))
		d := int(seq.Size(t.RcvNxt))
		if d >= len(payload) {
			payload = nil
		} else {
			payload = payload[d:]
		}
		if fin && finSeq.LessThan(t.RcvNxt) {
			fin = false // an old FIN
		}
		seq = t.RcvNxt
	}
	off := int(t.RcvNxt.Size(seq))
	room := e.rcv.free() - off // what the window lets in, posted buffer or not
	if off == 0 && room > 0 && len(payload) > 0 {
		if k := e.place(payload[:min(len(payload), room)]); k > 0 {
			seq, payload = seq.Add(Size(k)), payload[k:]
			room -= k
			out.Events = append(out.Events, Event{Kind: EventReadable})
		}
	}
	if len(payload) > room {
		payload, fin = payload[:max(room, 0)], false
	}
	if len(payload) > 0 {
		e.rcv.writeAt(off, payload)
		end := seq.Add(Size(len(payload)))
		if off == 0 {
			nxt := e.reasm.advance(end)
			e.rcv.commit(int(t.RcvNxt.Size(nxt)))
			t.RcvNxt = nxt
			out.Events = append(out.Events, Event{Kind: EventReadable})
		} else {
			e.reasm.add(seq, end)
			e.noteSACKRecent(seq)
		}
	}
	if fin && !e.rcvFin {
		e.rcvFinPending, e.rcvFinSeq = true, seq.Add(Size(len(payload)))
	}
}

// maybeWindowUpdate sends an ACK after a read if the window grew by at least
// min(half the buffer, one MSS) (receiver-side SWS avoidance, RFC 9293
// §3.8.6.2.2).
func (e *Endpoint) maybeWindowUpdate(out *Output) {
	t := &e.tcb
	if !t.State.AcceptsData() {
		return
	}
	w := min(uint32(e.rcv.free())>>t.RcvWScale, 65535) << t.RcvWScale
	right := t.RcvNxt.Add(Size(w))
	if e.advRight.LessThan(right) && int(e.advRight.Size(right)) >= e.swsThreshold() {
		e.sendACK(out)
	}
}
