package tcpexp

import (
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func sentData(conn int, at time.Duration, seq tcpstate.Seq, n int, note string) rawtcp.Record {
	return rawtcp.Record{At: at, Conn: conn, Sent: true, State: tcpstate.Established, Before: tcpstate.Established, Note: note,
		Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: seq, Ack: 5001, Flags: tcpstate.ACK | tcpstate.PSH, Len: n}}
}

func TestNameTransmissions(t *testing.T) {
	ms := time.Millisecond
	base := seqBase{1000, true}
	tests := []struct {
		name   string
		recs   []rawtcp.Record
		frames map[int]int // record → frame
		want   map[int]string
		named  []int
		held   map[int]int // release → emission
	}{
		{"RTO: the 3rd transmission names the two the simulated loss dropped",
			[]rawtcp.Record{
				sentData(1, 10*ms, 1001, 100, "dropped by the link"),
				sentData(1, 60*ms, 1001, 100, "dropped by the link"),
				sentData(1, 160*ms, 1001, 100, ""),
			},
			map[int]int{2: 4},
			map[int]string{2: "3rd transmission of seq 1–100 by the lab, emitted at +150 ms; the 1st (+0 ms) and 2nd (+50 ms) were dropped by the lab's simulated loss and never reached the wire"},
			[]int{0, 1, 2}, nil},
		{"fast retransmit: the held original and the retransmission name each other",
			[]rawtcp.Record{
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
			[]rawtcp.Record{sentData(1, 0, 1001, 100, "")},
			map[int]int{0: 4}, map[int]string{}, nil, nil},
		{"persist probes of one byte",
			[]rawtcp.Record{sentData(1, 0, 1001, 1, ""), sentData(1, 400*ms, 1001, 1, "")},
			map[int]int{0: 15, 1: 17},
			map[int]string{
				0: "1st transmission of seq 1 by the lab, emitted at +0 ms; the 2nd (+400 ms) is frame 17",
				1: "2nd transmission of seq 1 by the lab, emitted at +400 ms; the 1st (+0 ms) is frame 15",
			},
			[]int{0, 1}, nil},
		{"a held SYN released later, its retransmission dropped",
			[]rawtcp.Record{
				{At: 0, Conn: 1, Sent: true, State: tcpstate.SynSent, Note: "held by the link", Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: tcpstate.SYN}},
				{At: 300 * ms, Conn: 1, Sent: true, State: tcpstate.SynSent, Note: "dropped by the link", Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: tcpstate.SYN}},
				{At: 310 * ms, Conn: 1, Sent: true, State: tcpstate.SynReceived, Note: "released by the link", Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: tcpstate.SYN}},
				{At: 310 * ms, Conn: 1, Sent: true, State: tcpstate.SynReceived, Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: tcpstate.SYN | tcpstate.ACK}},
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
