package tcpexp

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// The comments on every captured packet of a tcp/ experiment: the lab's
// state from the driver's records, the kernel's from the segments
// (inferKernel), the ISS of each side once, the name of every
// transmission that is not the only one of its stretch of sequence space,
// and what the lab lost on its link before each packet.

// packetNotes is what the comments say beyond each packet's own segment,
// gathered from the driver's records of every lab connection and from the
// kernel's segments of every conversation.
type packetNotes struct {
	named     map[int]string   // record → its transmission's name
	heldOf    map[int]int      // release by the link → the emission it released
	finQueued map[int]bool     // record → the lab has closed, its FIN not yet sent
	before    map[int][]string // packet → what the lab lost before it
	kernel    map[int]string   // packet → the kernel's transmission's name
}

// comment writes the comments of every captured packet and returns how
// many carry one.
func (r *labRun) comment() int {
	n := r.packetNotes()
	pos := make([]int, len(r.pkts)) // packet → its index in its conversation
	for _, c := range r.convs {
		for j, p := range c.pkts {
			pos[p] = j
		}
	}
	told := map[[2]int]bool{} // conversation, side (1: the lab) → its ISS told
	commented := 0
	for i, p := range r.pkts {
		ci := r.convOf[i]
		if ci < 0 {
			p.Comment(annotate.Append("not a TCP segment of the lab's", annotate.Block{}.Str(annotate.Side, "other")))
		} else {
			r.commentSegment(i, r.convs[ci], pos[i], told, n)
		}
		commented++
	}
	return commented
}

// packetNotes gathers the notes of every lab connection in the records and
// every conversation's kernel retransmissions.
func (r *labRun) packetNotes() *packetNotes {
	n := &packetNotes{named: map[int]string{}, heldOf: map[int]int{}, finQueued: map[int]bool{},
		before: map[int][]string{}, kernel: map[int]string{}}
	ids := map[int]bool{}
	for i := range r.recs {
		if id := r.recs[i].Conn; id != 0 && !ids[id] {
			ids[id] = true
			r.connNotes(id, n)
		}
	}
	for _, c := range r.convs {
		for k, v := range kernelTransmissions(c, func(p int) int { return p + 1 }) {
			n.kernel[k] = v
		}
	}
	return n
}

// connNotes adds the notes of lab connection id: its transmissions named,
// the records while its FIN waits behind data, and the segments its link
// lost, told on the next packet of the connection.
func (r *labRun) connNotes(id int, n *packetNotes) {
	recs := r.connRecs(id)
	var lb, pb seqBase
	if c := r.convOfRecs(recs); c != nil {
		lb, pb = c.labBase, c.peerBase
	}
	names, covered, held := nameTransmissions(r.recs, recs, r.frameOfRec, lb)
	for k, v := range names {
		n.named[k] = v
	}
	for k, v := range held {
		n.heldOf[k] = v
	}
	type lostRec struct {
		at   time.Duration
		what string
	}
	var lost []lostRec
	finSent := false
	for _, ri := range recs {
		rec := &r.recs[ri]
		if rec.Sent && rec.Seg.Flags&tcpstate.FIN != 0 {
			finSent = true
		}
		if !finSent && (rec.State == tcpstate.FinWait1 || rec.State == tcpstate.Closing || rec.State == tcpstate.LastAck) {
			n.finQueued[ri] = true
		}
		if p, ok := r.recPkt[ri]; ok {
			for _, l := range lost {
				n.before[p] = append(n.before[p], fmt.Sprintf("%s before this segment, %s", fmtMs(rec.At-l.at), l.what))
			}
			lost = nil
			continue
		}
		if !rec.Sent || onWire(rec) || covered[ri] || (rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0) {
			continue
		}
		lost = append(lost, lostRec{rec.At, fmt.Sprintf("the lab's %s was %s and never reached the wire",
			wireLabel(uint8(rec.Seg.Flags), uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), rec.Seg.Len, rec.Seg.Window, lb, pb), lostWhy(rec.Note))})
	}
}

// commentSegment comments packet i, the j-th segment of conversation c:
// the conversation's note on its first packet, each side's ISS once, the
// lab's state, the kernel's, the transmissions' names and the lab's
// losses before it.
func (r *labRun) commentSegment(i int, c *conv, j int, told map[[2]int]bool, n *packetNotes) {
	p := r.pkts[i]
	s, kv := c.segs[j], c.kernel[j]
	if j == 0 {
		how := "the kernel's state is derived from the segments in capture order (on a kernel segment, the state it sent it in; on a lab segment, " +
			"the state it left the kernel in), not sampled, so a close() whose FIN is still queued shows only when that FIN is sent"
		if r.kernelHow != "" {
			how = r.kernelHow
		}
		p.Comment(fmt.Sprintf("connection lab %v ↔ kernel %v: sequence numbers in these comments are relative, as Wireshark shows them; %s; "+
			"the lab's state is its own record: on a lab segment, the state it sent it in; on a kernel segment, the state after it processed it, "+
			"which can come after the lab's next segment left", c.lab, c.peer, how))
	}
	// The ISS, once per side and connection: on the side's first segment,
	// which is its SYN when the capture holds it.
	side := [2]int{c.id, 0}
	if s.fromLab {
		side[1] = 1
	}
	if !told[side] {
		told[side] = true
		p.Comment(issComment(s))
	}
	p.Comment(r.labStateComment(i, s, n))
	k := "kernel " + kv.state
	if kv.note != "" {
		k += ": " + kv.note
	}
	p.Comment(k)
	if ri := r.pktRec[i]; ri >= 0 && n.named[ri] != "" {
		p.Comment(n.named[ri])
	}
	if name := n.kernel[i]; name != "" {
		p.Comment(name)
	}
	if ri := r.pktRec[i]; ri >= 0 {
		for _, x := range r.extra[ri] {
			p.Comment(x)
		}
	}
	for _, l := range n.before[i] {
		p.Comment(l)
	}
	p.Comment(r.stateBlock(i, c, s, kv, n).String())
}

// stateBlock is packet i's machine-readable comment (lab/annotate): who
// sent it, the lab's state and TCB as labStateComment tells them, with
// sequence numbers relative as in the comments, and the kernel's state.
func (r *labRun) stateBlock(i int, c *conv, s wseg, kv kview, n *packetNotes) annotate.Block {
	side := "kernel"
	if s.fromLab {
		side = "lab"
	}
	b := annotate.Block{}.Str(annotate.Side, side).Uint(annotate.Conn, uint64(c.id))
	ri := r.pktRec[i]
	if ri >= 0 {
		rec := &r.recs[ri]
		st, t := rec.State, rec.TCB
		if h, ok := n.heldOf[ri]; ok {
			st, t = r.recs[h].State, r.recs[h].TCB
		}
		if rec.Conn == 0 {
			st = tcpstate.Closed
		}
		b = b.Str(annotate.LabState, st.String())
		if rec.Conn != 0 && st != tcpstate.Closed && st != tcpstate.Listen {
			if c.labBase.set {
				b = b.Uint(annotate.SndUna, uint64(uint32(t.SndUna)-c.labBase.v)).Uint(annotate.SndNxt, uint64(uint32(t.SndNxt)-c.labBase.v))
			}
			if st != tcpstate.SynSent && c.peerBase.set {
				b = b.Uint(annotate.RcvNxt, uint64(uint32(t.RcvNxt)-c.peerBase.v))
			}
			b = b.Uint(annotate.SndWnd, uint64(t.SndWnd)).Uint(annotate.RcvWnd, uint64(t.RcvWnd)).
				Uint(annotate.Cwnd, uint64(t.Cwnd)).Uint(annotate.Ssthresh, uint64(t.Ssthresh))
		}
	}
	b = b.Str(annotate.KernelState, kv.state)
	switch {
	case ri >= 0 && n.named[ri] != "":
		b = b.Str(annotate.Note, n.named[ri])
	case n.kernel[i] != "":
		b = b.Str(annotate.Note, n.kernel[i])
	case ri >= 0 && r.recs[ri].Note != "" && r.recs[ri].Note != "no TCB":
		b = b.Str(annotate.Note, r.recs[ri].Note)
	case ri < 0:
		b = b.Str(annotate.Note, "no driver record")
	}
	return b
}

// issComment tells a side's ISS on its first segment of a connection.
func issComment(s wseg) string {
	who := "kernel"
	if s.fromLab {
		who = "lab"
	}
	switch {
	case s.has(wSYN) && s.fromLab:
		return fmt.Sprintf("lab ISS %d (relative seq 0)", s.seq)
	case s.has(wSYN):
		return fmt.Sprintf("kernel ISS %d (relative seq 0; the lab's IRS)", s.seq)
	}
	return fmt.Sprintf("the %s sent no SYN on this connection in the capture: relative seq 1 is its first sequence number here, %d", who, s.seq)
}

// labStateComment is the lab's side of packet i: its record's state, as
// the engine emitted a segment its link held back; or why it has none.
func (r *labRun) labStateComment(i int, s wseg, n *packetNotes) string {
	ri := r.pktRec[i]
	switch {
	case ri < 0 && s.fromLab:
		return "lab: sent from a lab port, but no driver record matches it"
	case ri < 0:
		return "lab: no driver record: the lab's reader had not handled this segment when the capture stopped"
	}
	rec := &r.recs[ri]
	if h, ok := n.heldOf[ri]; ok {
		// The lab's state as it sent the segment: when the engine emitted
		// it, before the link held it back.
		e := *rec
		e.State, e.Before, e.TCB = r.recs[h].State, r.recs[h].Before, r.recs[h].TCB
		e.Note = fmt.Sprintf("as the engine emitted it; held back on the lab's link and released now, with the lab %s", rec.State)
		rec = &e
	}
	c := r.convs[r.convOf[i]]
	lc := labComment(rec, c.labBase, c.peerBase)
	if n.finQueued[ri] {
		lc += " (the lab has closed; its FIN waits behind data still to send)"
	}
	return lc
}

// lostWhy says why a sent record's segment never reached the wire.
func lostWhy(note string) string {
	switch {
	case strings.HasPrefix(note, "dropped"):
		return "dropped by the lab's simulated loss"
	case strings.HasPrefix(note, "held"):
		return "held back on the lab's link"
	case strings.HasPrefix(note, "lost"):
		return "lost (" + strings.TrimPrefix(note, "lost: ") + ")"
	}
	return note
}

// relTCB renders the lab's TCB with sequence numbers relative to the
// connection's bases: "ESTABLISHED snd.una=1 snd.nxt=101 snd.wnd=65536
// rcv.nxt=1 rcv.wnd=262144 cwnd=4380 ssthresh=1073741824", then
// "ack-delayed" while the ACK of received data waits for its timer and
// "held=nagle" or "held=sws" while the send policy holds data back. rcv.nxt
// is left out before the peer's SYN is known.
func relTCB(t tcpstate.TCB, st tcpstate.State, labBase, peerBase seqBase) string {
	b := make([]byte, 0, 160)
	b = append(b, st.String()...)
	if st == tcpstate.Closed || st == tcpstate.Listen {
		return string(b)
	}
	field := func(name, v string) {
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, '=')
		b = append(b, v...)
	}
	u := func(v uint32) string { return strconv.FormatUint(uint64(v), 10) }
	field("snd.una", labBase.rel(uint32(t.SndUna)))
	field("snd.nxt", labBase.rel(uint32(t.SndNxt)))
	field("snd.wnd", u(t.SndWnd))
	if st != tcpstate.SynSent {
		field("rcv.nxt", peerBase.rel(uint32(t.RcvNxt)))
	}
	field("rcv.wnd", u(t.RcvWnd))
	field("cwnd", u(t.Cwnd))
	field("ssthresh", u(t.Ssthresh))
	if t.SACKed > 0 {
		field("sacked", u(t.SACKed)) // the RFC 6675 scoreboard
	}
	if t.InSACKRecovery {
		b = append(b, " in-SACK-recovery"...)
	}
	if t.TSOK {
		field("ts.recent", u(t.TSRecent))
	}
	if t.PAWSRejected > 0 {
		field("paws.rejected", u(t.PAWSRejected))
	}
	if t.ACKDelayed {
		b = append(b, " ack-delayed"...)
	}
	if t.Held != tcpstate.HoldNone {
		field("held", t.Held.String())
	}
	return string(b)
}

// labComment is a record's comment with relative sequence numbers: the
// lab's state as it sent the segment, or after it processed it.
func labComment(rec *rawtcp.Record, labBase, peerBase seqBase) string {
	var b strings.Builder
	b.WriteString("lab ")
	if rec.Conn == 0 {
		b.WriteString("CLOSED (no TCB for this port: the stack answers as a CLOSED TCP)")
	} else {
		b.WriteString(relTCB(rec.TCB, rec.State, labBase, peerBase))
	}
	if !rec.Sent && rec.Before != rec.State {
		b.WriteString(" (was " + rec.Before.String() + ")")
	}
	if rec.Note != "" && rec.Note != "no TCB" {
		b.WriteString(" [" + rec.Note + "]")
	}
	return b.String()
}

// wireLabel is a ladder label for a captured segment with relative
// sequence numbers: "SYN|ACK seq=0 ack=1 win=65495".
func wireLabel(flags uint8, seq, ack uint32, n int, win uint16, seqB, ackB seqBase) string {
	b := make([]byte, 0, 64)
	if flags == 0 {
		b = append(b, "<none>"...)
	} else {
		b = append(b, tcpstate.Flags(flags).String()...)
	}
	b = append(b, " seq="...)
	b = append(b, seqB.rel(seq)...)
	if flags&wACK != 0 {
		b = append(b, " ack="...)
		b = append(b, ackB.rel(ack)...)
	}
	if n > 0 {
		b = append(b, " len="...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, " win="...)
	b = strconv.AppendUint(b, uint64(win), 10)
	return string(b)
}
