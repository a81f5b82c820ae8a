package tcpstate

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

// Segments of one connection for inferKernel: the lab's ISS is 1000, the
// kernel's 5000.
func labSeg(flags uint8, seq, ack uint32, n int) wseg {
	return wseg{fromLab: true, flags: flags, seq: seq, ack: ack, n: n}
}

func kernelSeg(flags uint8, seq, ack uint32, n int) wseg {
	return wseg{flags: flags, seq: seq, ack: ack, n: n}
}

// handshake is the lab's active open of a kernel listener.
var handshake = []struct {
	s    wseg
	want string
}{
	{labSeg(wSYN, 1000, 0, 0), kSynReceived},
	{kernelSeg(wSYN|wACK, 5000, 1001, 0), kSynReceived},
	{labSeg(wACK, 1001, 5001, 0), kEstablished},
}

func TestInferKernelStateAtEachSegment(t *testing.T) {
	type step struct {
		s    wseg
		want string
		note string // a substring of the note, when one is expected
	}
	open := func(rest ...step) []step {
		var out []step
		for _, h := range handshake {
			out = append(out, step{h.s, h.want, ""})
		}
		return append(out, rest...)
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"the kernel's ACK of data sent before the lab's FIN is ESTABLISHED, not LAST-ACK (tcp/handshake frame 8)", open(
			step{labSeg(wACK, 1001, 5001, 1), kEstablished, ""},
			step{kernelSeg(wACK, 5001, 1002, 0), kEstablished, ""},
			step{labSeg(wFIN|wACK, 1002, 5001, 0), kCloseWait, ""},
			step{kernelSeg(wFIN|wACK, 5001, 1003, 0), kLastAck, "FIN"},
			step{labSeg(wACK, 1003, 5002, 0), kClosed, "gone"},
		)},
		{"the kernel closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT", open(
			step{kernelSeg(wFIN|wACK, 5001, 1001, 0), kFinWait1, "FIN"},
			step{labSeg(wACK, 1001, 5002, 0), kFinWait2, ""},
			step{labSeg(wFIN|wACK, 1001, 5002, 0), kTimeWait, ""},
			step{kernelSeg(wACK, 5002, 1002, 0), kTimeWait, ""},
		)},
		{"the kernel's data before its FIN is ESTABLISHED, however close its close() (tcp/transfer)", open(
			step{kernelSeg(wACK, 5001, 1001, 100), kEstablished, ""},
			step{kernelSeg(wACK, 5101, 1001, 100), kEstablished, ""},
			step{kernelSeg(wFIN|wACK, 5201, 1001, 50), kFinWait1, "FIN"},
			step{labSeg(wACK, 1001, 5252, 0), kFinWait2, ""},
			step{labSeg(wACK, 1001, 5252, 10), kFinWait2, ""},
			step{labSeg(wFIN|wACK, 1011, 5252, 0), kTimeWait, ""},
		)},
		{"simultaneous open and close: SYN-SENT, SYN-RECEIVED, CLOSING", []step{
			{kernelSeg(wSYN, 5000, 0, 0), kSynSent, ""},
			{labSeg(wSYN, 1000, 0, 0), kSynReceived, ""},
			{kernelSeg(wSYN|wACK, 5000, 1001, 0), kSynReceived, ""},
			{labSeg(wSYN|wACK, 1000, 5001, 0), kEstablished, ""},
			{kernelSeg(wACK, 5001, 1001, 0), kEstablished, ""},
			{kernelSeg(wFIN|wACK, 5001, 1001, 0), kFinWait1, "FIN"},
			{labSeg(wFIN|wACK, 1001, 5001, 0), kClosing, ""},
			{kernelSeg(wACK, 5002, 1002, 0), kClosing, ""},
			{labSeg(wACK, 1002, 5002, 0), kTimeWait, ""},
		}},
		{"a SYN to a port without listener: CLOSED, answered by RST", []step{
			{labSeg(wSYN, 1000, 0, 0), kClosed, "no listener"},
			{kernelSeg(wRST|wACK, 0, 1001, 0), kClosed, "no socket"},
		}},
		{"RSTs: in the window a challenge ACK, outside ignored, at RCV.NXT an abort", open(
			step{labSeg(wRST, 2001, 0, 0), kEstablished, "challenge"},
			step{kernelSeg(wACK, 5001, 1001, 0), kEstablished, "challenge ACK"},
			step{labSeg(wRST, 1001+1<<30, 0, 0), kEstablished, "outside"},
			step{kernelSeg(wACK, 5001, 1001, 5), kEstablished, ""},
			step{labSeg(wRST, 1001, 0, 0), kClosed, "aborts"},
			step{labSeg(wACK, 1001, 5006, 4), kClosed, "no socket"},
			step{kernelSeg(wRST, 5006, 0, 0), kClosed, "no socket"},
		)},
		{"the kernel's abort: its RST|ACK closes it", open(
			step{kernelSeg(wRST|wACK, 5001, 1001, 0), kClosed, "resets"},
		)},
		{"a kernel ACK captured after the lab's FIN that does not cover it was sent before the kernel took the FIN", open(
			step{labSeg(wACK, 1001, 5001, 1), kEstablished, ""},
			step{labSeg(wFIN|wACK, 1002, 5001, 0), kCloseWait, ""},
			step{kernelSeg(wACK, 5001, 1002, 0), kEstablished, "before the kernel processed the lab's FIN"},
			step{kernelSeg(wACK, 5001, 1003, 0), kCloseWait, ""},
		)},
		{"a kernel segment captured after the lab's RST was sent before the kernel took the RST", open(
			step{labSeg(wRST, 1001, 0, 0), kClosed, "aborts"},
			step{kernelSeg(wACK, 5001, 1001, 0), kEstablished, "before the kernel processed the lab's RST"},
		)},
		{"the lab's FIN out of order takes effect when the gap fills", open(
			step{labSeg(wACK, 1101, 5001, 100), kEstablished, ""},
			step{labSeg(wFIN|wACK, 1201, 5001, 0), kEstablished, ""},
			step{labSeg(wACK, 1001, 5001, 100), kCloseWait, ""},
		)},
		{"a capture that starts mid-connection assumes ESTABLISHED and says so", []step{
			{labSeg(wACK, 1001, 5001, 0), kEstablished, "assumed"},
			{kernelSeg(wACK, 5001, 1001, 10), kEstablished, ""},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs := make([]wseg, len(tt.steps))
			for i, s := range tt.steps {
				segs[i] = s.s
			}
			got := inferKernel(segs)
			for i, s := range tt.steps {
				if got[i].state != s.want || (s.note != "" && !strings.Contains(got[i].note, s.note)) {
					t.Errorf("segment %d (lab %v flags %#x seq %d ack %d len %d): kernel %s (%q), want %s (note with %q)",
						i+1, s.s.fromLab, s.s.flags, s.s.seq, s.s.ack, s.s.n, got[i].state, got[i].note, s.want, s.note)
				}
			}
		})
	}
}

func TestSeqBaseIsWiresharks(t *testing.T) {
	tests := []struct {
		name  string
		flags uint8
		seq   uint32
		x     uint32
		want  string
	}{
		{"a SYN is relative 0", wSYN, 1000, 1000, "0"},
		{"data after the SYN", wSYN, 1000, 1101, "101"},
		{"a direction without a SYN starts at relative 1", wRST | wACK, 0, 0, "1"},
		{"across 2^32", wSYN, 0xFFFFFF00, 0x10, "272"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b seqBase
			b.see(tt.flags, tt.seq)
			b.see(wACK, tt.seq+999) // only the first segment sets it
			if got := b.rel(tt.x); got != tt.want {
				t.Errorf("rel(%d) = %s, want %s", tt.x, got, tt.want)
			}
		})
	}
	if got := (seqBase{}).rel(7); got != "7(raw)" {
		t.Errorf("without a base rel = %q, want the raw number marked", got)
	}
}

func TestRelativeTCBComment(t *testing.T) {
	lb, pb := seqBase{1000, true}, seqBase{5000, true}
	tests := []struct {
		name string
		rec  Record
		want string
	}{
		{"SYN-SENT has no rcv.nxt yet",
			Record{Conn: 1, Sent: true, State: SynSent, Before: SynSent, TCB: TCB{SndUna: 1000, SndNxt: 1001, RcvWnd: 100}},
			"lab SYN-SENT snd.una=0 snd.nxt=1 snd.wnd=0 rcv.wnd=100 cwnd=0 ssthresh=0"},
		{"received: the state it left, and before",
			Record{Conn: 1, State: Established, Before: SynSent, TCB: TCB{SndUna: 1001, SndNxt: 1001, SndWnd: 65535, RcvNxt: 5001, RcvWnd: 100, Cwnd: 4380, Ssthresh: 9}},
			"lab ESTABLISHED snd.una=1 snd.nxt=1 snd.wnd=65535 rcv.nxt=1 rcv.wnd=100 cwnd=4380 ssthresh=9 (was SYN-SENT)"},
		{"the stack's CLOSED responder",
			Record{Conn: 0, Sent: true, State: Closed, Before: Closed, Note: "no TCB"},
			"lab CLOSED (no TCB for this port: the stack answers as a CLOSED TCP)"},
		{"a note of the link",
			Record{Conn: 1, Sent: true, State: Established, Before: Established, Note: "released by the link", TCB: TCB{SndUna: 1001, SndNxt: 1101, RcvNxt: 5001}},
			"lab ESTABLISHED snd.una=1 snd.nxt=101 snd.wnd=0 rcv.nxt=1 rcv.wnd=0 cwnd=0 ssthresh=0 [released by the link]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := labComment(&tt.rec, lb, pb); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func sentData(conn int, at time.Duration, seq Seq, n int, note string) Record {
	return Record{At: at, Conn: conn, Sent: true, State: Established, Before: Established, Note: note,
		Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: seq, Ack: 5001, Flags: ACK | PSH, Len: n}}
}

func TestNameTransmissions(t *testing.T) {
	ms := time.Millisecond
	base := seqBase{1000, true}
	tests := []struct {
		name   string
		recs   []Record
		frames map[int]int // record → frame
		want   map[int]string
		named  []int
		held   map[int]int // release → emission
	}{
		{"RTO: the 3rd transmission names the two the simulated loss dropped",
			[]Record{
				sentData(1, 10*ms, 1001, 100, "dropped by the link"),
				sentData(1, 60*ms, 1001, 100, "dropped by the link"),
				sentData(1, 160*ms, 1001, 100, ""),
			},
			map[int]int{2: 4},
			map[int]string{2: "3rd transmission of seq 1–100 by the lab, emitted at +150 ms; the 1st (+0 ms) and 2nd (+50 ms) were dropped by the lab's simulated loss and never reached the wire"},
			[]int{0, 1, 2}, nil},
		{"fast retransmit: the held original and the retransmission name each other",
			[]Record{
				sentData(1, 0, 1001, 1000, "held by the link"),
				sentData(1, 100*time.Microsecond, 2001, 1000, ""),
				sentData(1, 400*time.Microsecond, 1001, 1000, ""),
				sentData(1, 600*time.Microsecond, 1001, 1000, "released late by the link"),
			},
			map[int]int{1: 15, 2: 25, 3: 27},
			map[int]string{
				2: "2nd transmission of seq 1–1000 by the lab, emitted at +0.4 ms; the 1st (+0 ms) was held back on the lab's link and reached the wire in frame 27",
				3: "1st transmission of seq 1–1000 by the lab, emitted at +0 ms in ESTABLISHED, held back on the lab's link and released at +0.6 ms; the 2nd (+0.4 ms) is frame 25",
			},
			[]int{0, 2}, map[int]int{3: 0}},
		{"a segment sent once is not named",
			[]Record{sentData(1, 0, 1001, 100, "")},
			map[int]int{0: 4}, map[int]string{}, nil, nil},
		{"persist probes of one byte",
			[]Record{sentData(1, 0, 1001, 1, ""), sentData(1, 400*ms, 1001, 1, "")},
			map[int]int{0: 15, 1: 17},
			map[int]string{
				0: "1st transmission of seq 1 by the lab, emitted at +0 ms; the 2nd (+400 ms) is frame 17",
				1: "2nd transmission of seq 1 by the lab, emitted at +400 ms; the 1st (+0 ms) is frame 15",
			},
			[]int{0, 1}, nil},
		{"a held SYN released later, its retransmission dropped",
			[]Record{
				{At: 0, Conn: 1, Sent: true, State: SynSent, Note: "held by the link", Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: SYN}},
				{At: 300 * ms, Conn: 1, Sent: true, State: SynSent, Note: "dropped by the link", Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: SYN}},
				{At: 310 * ms, Conn: 1, Sent: true, State: SynReceived, Note: "released by the link", Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: SYN}},
				{At: 310 * ms, Conn: 1, Sent: true, State: SynReceived, Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: SYN | ACK}},
			},
			map[int]int{2: 2, 3: 4},
			map[int]string{2: "1st transmission of SYN (seq 0) by the lab, emitted at +0 ms in SYN-SENT, held back on the lab's link and released at +310 ms; the 2nd (+300 ms) was dropped by the lab's simulated loss and never reached the wire"},
			[]int{0, 1}, map[int]int{2: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := make([]int, len(tt.recs))
			for i := range idx {
				idx[i] = i
			}
			got, named, held := nameTransmissions(tt.recs, idx, func(r int) int { return tt.frames[r] }, base)
			for r, w := range tt.want {
				if got[r] != w {
					t.Errorf("record %d:\n got  %q\n want %q", r, got[r], w)
				}
			}
			for r, g := range got {
				if _, ok := tt.want[r]; !ok {
					t.Errorf("record %d named unexpectedly: %q", r, g)
				}
			}
			for _, r := range tt.named {
				if !named[r] {
					t.Errorf("record %d is not among the named emissions %v", r, named)
				}
			}
			if len(held) != len(tt.held) {
				t.Errorf("releases → emissions %v, want %v", held, tt.held)
			}
			for rel, em := range tt.held {
				if held[rel] != em {
					t.Errorf("release %d → emission %d, want %d", rel, held[rel], em)
				}
			}
		})
	}
}

func TestKernelRetransmissionsAreNamed(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := &conv{pkts: []int{7, 8, 9}, peerBase: seqBase{5000, true}, segs: []wseg{
		{flags: wACK, seq: 5001, ack: 1001, n: 100, at: t0},
		{fromLab: true, flags: wACK, seq: 1001, ack: 5101, at: t0.Add(time.Millisecond)},
		{flags: wACK, seq: 5001, ack: 1001, n: 100, at: t0.Add(203 * time.Millisecond)},
	}}
	got := kernelTransmissions(c, func(p int) int { return p + 1 })
	want := map[int]string{
		7: "1st transmission of seq 1–100 by the kernel, at +0 ms; the 2nd (+203 ms) is frame 10",
		9: "2nd transmission of seq 1–100 by the kernel, at +203 ms; the 1st (+0 ms) is frame 8",
	}
	if len(got) != len(want) {
		t.Errorf("named %v, want %v", got, want)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("packet %d:\n got  %q\n want %q", p, got[p], w)
		}
	}
}

// tcpFrame builds a captured Ethernet/IPv4/TCP frame.
func tcpFrame(src, dst netip.AddrPort, flags uint8, seq, ack uint32, n int) *capture.Packet {
	b := make([]byte, 14+20+20+n)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+n))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12], tcp[13] = 5<<4, flags
	return &capture.Packet{Data: b}
}

func TestRecMatcherCountsTheSegmentsOnTheWire(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	lab, kernel := netip.AddrPortFrom(loop, 61000), netip.AddrPortFrom(loop, 4000)
	recs := []Record{
		{Sent: true, Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: SYN}},
		{Seg: RecSeg{SrcPort: 4000, DstPort: 61000, Seq: 5000, Ack: 1001, Flags: SYN | ACK}},
		{Sent: true, Note: "dropped by the link", Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1001, Ack: 5001, Flags: ACK, Len: 10}},
		{Sent: true, Note: "lab forgot its TCB (crash)"}, // a note, no segment
		{Sent: true, Seg: RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1001, Ack: 5001, Flags: ACK, Len: 10}},
	}
	pkts := []*capture.Packet{
		tcpFrame(lab, kernel, wSYN, 1000, 0, 0),
		tcpFrame(kernel, lab, wSYN|wACK, 5000, 1001, 0),
	}
	m := newRecMatcher(recs, loop, 61000, 61999)
	if m.want != 3 {
		t.Fatalf("want %d on-wire segments, expected 3 (the dropped copy and the note are not on the wire)", m.want)
	}
	if m.feed(pkts) || m.got != 2 {
		t.Fatalf("after 2 of 3 packets: complete, got %d", m.got)
	}
	pkts = append(pkts, tcpFrame(lab, kernel, wACK, 1001, 5001, 10), tcpFrame(kernel, lab, wRST, 5001, 0, 0))
	if !m.feed(pkts) || m.got != 3 || m.extra != 1 {
		t.Fatalf("after every packet: got %d of %d, extra %d, want 3 of 3 and 1 extra", m.got, m.want, m.extra)
	}
	if m.rec[2] != 4 || m.rec[3] != -1 {
		t.Errorf("packet → record %v: the data packet is the copy that went out (record 4), the RST has none", m.rec)
	}
}

func TestConversationsSplitOnANewSYN(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	lab, kernel := netip.AddrPortFrom(loop, 61000), netip.AddrPortFrom(loop, 4000)
	pkts := []*capture.Packet{
		tcpFrame(lab, kernel, wSYN, 1000, 0, 0),
		tcpFrame(kernel, lab, wSYN|wACK, 5000, 1001, 0),
		tcpFrame(lab, kernel, wSYN, 1000, 0, 0), // a retransmitted SYN: the same connection
		tcpFrame(lab, kernel, wRST, 1001, 0, 0),
		tcpFrame(lab, kernel, wSYN, 9000, 0, 0), // a new ISS: a new connection
	}
	fromLab := func(m capture.Meta) bool { return m.Src == lab }
	convs, of := conversations(pkts, fromLab)
	if len(convs) != 2 || of[3] != 0 || of[4] != 1 {
		t.Fatalf("%d conversations, packet → conversation %v; want 2, [0 0 0 0 1]", len(convs), of)
	}
	if convs[1].labBase.v != 9000 || convs[0].peerBase.v != 5000 {
		t.Errorf("bases %+v %+v", convs[0], convs[1])
	}
}

func TestPersistBackoffJudgesTheArmedIntervals(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		armed []time.Duration
		ok    bool
	}{
		{"doubling", []time.Duration{200 * ms, 400 * ms, 800 * ms}, true},
		{"doubling up to MaxRTO", []time.Duration{800 * ms, 1600 * ms, 2000 * ms}, true},
		{"held at MaxRTO", []time.Duration{2000 * ms, 2000 * ms, 2000 * ms}, true},
		{"more arms than probes judged", []time.Duration{200 * ms, 400 * ms, 800 * ms, 5 * ms}, true},
		{"no backoff", []time.Duration{200 * ms, 200 * ms, 200 * ms}, false},
		{"too few", []time.Duration{200 * ms, 400 * ms}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, why := persistBackoff(tt.armed, 3, 2*time.Second); ok != tt.ok {
				t.Errorf("persistBackoff(%v) = %v (%s), want %v", tt.armed, ok, why, tt.ok)
			}
		})
	}
}

func TestSeededISSRepeatsWithTheSeed(t *testing.T) {
	draw := func(seed uint64) []Seq {
		iss := seededISS(rand.New(rand.NewPCG(seed, 0)))
		return []Seq{iss(), iss(), iss()}
	}
	a, b, c := draw(42), draw(42), draw(43)
	if a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
		t.Errorf("seed 42 gave %v then %v", a, b)
	}
	if a[0] == c[0] && a[1] == c[1] {
		t.Errorf("seeds 42 and 43 gave the same ISSs %v", a)
	}
}
