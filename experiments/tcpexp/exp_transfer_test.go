package tcpexp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate"
)

func TestSeqContinuity(t *testing.T) {
	lab := func(seq tcpstate.Seq, n int) wireSeg {
		return wireSeg{fromLab: true, seq: seq, len: n, flags: capture.FlagACK}
	}
	kernel := func(seq tcpstate.Seq, n int, ack, _ tcpstate.Seq) wireSeg {
		return wireSeg{seq: seq, len: n, ack: ack, flags: capture.FlagACK}
	}
	syn := wireSeg{fromLab: true, seq: 1000, flags: capture.FlagSYN}
	top := tcpstate.Seq(0xffffff00) // a variable: top+1000 wraps
	tests := []struct {
		name string
		segs []wireSeg
		want seqReport
	}{
		{"continuous both ways, the lab's wrap in its 2nd of 3 segments",
			[]wireSeg{lab(top-100, 100), kernel(5001, 10, top, top), lab(top, 1000), kernel(5011, 10, top+1000, top+1000), lab(top+1000, 10)},
			seqReport{dataSegs: 3, wraps: 1, wrapAt: 2}},
		{"a repeat on each side is a retransmission, not a gap",
			[]wireSeg{lab(1001, 100), lab(1001, 100), kernel(5001, 10, 1101, 1101), kernel(5001, 10, 1101, 1101)},
			seqReport{dataSegs: 2, resent: 2}},
		{"a retransmission of the last segment, then new data where the stream left off",
			[]wireSeg{syn, kernel(5001, 10, 1001, 1001), kernel(5011, 10, 1001, 1001), kernel(5011, 10, 1001, 1001), kernel(5021, 10, 1001, 1001)},
			seqReport{resent: 1}},
		{"a resend of the segment that crosses 2^32 is one wrap",
			[]wireSeg{lab(top-100, 100), lab(top, 1000), lab(top, 1000), lab(top+1000, 10)},
			seqReport{dataSegs: 4, wraps: 1, wrapAt: 2, resent: 1}},
		{"a skip forward on each side is a gap",
			[]wireSeg{lab(1001, 100), lab(1201, 100), kernel(5001, 10, 1301, 1301), kernel(5021, 10, 1301, 1301)},
			seqReport{dataSegs: 2, gaps: 2}},
		{"the SYN counts one: its ACK is within what the lab sent",
			[]wireSeg{syn, kernel(5000, 0, 1001, 0)},
			seqReport{}},
		{"an ACK before anything of the lab's is on the wire",
			[]wireSeg{kernel(5000, 0, 1001, 0), syn},
			seqReport{badAcks: 1}},
		{"an ACK that goes back, and one beyond what the lab sent",
			[]wireSeg{lab(1001, 100), kernel(5001, 0, 1101, 1101), kernel(5001, 0, 1051, 1101), kernel(5001, 0, 1201, 1101)},
			seqReport{dataSegs: 1, badAcks: 2}},
		// Seen in a soak with no hogs (tcp/transfer, frames 18 and 21): the
		// kernel's data segment ending at 5101 was made before its pure
		// ACK at 5101 (its sequence numbers say so) but reached the wire
		// 32 µs after it, carrying the ACK number of its making.
		{"a kernel segment made before the one with the newer ACK, captured after it, is stale, not bad",
			[]wireSeg{lab(1001, 100), lab(1101, 100), kernel(5101, 0, 1201, 1201), kernel(5001, 100, 1101, 1101), kernel(5101, 0, 1201, 1201)},
			seqReport{dataSegs: 2, staleAcks: 1}},
		// Seen in a soak with no hogs (tcp/transfer, frames 35 and 36):
		// the kernel's segment after 5011 reached the capture first.
		{"kernel data captured out of the order the kernel made it is neither a gap nor a retransmission",
			[]wireSeg{lab(1001, 100), kernel(5011, 10, 1101, 1101), kernel(5001, 10, 1101, 1101), kernel(5021, 10, 1101, 1101)},
			seqReport{dataSegs: 1}},
		{"a hole in the kernel's data that nothing fills is a gap",
			[]wireSeg{lab(1001, 100), kernel(5001, 10, 1101, 1101), kernel(5031, 10, 1101, 1101), kernel(5011, 10, 1101, 1101)},
			seqReport{dataSegs: 1, gaps: 1}},
		{"a retransmission with an older ACK is bad: it was made after what it repeats",
			[]wireSeg{lab(1001, 100), lab(1101, 100), kernel(5001, 100, 1101, 1101), kernel(5101, 0, 1201, 1201), kernel(5001, 100, 1101, 1101)},
			seqReport{dataSegs: 2, resent: 1, badAcks: 1}},
		{"an older ACK on a segment made no earlier than the newer one's is bad",
			[]wireSeg{lab(1001, 100), lab(1101, 100), kernel(5101, 0, 1201, 1201), kernel(5101, 0, 1151, 1201), kernel(5101, 10, 1101, 1201)},
			seqReport{dataSegs: 2, badAcks: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seqContinuity(tt.segs)
			got.gapInfo, got.ackInfo, got.staleInfo = nil, nil, nil
			if got.dataSegs != tt.want.dataSegs || got.wraps != tt.want.wraps || got.wrapAt != tt.want.wrapAt || got.gaps != tt.want.gaps || got.resent != tt.want.resent || got.badAcks != tt.want.badAcks || got.staleAcks != tt.want.staleAcks {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Two kernel ACKs that reached the capture (or the lab's socket) in the
// other order than the kernel stamped them are read in the kernel's order:
// the check judges the kernel, not the loopback's two CPU queues.
func TestWireSegmentsFollowTheKernelsTimestamps(t *testing.T) {
	lab := netip.MustParseAddrPort("127.0.0.1:40000")
	kernel := netip.MustParseAddrPort("127.0.0.1:5000")
	t0 := time.Unix(1000, 0)
	data := tcpFrame(lab, kernel, capture.FlagACK, 1001, 1, 200)
	ack1 := tcpFrame(kernel, lab, capture.FlagACK, 1, 1101, 0)
	ack2 := tcpFrame(kernel, lab, capture.FlagACK, 1, 1201, 0)
	other := tcpFrame(kernel, netip.MustParseAddrPort("127.0.0.1:40001"), capture.FlagACK, 1, 9999, 0)
	data.Time, ack1.Time, ack2.Time, other.Time = t0, t0.Add(2*time.Microsecond), t0.Add(3*time.Microsecond), t0.Add(time.Microsecond)
	segs := wireSegments([]*capture.Packet{data, ack2, other, ack1}, lab, kernel)
	if len(segs) != 3 {
		t.Fatalf("%d segments of the connection, want 3", len(segs))
	}
	if s := seqContinuity(segs); s.badAcks != 0 {
		t.Errorf("ACKs in timestamp order judged bad: %+v", s)
	}
	if s := seqContinuity([]wireSeg{segs[0], segs[2], segs[1]}); s.badAcks != 1 {
		t.Errorf("ACKs out of order not caught: %+v", s)
	}
}
