package tcpexp

// kview is the kernel's state beside one segment: for a segment the kernel
// sent, the state it sent it in; for one the lab sent, the state the
// segment left the kernel in. note explains what the segment shows.
type kview struct {
	state string
	note  string
}

// Kernel states, RFC 9293 names.
const (
	kClosed      = "CLOSED"
	kListen      = "LISTEN"
	kSynSent     = "SYN-SENT"
	kSynReceived = "SYN-RECEIVED"
	kEstablished = "ESTABLISHED"
	kFinWait1    = "FIN-WAIT-1"
	kFinWait2    = "FIN-WAIT-2"
	kCloseWait   = "CLOSE-WAIT"
	kClosing     = "CLOSING"
	kLastAck     = "LAST-ACK"
	kTimeWait    = "TIME-WAIT"
)

// kmachine follows one kernel socket through the segments of a connection
// in capture order. It knows only what the wire shows: a close() whose FIN
// is still queued behind data is invisible until that FIN is sent, so a
// segment the kernel sends before its FIN is never put in FIN-WAIT-1,
// CLOSING or LAST-ACK.
type kmachine struct {
	st       string
	iss      uint32 // the kernel's SYN
	haveISS  bool
	rcvNxt   uint32 // the next lab sequence number the kernel expects
	haveRcv  bool
	ooo      [][2]uint32 // lab segments beyond rcvNxt: [seq, end)
	finSeq   uint32      // the kernel's FIN's sequence number
	finSent  bool
	labFin   uint32 // the lab's FIN's sequence number
	labFinOK bool   // seen
	finRcvd  bool   // the kernel has the lab's FIN in order
	preFin   string // the kernel's state before the lab's FIN reached it
	preRST   string // before an acceptable lab RST
	chal     bool   // an in-window RST awaits the kernel's challenge ACK
}

// inferKernel returns the kernel's state beside each segment of one
// connection, in capture order. On loopback, capture order is the order in
// which the kernel sent and received the segments, except that two CPUs
// may interleave a few microseconds apart: a kernel segment whose ACK
// shows it was sent before the kernel processed the lab's FIN or RST
// captured before it is given the state before that FIN or RST.
func inferKernel(segs []wseg) []kview {
	out := make([]kview, len(segs))
	if len(segs) == 0 {
		return out
	}
	k := &kmachine{}
	first := segs[0]
	switch {
	case first.fromLab && first.has(wSYN) && !first.has(wACK):
		k.st = kListen // until the kernel's answer says otherwise
		for _, s := range segs[1:] {
			if s.fromLab {
				continue
			}
			if s.has(wRST) {
				k.st = kClosed
			}
			break
		}
	case !first.fromLab && first.has(wSYN):
		k.st = kClosed
	default:
		k.st = kEstablished
		out[0].note = "assumed: the connection's start is not in the capture"
	}
	for i, s := range segs {
		var v kview
		if s.fromLab {
			v = k.labSegment(s)
		} else {
			v = k.kernelSegment(s)
		}
		if out[i].note != "" && v.note == "" {
			v.note = out[i].note
		}
		out[i] = v
	}
	return out
}

// labSegment: the kernel receives s.
func (k *kmachine) labSegment(s wseg) kview {
	k.chal = false
	if k.st == kClosed {
		note := ""
		if s.has(wSYN) && !s.has(wACK) {
			note = "no listener on this port: the kernel answers RST"
		} else if !s.has(wRST) {
			note = "the kernel has no socket for it"
		}
		return kview{kClosed, note}
	}
	if s.has(wRST) {
		return k.labRST(s)
	}
	if s.has(wSYN) {
		switch k.st {
		case kListen:
			k.st = kSynReceived
			k.rcvNxt, k.haveRcv = s.seq+1, true
		case kSynSent:
			k.rcvNxt, k.haveRcv = s.seq+1, true
			if s.has(wACK) && k.haveISS && s.ack == k.iss+1 {
				k.st = kEstablished
			} else {
				k.st = kSynReceived // simultaneous open: the SYNs crossed
			}
		case kSynReceived:
			if s.has(wACK) && k.haveISS && s.ack == k.iss+1 {
				k.st = kEstablished
			}
		}
		return kview{k.st, ""}
	}
	if s.has(wACK) {
		if k.st == kSynReceived && k.haveISS && s.ack == k.iss+1 {
			k.st = kEstablished
		}
		if k.finSent && seqLT(k.finSeq, s.ack) { // acknowledges the kernel's FIN
			switch k.st {
			case kFinWait1:
				k.st = kFinWait2
			case kClosing:
				k.st = kTimeWait
			case kLastAck:
				k.st = kClosed
				return kview{k.st, "acknowledges the kernel's FIN: its socket is gone"}
			}
		}
	}
	if !k.haveRcv || (s.n == 0 && !s.has(wFIN)) {
		return kview{k.st, ""}
	}
	if s.has(wFIN) {
		k.labFin, k.labFinOK = s.seq+uint32(s.n), true
	}
	end := s.end()
	switch {
	case seqLE(s.seq, k.rcvNxt) && seqLT(k.rcvNxt, end):
		k.rcvNxt = end
		k.drain()
	case seqLT(k.rcvNxt, s.seq):
		k.ooo = append(k.ooo, [2]uint32{s.seq, end})
	}
	k.finArrived()
	return kview{k.st, ""}
}

// drain moves rcvNxt over queued segments it reaches.
func (k *kmachine) drain() {
	for moved := true; moved; {
		moved = false
		rest := k.ooo[:0]
		for _, r := range k.ooo {
			switch {
			case seqLE(r[0], k.rcvNxt) && seqLT(k.rcvNxt, r[1]):
				k.rcvNxt, moved = r[1], true
			case seqLT(k.rcvNxt, r[0]):
				rest = append(rest, r)
			}
		}
		k.ooo = rest
	}
}

// finArrived takes the lab's FIN once the kernel has it in order.
func (k *kmachine) finArrived() {
	if !k.labFinOK || k.finRcvd || !seqLT(k.labFin, k.rcvNxt) {
		return
	}
	k.finRcvd, k.preFin = true, k.st
	switch k.st {
	case kEstablished, kSynReceived:
		k.st = kCloseWait
	case kFinWait1:
		k.st = kClosing
	case kFinWait2:
		k.st = kTimeWait
	}
}

func (k *kmachine) labRST(s wseg) kview {
	switch k.st {
	case kListen:
		return kview{k.st, "a listener ignores a RST"}
	case kSynSent:
		if s.has(wACK) && k.haveISS && s.ack == k.iss+1 {
			k.preRST, k.st = k.st, kClosed
			return kview{k.st, "the RST acknowledges the kernel's SYN: the connection is refused"}
		}
		return kview{k.st, "ignored: the RST does not acknowledge the kernel's SYN"}
	}
	if !k.haveRcv {
		return kview{k.st, ""}
	}
	switch d := s.seq - k.rcvNxt; {
	case d == 0:
		k.preRST, k.st = k.st, kClosed
		return kview{k.st, "the RST is exactly at the kernel's RCV.NXT: the kernel aborts the connection"}
	case d < 1<<30:
		k.chal = true
		return kview{k.st, "the RST is in the kernel's window but not at RCV.NXT: RFC 5961 §3.2, a challenge ACK, not an abort"}
	default:
		return kview{k.st, "the RST is outside the kernel's window: ignored (RFC 5961 §3.2)"}
	}
}

// kernelSegment: the kernel sends s.
func (k *kmachine) kernelSegment(s wseg) kview {
	chal := k.chal
	k.chal = false
	if s.has(wRST) {
		was := k.st
		k.st = kClosed
		if was == kClosed {
			return kview{kClosed, "the kernel has no socket for the segment this answers"}
		}
		k.preRST = ""
		return kview{kClosed, "the kernel resets the connection (" + was + " → CLOSED)"}
	}
	if k.st == kClosed && k.preRST != "" {
		return kview{k.preRST, "sent before the kernel processed the lab's RST that the capture shows first (another CPU)"}
	}
	if s.has(wACK) && k.haveRcv {
		if k.finRcvd && seqLE(s.ack, k.labFin) && !s.has(wFIN) {
			return kview{k.preFin, "sent before the kernel processed the lab's FIN that the capture shows first (its ACK does not cover the FIN)"}
		}
		if seqLT(k.rcvNxt, s.ack) { // it has more than the capture showed in order
			k.rcvNxt = s.ack
			k.drain()
			k.finArrived()
		}
	}
	switch {
	case s.has(wSYN) && !s.has(wACK):
		k.iss, k.haveISS = s.seq, true
		k.st = kSynSent
	case s.has(wSYN):
		// A SYN,ACK is only ever sent in SYN-RECEIVED.
		k.iss, k.haveISS = s.seq, true
		switch k.st {
		case kListen, kClosed, kSynSent:
			k.st = kSynReceived
		case kEstablished:
			return kview{kSynReceived, "sent before the kernel processed the lab's segment that the capture shows first (another CPU)"}
		}
	}
	if s.has(wFIN) && !k.finSent {
		k.finSent, k.finSeq = true, s.seq+uint32(s.n)
		switch k.st {
		case kEstablished, kSynReceived:
			k.st = kFinWait1
		case kCloseWait:
			k.st = kLastAck
		}
		return kview{k.st, "the kernel's FIN: its application closed"}
	}
	if chal && s.n == 0 && s.flags&(wSYN|wFIN) == 0 {
		return kview{k.st, "challenge ACK (RFC 5961 §3.2) to the lab's in-window RST"}
	}
	return kview{k.st, ""}
}
