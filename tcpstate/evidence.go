package tcpstate

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

// The evidence behind every tcp/* capture comment, kept apart from the
// experiments so it can be tested on small inputs:
//
//   - recMatcher pairs captured packets with the driver's records and counts
//     how many of the segments the records say were on the wire the capture
//     holds (the capture's completeness, counted at the source);
//   - conversations split the capture into TCP connections and give each
//     direction Wireshark's base for relative sequence numbers;
//   - inferKernel derives the kernel's state beside each segment from the
//     segments themselves, in capture order, so a comment never shows a
//     state the kernel reached only after a later packet;
//   - nameTransmissions names every transmission of a stretch of sequence
//     space, the ones the lab's simulated loss dropped included.

// TCP flag bits as captured (capture.Meta.Flags; the engine's Flags use
// the same bits).
const (
	wFIN = capture.FlagFIN
	wSYN = capture.FlagSYN
	wRST = capture.FlagRST
	wACK = capture.FlagACK
)

func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return a == b || seqLT(a, b) }

// wireKey identifies a segment in both the records and the capture.
type wireKey struct {
	sent         bool
	lport, rport uint16
	seq, ack     uint32
	flags        uint8
	n            int
}

func recKey(rec *Record) wireKey {
	k := wireKey{rec.Sent, rec.Seg.DstPort, rec.Seg.SrcPort, uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), uint8(rec.Seg.Flags) & 0x3f, rec.Seg.Len}
	if rec.Sent {
		k.lport, k.rport = rec.Seg.SrcPort, rec.Seg.DstPort
	}
	return k
}

// onWire reports whether the record's segment crossed the loopback: every
// segment the lab received did (the kernel sent it; a receive hook's drop
// happens after), a sent one unless the link dropped, held or lost it (a
// held segment has a second record when it is released). Records of notes
// ("lab forgot its TCB") are no segments.
func onWire(rec *Record) bool {
	if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 {
		return false
	}
	if !rec.Sent {
		return true
	}
	return !strings.HasPrefix(rec.Note, "dropped") && !strings.HasPrefix(rec.Note, "lost") && !strings.HasPrefix(rec.Note, "held")
}

// recMatcher pairs packets with records by direction, ports, SEQ, ACK,
// flags and length, in order for repeats. It is fed the capture as it
// grows (capture.StopWhen's completeness test) and counts the on-wire
// records of its snapshot that found their packet.
type recMatcher struct {
	recs    []Record
	lab     netip.Addr
	pmin    uint16
	pmax    uint16
	queue   map[wireKey][]int
	onWire  []bool
	want    int   // on-wire records
	got     int   // on-wire records matched
	n       int   // packets fed so far
	rec     []int // per packet fed: the record index, or -1
	recPkt  map[int]int
	missing []string
	extra   int // packets matching no record
}

func newRecMatcher(recs []Record, lab netip.Addr, pmin, pmax uint16) *recMatcher {
	m := &recMatcher{recs: recs, lab: lab, pmin: pmin, pmax: pmax, queue: map[wireKey][]int{}, onWire: make([]bool, len(recs)), recPkt: map[int]int{}}
	for i := range recs {
		rec := &recs[i]
		if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 {
			continue
		}
		// Only on-wire records are queued: a dropped copy must not take
		// the packet of an identical copy that did go out.
		if !onWire(rec) {
			continue
		}
		m.onWire[i] = true
		m.want++
		k := recKey(rec)
		m.queue[k] = append(m.queue[k], i)
	}
	return m
}

// fromLab says whether a captured segment was sent from a lab port.
func (m *recMatcher) fromLab(meta capture.Meta) bool {
	return meta.Src.Addr() == m.lab && meta.Src.Port() >= m.pmin && meta.Src.Port() <= m.pmax
}

// feed matches the packets not yet seen and reports whether every on-wire
// record has its packet.
func (m *recMatcher) feed(pkts []*capture.Packet) bool {
	for ; m.n < len(pkts); m.n++ {
		meta, ok := pkts[m.n].Decode()
		if !ok || meta.Proto != capture.ProtoTCP {
			m.rec = append(m.rec, -1)
			continue
		}
		sent := m.fromLab(meta)
		k := wireKey{sent, meta.Dst.Port(), meta.Src.Port(), meta.Seq, meta.Ack, meta.Flags & 0x3f, len(meta.Payload)}
		if sent {
			k.lport, k.rport = meta.Src.Port(), meta.Dst.Port()
		}
		q := m.queue[k]
		if len(q) == 0 {
			m.rec = append(m.rec, -1)
			m.extra++
			if len(m.missing) < 5 {
				m.missing = append(m.missing, fmt.Sprintf("%v→%v seq=%d ack=%d flags=%#x len=%d", meta.Src, meta.Dst, meta.Seq, meta.Ack, meta.Flags, len(meta.Payload)))
			}
			continue
		}
		m.queue[k] = q[1:]
		m.rec = append(m.rec, q[0])
		m.recPkt[q[0]] = m.n
		m.got++
	}
	return m.got >= m.want
}

// seqBase is Wireshark's base for one direction's relative sequence
// numbers: the SYN's sequence number, or one less than the first
// segment's when the direction begins without a SYN (so that segment
// shows as 1).
type seqBase struct {
	v   uint32
	set bool
}

func (b *seqBase) see(flags uint8, seq uint32) {
	if b.set {
		return
	}
	b.set, b.v = true, seq
	if flags&wSYN == 0 {
		b.v--
	}
}

// rel is x relative to the base, or x itself (marked) without a base.
func (b seqBase) rel(x uint32) string {
	if !b.set {
		return strconv.FormatUint(uint64(x), 10) + "(raw)"
	}
	return strconv.FormatUint(uint64(x-b.v), 10)
}

// conv is one TCP connection in the capture: a lab port and a kernel end,
// from a SYN (or the first segment) to the next SYN that starts over.
type conv struct {
	id        int // index among the capture's conversations
	lab, peer netip.AddrPort
	labBase   seqBase // the lab's direction
	peerBase  seqBase // the kernel's direction
	pkts      []int   // packet indices, capture order
	segs      []wseg
	kernel    []kview
}

// wseg is one captured segment of a conversation.
type wseg struct {
	fromLab  bool
	flags    uint8
	seq, ack uint32
	n        int
	at       time.Time
}

func (s wseg) has(f uint8) bool { return s.flags&f != 0 }

// end is the sequence number after the segment (SYN and FIN count one).
func (s wseg) end() uint32 {
	e := s.seq + uint32(s.n)
	if s.has(wSYN) {
		e++
	}
	if s.has(wFIN) {
		e++
	}
	return e
}

// conversations splits the packets into connections. fromLab says which
// end is the lab's; packets that are not TCP get conv -1.
func conversations(pkts []*capture.Packet, fromLab func(capture.Meta) bool) ([]*conv, []int) {
	type tuple struct{ lab, peer netip.AddrPort }
	cur := map[tuple]*conv{}
	var convs []*conv
	of := make([]int, len(pkts))
	for i, p := range pkts {
		of[i] = -1
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		s := wseg{fromLab: fromLab(m), flags: m.Flags, seq: m.Seq, ack: m.Ack, n: len(m.Payload), at: p.Time}
		t := tuple{m.Src, m.Dst}
		if !s.fromLab {
			t = tuple{m.Dst, m.Src}
		}
		c := cur[t]
		if c != nil && s.has(wSYN) && !s.has(wACK) {
			b := c.peerBase
			if s.fromLab {
				b = c.labBase
			}
			if b.set && b.v != s.seq { // a new connection on the same ports
				c = nil
			}
		}
		if c == nil {
			c = &conv{id: len(convs), lab: t.lab, peer: t.peer}
			cur[t] = c
			convs = append(convs, c)
		}
		if s.fromLab {
			c.labBase.see(s.flags, s.seq)
		} else {
			c.peerBase.see(s.flags, s.seq)
		}
		c.pkts = append(c.pkts, i)
		c.segs = append(c.segs, s)
		of[i] = c.id
	}
	for _, c := range convs {
		c.kernel = inferKernel(c.segs)
	}
	return convs, of
}

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

// ordinal renders 1st, 2nd, 3rd, 4th…
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// joinAnd joins "a", "b", "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// fmtMs renders a duration in milliseconds, one decimal below 10 ms.
func fmtMs(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if d == 0 {
		return "0 ms"
	}
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// seqSpan names the sequence space a segment occupies, relative to base:
// "seq 1–100", "SYN (seq 0)", "FIN (seq 101)", "seq 1–100 and FIN".
func seqSpan(flags uint8, seq uint32, n int, base seqBase) string {
	var parts []string
	data := seq
	if flags&wSYN != 0 {
		name := "SYN"
		if flags&wACK != 0 {
			name = "SYN,ACK"
		}
		parts = append(parts, name+" (seq "+base.rel(seq)+")")
		data++
	}
	switch {
	case n == 1:
		parts = append(parts, "seq "+base.rel(data))
	case n > 1:
		parts = append(parts, "seq "+base.rel(data)+"–"+base.rel(data+uint32(n)-1))
	}
	if flags&wFIN != 0 {
		if n > 0 {
			parts = append(parts, "FIN")
		} else {
			parts = append(parts, "FIN (seq "+base.rel(data)+")")
		}
	}
	return strings.Join(parts, " and ")
}

// synFin is the part of a segment's flags that names its stretch of
// sequence space: SYN and FIN, and ACK beside a SYN (a SYN,ACK repeats the
// SYN's number in a simultaneous open, and is not a copy of it).
func synFin(f Flags) Flags {
	if f&SYN != 0 {
		return f & (SYN | FIN | ACK)
	}
	return f & FIN
}

// transmission is one emission of a stretch of sequence space by the lab's
// engine, with its fate on the link.
type transmission struct {
	rec      int           // the emission's record
	at       time.Duration // when the engine emitted it
	fate     string        // "wire", "dropped", "held", "lost"
	wireRec  int           // the record of its copy on the wire (emission or release), -1 if none
	released bool          // reached the wire later, released by the link
}

// nameTransmissions names the lab's transmissions of each stretch of
// sequence space of one connection: recs are the connection's records in
// order (indices into all), frame gives the capture frame number (1-based)
// of a record's packet or 0. It returns a comment for the record of each
// copy on the wire that is not the only, plain transmission of its stretch
// (a retransmission, or a copy the link held back), the emissions it
// names, on the wire or not, and for each release by the link the
// emission it released.
func nameTransmissions(all []Record, recs []int, frame func(rec int) int, base seqBase) (names map[int]string, named map[int]bool, heldOf map[int]int) {
	type key struct {
		seq   Seq
		n     int
		flags Flags
	}
	groups := map[key][]*transmission{}
	var order []key
	for _, i := range recs {
		rec := &all[i]
		if !rec.Sent || rec.Note == "injected" || (rec.Seg.Len == 0 && rec.Seg.Flags&(SYN|FIN) == 0) || rec.Seg.Flags&RST != 0 {
			continue
		}
		k := key{rec.Seg.Seq, rec.Seg.Len, synFin(rec.Seg.Flags)}
		g := groups[k]
		if strings.HasPrefix(rec.Note, "released") {
			// A held copy reaches the wire: the first held emission of
			// this stretch not yet released.
			for _, t := range g {
				if t.fate == "held" && t.wireRec < 0 {
					t.wireRec, t.released = i, true
					break
				}
			}
			continue
		}
		t := &transmission{rec: i, at: rec.At, wireRec: -1}
		switch {
		case strings.HasPrefix(rec.Note, "dropped"):
			t.fate = "dropped"
		case strings.HasPrefix(rec.Note, "held"):
			t.fate = "held"
		case strings.HasPrefix(rec.Note, "lost"):
			t.fate = "lost"
		default:
			t.fate, t.wireRec = "wire", i
		}
		if g == nil {
			order = append(order, k)
		}
		groups[k] = append(g, t)
	}
	out := map[int]string{}
	named, heldOf = map[int]bool{}, map[int]int{}
	for _, k := range order {
		for _, t := range groups[k] {
			if t.released {
				heldOf[t.wireRec] = t.rec
			}
		}
		g := groups[k]
		if len(g) < 2 && !g[0].released {
			continue
		}
		for _, t := range g {
			named[t.rec] = true
		}
		span := seqSpan(uint8(k.flags), uint32(k.seq), k.n, base)
		t0 := g[0].at
		for n, t := range g {
			if t.wireRec < 0 {
				continue
			}
			var b strings.Builder
			fmt.Fprintf(&b, "%s transmission of %s by the lab, emitted at +%s", ordinal(n+1), span, fmtMs(t.at-t0))
			if t.released {
				fmt.Fprintf(&b, " in %s, held back on the lab's link and released at +%s", all[t.rec].State, fmtMs(all[t.wireRec].At-t0))
			}
			// The other copies, those of one fate together: "the 1st
			// (+0 ms) and 2nd (+50 ms) were dropped by …".
			var others []string
			fates := map[string][]string{}
			var fateOrder []string
			for m, o := range g {
				if m == n {
					continue
				}
				w := fmt.Sprintf("%s (+%s)", ordinal(m+1), fmtMs(o.at-t0))
				var fate string
				switch {
				case o.fate == "dropped":
					fate = "dropped by the lab's simulated loss and never reached the wire"
				case o.fate == "lost":
					fate = "lost (no buffer space in the kernel) and never reached the wire"
				case o.wireRec < 0:
					fate = "held back on the lab's link and never reached the wire"
				case frame(o.wireRec) > 0 && o.released:
					others = append(others, fmt.Sprintf("the %s was held back on the lab's link and reached the wire in frame %d", w, frame(o.wireRec)))
					continue
				case frame(o.wireRec) > 0:
					others = append(others, fmt.Sprintf("the %s is frame %d", w, frame(o.wireRec)))
					continue
				default:
					fate = "on the wire but not in the capture"
				}
				if fates[fate] == nil {
					fateOrder = append(fateOrder, fate)
				}
				fates[fate] = append(fates[fate], w)
			}
			for _, f := range fateOrder {
				verb := "was"
				if len(fates[f]) > 1 {
					verb = "were"
				}
				others = append(others, "the "+joinAnd(fates[f])+" "+verb+" "+f)
			}
			if len(others) > 0 {
				b.WriteString("; ")
				b.WriteString(strings.Join(others, "; "))
			}
			out[t.wireRec] = b.String()
		}
	}
	return out, named, heldOf
}

// kernelTransmissions names the kernel's retransmissions in one
// conversation: every kernel segment that repeats sequence space the
// kernel already sent, with when and where the earlier copies are.
func kernelTransmissions(c *conv, frameOf func(pkt int) int) map[int]string {
	type key struct {
		seq   uint32
		n     int
		flags uint8
	}
	groups := map[key][]int{} // indices into c.segs
	for i, s := range c.segs {
		if s.fromLab || s.has(wRST) || (s.n == 0 && s.flags&(wSYN|wFIN) == 0) {
			continue
		}
		k := key{s.seq, s.n, uint8(synFin(Flags(s.flags)))}
		groups[k] = append(groups[k], i)
	}
	out := map[int]string{}
	for k, g := range groups {
		if len(g) < 2 {
			continue
		}
		span := seqSpan(k.flags, k.seq, k.n, c.peerBase)
		t0 := c.segs[g[0]].at
		for n, i := range g {
			var others []string
			for m, j := range g {
				if m != n {
					others = append(others, fmt.Sprintf("the %s (+%s) is frame %d", ordinal(m+1), fmtMs(c.segs[j].at.Sub(t0)), frameOf(c.pkts[j])))
				}
			}
			out[c.pkts[i]] = fmt.Sprintf("%s transmission of %s by the kernel, at +%s; %s", ordinal(n+1), span, fmtMs(c.segs[i].at.Sub(t0)), strings.Join(others, "; "))
		}
	}
	return out
}

// relTCB renders the lab's TCB with sequence numbers relative to the
// connection's bases: "ESTABLISHED snd.una=1 snd.nxt=101 snd.wnd=65536
// rcv.nxt=1 rcv.wnd=262144 cwnd=4380 ssthresh=1073741824". rcv.nxt is left
// out before the peer's SYN is known.
func relTCB(t TCB, st State, labBase, peerBase seqBase) string {
	b := make([]byte, 0, 160)
	b = append(b, st.String()...)
	if st == Closed || st == Listen {
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
	if st != SynSent {
		field("rcv.nxt", peerBase.rel(uint32(t.RcvNxt)))
	}
	field("rcv.wnd", u(t.RcvWnd))
	field("cwnd", u(t.Cwnd))
	field("ssthresh", u(t.Ssthresh))
	return string(b)
}

// labComment is a record's comment with relative sequence numbers: the
// lab's state as it sent the segment, or after it processed it.
func labComment(rec *Record, labBase, peerBase seqBase) string {
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
	b = Flags(flags).appendText(b)
	if flags == 0 {
		b = append(b, "<none>"...)
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
