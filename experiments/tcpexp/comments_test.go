package tcpexp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func TestRelativeTCBComment(t *testing.T) {
	lb, pb := seqBase{1000, true}, seqBase{5000, true}
	tests := []struct {
		name string
		rec  rawtcp.Record
		want string
	}{
		{"SYN-SENT has no rcv.nxt yet",
			rawtcp.Record{Conn: 1, Sent: true, State: tcpstate.SynSent, Before: tcpstate.SynSent, TCB: tcpstate.TCB{SndUna: 1000, SndNxt: 1001, RcvWnd: 100}},
			"lab SYN-SENT snd.una=0 snd.nxt=1 snd.wnd=0 rcv.wnd=100 cwnd=0 ssthresh=0"},
		{"received: the state it left, and before",
			rawtcp.Record{Conn: 1, State: tcpstate.Established, Before: tcpstate.SynSent, TCB: tcpstate.TCB{SndUna: 1001, SndNxt: 1001, SndWnd: 65535, RcvNxt: 5001, RcvWnd: 100, Cwnd: 4380, Ssthresh: 9}},
			"lab ESTABLISHED snd.una=1 snd.nxt=1 snd.wnd=65535 rcv.nxt=1 rcv.wnd=100 cwnd=4380 ssthresh=9 (was SYN-SENT)"},
		{"the stack's CLOSED responder",
			rawtcp.Record{Conn: 0, Sent: true, State: tcpstate.Closed, Before: tcpstate.Closed, Note: "no TCB"},
			"lab CLOSED (no TCB for this port: the stack answers as a CLOSED TCP)"},
		{"a note of the link",
			rawtcp.Record{Conn: 1, Sent: true, State: tcpstate.Established, Before: tcpstate.Established, Note: "released by the link", TCB: tcpstate.TCB{SndUna: 1001, SndNxt: 1101, RcvNxt: 5001}},
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

// capRun is a labRun over a small capture, matched and split as stop does.
func capRun(recs []rawtcp.Record, pkts []*capture.Packet) *labRun {
	m := newRecMatcher(recs, testLoop, 61000, 61999)
	m.feed(pkts)
	r := &labRun{pkts: pkts, recs: m.recs, pktRec: m.rec, recPkt: m.recPkt}
	r.convs, r.convOf = conversations(pkts, m.fromLab)
	return r
}

var (
	testLoop   = netip.MustParseAddr("127.0.0.1")
	testLab    = netip.AddrPortFrom(testLoop, 61000)
	testKernel = netip.AddrPortFrom(testLoop, 4000)
)

// labRec and kernelRec are records of connection 1 between testLab
// (ISS 1000) and testKernel, with the lab's TCB after the segment.
func labRec(flags tcpstate.Flags, seq, ack tcpstate.Seq, n int, st tcpstate.State, note string) rawtcp.Record {
	una := tcpstate.Seq(1001)
	if flags&tcpstate.SYN != 0 {
		una = 1000
	}
	return rawtcp.Record{Conn: 1, Sent: true, State: st, Before: st, Note: note, PeerAddr: testLoop,
		TCB: tcpstate.TCB{SndUna: una, SndNxt: segEnd(flags, seq, n), RcvNxt: ack},
		Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: seq, Ack: ack, Flags: flags, Len: n}}
}

func kernelRec(flags tcpstate.Flags, seq, ack tcpstate.Seq, n int, before, st tcpstate.State) rawtcp.Record {
	return rawtcp.Record{Conn: 1, State: st, Before: before, PeerAddr: testLoop,
		TCB: tcpstate.TCB{SndUna: ack, SndNxt: ack, RcvNxt: segEnd(flags, seq, n)},
		Seg: rawtcp.RecSeg{SrcPort: 4000, DstPort: 61000, Seq: seq, Ack: ack, Flags: flags, Len: n}}
}

// segEnd is the sequence number after a segment.
func segEnd(flags tcpstate.Flags, seq tcpstate.Seq, n int) tcpstate.Seq {
	s := tcpstate.Segment{Flags: flags, Payload: make([]byte, n)}
	return seq.Add(s.Len())
}

// Every packet of a small capture is commented: the connection once, each
// side's ISS once, the lab's state relative to the ISSs, the kernel's
// derived state, a retransmission named with the copy the simulated loss
// dropped, and a lost ACK told on the next packet.
func TestCommentsOnASmallCapture(t *testing.T) {
	const syn, ack, psh, fin = tcpstate.SYN, tcpstate.ACK, tcpstate.PSH, tcpstate.FIN
	W := func(flags uint8, seq, a uint32, n int, fromLab bool) *capture.Packet {
		if fromLab {
			return tcpFrame(testLab, testKernel, flags, seq, a, n)
		}
		return tcpFrame(testKernel, testLab, flags, seq, a, n)
	}
	tests := []struct {
		name string
		recs []rawtcp.Record
		pkts []*capture.Packet
		want [][]string // per packet, substrings of its comments in order
	}{
		{"handshake, a dropped data segment resent, a lost ACK",
			[]rawtcp.Record{
				labRec(syn, 1000, 0, 0, tcpstate.SynSent, ""),
				kernelRec(syn|ack, 5000, 1001, 0, tcpstate.SynSent, tcpstate.Established),
				labRec(ack, 1001, 5001, 0, tcpstate.Established, ""),
				labRec(psh|ack, 1001, 5001, 10, tcpstate.Established, "dropped by the link"),
				labRec(psh|ack, 1001, 5001, 10, tcpstate.Established, ""),
				kernelRec(psh|ack, 5001, 1011, 5, tcpstate.Established, tcpstate.Established),
				labRec(ack, 1011, 5006, 0, tcpstate.Established, "dropped by the link"),
				kernelRec(fin|ack, 5006, 1011, 0, tcpstate.Established, tcpstate.CloseWait),
			},
			[]*capture.Packet{
				W(wSYN, 1000, 0, 0, true), W(wSYN|wACK, 5000, 1001, 0, false), W(wACK, 1001, 5001, 0, true),
				W(0x18, 1001, 5001, 10, true), W(0x18, 5001, 1011, 5, false), W(wFIN|wACK, 5006, 1011, 0, false),
			},
			[][]string{
				{"connection lab 127.0.0.1:61000 ↔ kernel 127.0.0.1:4000", "lab ISS 1000 (relative seq 0)", "lab SYN-SENT snd.una=0 snd.nxt=1", "kernel SYN-RECEIVED"},
				{"kernel ISS 5000 (relative seq 0; the lab's IRS)", "lab ESTABLISHED snd.una=1 snd.nxt=1 snd.wnd=0 rcv.nxt=1 rcv.wnd=0 cwnd=0 ssthresh=0 (was SYN-SENT)", "kernel SYN-RECEIVED"},
				{"lab ESTABLISHED", "kernel ESTABLISHED"},
				{"lab ESTABLISHED snd.una=1 snd.nxt=11", "kernel ESTABLISHED",
					"2nd transmission of seq 1–10 by the lab, emitted at +0 ms; the 1st (+0 ms) was dropped by the lab's simulated loss and never reached the wire"},
				{"lab ESTABLISHED", "kernel ESTABLISHED"},
				{"lab CLOSE-WAIT", "kernel FIN-WAIT-1: the kernel's FIN: its application closed",
					"before this segment, the lab's ACK seq=11 ack=6 win=0 was dropped by the lab's simulated loss and never reached the wire"},
			}},
		{"a kernel segment without a record, and a captured segment of no lab connection",
			[]rawtcp.Record{labRec(syn, 1000, 0, 0, tcpstate.SynSent, "")},
			[]*capture.Packet{W(wSYN, 1000, 0, 0, true), W(wRST|wACK, 0, 1001, 0, false), {Data: []byte{1, 2, 3}}},
			[][]string{
				{"lab ISS 1000", "lab SYN-SENT", "kernel CLOSED: no listener on this port: the kernel answers RST"},
				{"the kernel sent no SYN on this connection in the capture: relative seq 1 is its first sequence number here, 0",
					"lab: no driver record: the lab's reader had not handled this segment when the capture stopped", "kernel CLOSED"},
				{"not a TCP segment of the lab's"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := capRun(tt.recs, tt.pkts)
			if n := r.comment(); n != len(tt.pkts) {
				t.Errorf("%d packets commented, want all %d", n, len(tt.pkts))
			}
			for i, p := range tt.pkts {
				at := 0
				for _, w := range tt.want[i] {
					for at < len(p.Comments) && !strings.Contains(p.Comments[at], w) {
						at++
					}
					if at == len(p.Comments) {
						t.Errorf("frame %d lacks %q (in this order); its comments:\n  %s", i+1, w, strings.Join(p.Comments, "\n  "))
						break
					}
				}
			}
		})
	}
}

func TestWireLabelAndLostWhy(t *testing.T) {
	lb, pb := seqBase{1000, true}, seqBase{5000, true}
	tests := []struct{ got, want string }{
		{wireLabel(wSYN|wACK, 5000, 1001, 0, 65495, pb, lb), "SYN|ACK seq=0 ack=1 win=65495"},
		{wireLabel(0x18, 1001, 5001, 100, 512, lb, pb), "PSH|ACK seq=1 ack=1 len=100 win=512"},
		{wireLabel(0, 1001, 0, 0, 0, lb, pb), "<none> seq=1 win=0"},
		{wireLabel(wRST, 7, 0, 0, 0, seqBase{}, pb), "RST seq=7(raw) win=0"},
		{lostWhy("dropped by the link"), "dropped by the lab's simulated loss"},
		{lostWhy("held by the link"), "held back on the lab's link"},
		{lostWhy("lost: no buffer space in the kernel (ENOBUFS)"), "lost (no buffer space in the kernel (ENOBUFS))"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
