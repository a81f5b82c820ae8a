package tcpexp

import (
	"net/netip"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

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
