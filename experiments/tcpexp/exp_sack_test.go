package tcpexp

import (
	"slices"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func TestRetransmissionsCountsResentDataAndSACKedOctets(t *testing.T) {
	data := func(seq tcpstate.Seq, n int, sent bool) rawtcp.Record {
		return rawtcp.Record{Conn: 1, Sent: sent, Seg: rawtcp.RecSeg{Seq: seq, Len: n, Flags: tcpstate.ACK}}
	}
	ack := func(sent bool, blocks ...tcpstate.SACKBlock) rawtcp.Record {
		r := rawtcp.Record{Conn: 1, Sent: sent, Seg: rawtcp.RecSeg{Flags: tcpstate.ACK}}
		for _, b := range blocks {
			r.Seg.SACK[r.Seg.NumSACK] = b
			r.Seg.NumSACK++
		}
		return r
	}
	tests := []struct {
		name   string
		recs   []rawtcp.Record
		sent   bool
		want   rtxStats
		noCapt int // a record index not captured
	}{
		{"the lab resends a hole; the kernel's SACK blocks are counted",
			[]rawtcp.Record{data(1, 100, true), data(101, 100, true), data(201, 100, true),
				ack(false, tcpstate.SACKBlock{Left: 201, Right: 301}), data(101, 100, true), ack(false)},
			true, rtxStats{dataSegs: 4, resentSegs: 1, resentBytes: 100, resent: []tcpstate.Seq{101}, sackSegs: 1}, -1},
		{"a resend of SACKed octets is counted as such",
			[]rawtcp.Record{data(1, 100, false), data(101, 100, false), ack(true, tcpstate.SACKBlock{Left: 101, Right: 201}),
				data(1, 200, false)},
			false, rtxStats{dataSegs: 3, resentSegs: 1, resentBytes: 200, resent: []tcpstate.Seq{1}, sackSegs: 1, resentSACKed: 100}, -1},
		{"SACK blocks not in the capture do not count as on the wire",
			[]rawtcp.Record{data(1, 100, true), ack(false, tcpstate.SACKBlock{Left: 201, Right: 301})},
			true, rtxStats{dataSegs: 1}, 1},
		{"sequence numbers that wrap",
			[]rawtcp.Record{data(0xffffff00, 0x200, true), data(0xffffff00, 0x100, true)},
			true, rtxStats{dataSegs: 2, resentSegs: 1, resentBytes: 0x100, resent: []tcpstate.Seq{0xffffff00}}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := make([]int, len(tt.recs))
			for i := range idx {
				idx[i] = i
			}
			got := retransmissions(tt.recs, idx, tt.sent, func(i int) bool { return i != tt.noCapt })
			if got.dataSegs != tt.want.dataSegs || got.resentSegs != tt.want.resentSegs || got.resentBytes != tt.want.resentBytes ||
				!slices.Equal(got.resent, tt.want.resent) || got.sackSegs != tt.want.sackSegs || got.resentSACKed != tt.want.resentSACKed {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLossHookLosesTheNamedSegmentsOnce(t *testing.T) {
	h := lossHook(tailLoss)
	var lost []int
	seq := tcpstate.Seq(1)
	for n := 1; n <= sackBurst; n++ {
		s := tcpstate.Segment{Seq: seq, Payload: make([]byte, 10)}
		if h(&s, nil) == rawtcp.Drop {
			lost = append(lost, n)
		}
		seq += 10
	}
	// Retransmissions of the lost segments pass.
	for _, n := range lost {
		s := tcpstate.Segment{Seq: 1 + tcpstate.Seq(10*(n-1)), Payload: make([]byte, 10)}
		if h(&s, nil) != rawtcp.Pass {
			t.Errorf("the retransmission of segment %d was lost again", n)
		}
	}
	if !slices.Equal(lost, []int{7, 9}) {
		t.Errorf("lost segments %v, want [7 9]", lost)
	}
}

func TestRecoveryOrderTellsOneRoundTripFromTwo(t *testing.T) {
	data := func(seq tcpstate.Seq, sackRec bool) rawtcp.Record {
		return rawtcp.Record{Sent: true, Seg: rawtcp.RecSeg{Seq: seq, Len: 100, Flags: tcpstate.ACK}, TCB: tcpstate.TCB{InSACKRecovery: sackRec}}
	}
	ack := func(a tcpstate.Seq) rawtcp.Record {
		return rawtcp.Record{Seg: rawtcp.RecSeg{Ack: a, Flags: tcpstate.ACK}}
	}
	tests := []struct {
		name string
		recs []rawtcp.Record
		want recoveryOrder
	}{
		{"SACK: both holes before the ACK of the first",
			[]rawtcp.Record{data(201, false), data(401, false), ack(201), data(201, true), data(401, true), ack(401), ack(1001)},
			recoveryOrder{secondResent: true, secondBeforeAck: true, sackRecovery: true}},
		{"NewReno: the second hole after the partial ACK",
			[]rawtcp.Record{data(201, false), data(401, false), ack(201), data(201, false), ack(401), data(401, false), ack(1001)},
			recoveryOrder{secondResent: true}},
		{"the second hole never resent",
			[]rawtcp.Record{data(201, false), data(401, false), data(201, false), ack(1001)},
			recoveryOrder{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := make([]int, len(tt.recs))
			for i := range idx {
				idx[i] = i
			}
			if got := recoveryOrderOf(tt.recs, idx, 201, 401); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The lab's raw socket can read a kernel segment after the lab has already
// answered later ones (a starved process catching up): "SACKed before" is
// judged in the order the segments crossed the loopback, not in the order
// the lab handled them.
func TestRetransmissionsJudgeSACKedBeforeInWireOrder(t *testing.T) {
	data := func(seq tcpstate.Seq, n int) rawtcp.Record {
		return rawtcp.Record{Conn: 1, Seg: rawtcp.RecSeg{Seq: seq, Len: n, Flags: tcpstate.ACK}}
	}
	sack := rawtcp.Record{Conn: 1, Sent: true, Seg: rawtcp.RecSeg{Flags: tcpstate.ACK, NumSACK: 1}}
	sack.Seg.SACK[0] = tcpstate.SACKBlock{Left: 201, Right: 301}
	// Records as the lab handled them: the kernel's probe of 201 (record 4)
	// after the lab's SACK of it (record 3).
	recs := []rawtcp.Record{data(1, 100), data(101, 100), data(201, 100), sack, data(201, 100)}
	base := time.Unix(0, 0)
	tests := []struct {
		name string
		at   []time.Duration // capture time per record; -1: not captured
		want int             // resent octets SACKed before
	}{
		{"the probe crossed the loopback before the SACK", []time.Duration{0, 1, 2, 9, 5}, 0},
		{"the probe crossed the loopback after the SACK", []time.Duration{0, 1, 2, 5, 9}, 100},
		{"an uncaptured record keeps its place after the one before it", []time.Duration{0, 1, -1, 9, 5}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx := []int{0, 1, 2, 3, 4}
			when := func(i int) (time.Time, bool) {
				if tt.at[i] < 0 {
					return time.Time{}, false
				}
				return base.Add(tt.at[i]), true
			}
			got := retransmissions(recs, wireOrder(idx, when), false, func(i int) bool { return tt.at[i] >= 0 })
			if got.resentSACKed != tt.want || got.resentSegs != 1 {
				t.Errorf("resent %d segment(s), %d SACKed octets; want 1 and %d", got.resentSegs, got.resentSACKed, tt.want)
			}
		})
	}
}
