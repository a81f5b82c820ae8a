package tcpexp

import (
	"testing"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func TestSeqContinuity(t *testing.T) {
	lab := func(seq tcpstate.Seq, n int) rawtcp.Record {
		return rawtcp.Record{Conn: 1, Sent: true, Seg: rawtcp.RecSeg{Seq: seq, Len: n, Flags: tcpstate.ACK}}
	}
	kernel := func(seq tcpstate.Seq, n int, ack, sndNxt tcpstate.Seq) rawtcp.Record {
		return rawtcp.Record{Conn: 1, Seg: rawtcp.RecSeg{Seq: seq, Len: n, Ack: ack, Flags: tcpstate.ACK}, TCB: tcpstate.TCB{SndNxt: sndNxt}}
	}
	top := tcpstate.Seq(0xffffff00) // a variable: top+1000 wraps
	tests := []struct {
		name string
		recs []rawtcp.Record
		want seqReport
	}{
		{"continuous both ways, the lab's wrap in its 2nd of 3 segments",
			[]rawtcp.Record{lab(top-100, 100), kernel(5001, 10, top, top), lab(top, 1000), kernel(5011, 10, top+1000, top+1000), lab(top+1000, 10)},
			seqReport{dataSegs: 3, wraps: 1, wrapAt: 2}},
		{"a repeat on each side is a gap",
			[]rawtcp.Record{lab(1001, 100), lab(1001, 100), kernel(5001, 10, 1101, 1101), kernel(5001, 10, 1101, 1101)},
			seqReport{dataSegs: 2, gaps: 2}},
		{"an ACK that goes back, and one beyond SND.NXT",
			[]rawtcp.Record{lab(1001, 100), kernel(5001, 0, 1101, 1101), kernel(5001, 0, 1051, 1101), kernel(5001, 0, 1201, 1101)},
			seqReport{dataSegs: 1, badAcks: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seqContinuity(tt.recs, 1)
			got.gapInfo = nil
			if got.dataSegs != tt.want.dataSegs || got.wraps != tt.want.wraps || got.wrapAt != tt.want.wrapAt || got.gaps != tt.want.gaps || got.badAcks != tt.want.badAcks {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
