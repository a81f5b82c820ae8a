package capture

import (
	"net/netip"
	"testing"
)

func TestTCPStreamsReassemble(t *testing.T) {
	var wrapISN uint32 = 0xffff_fffa // the stream wraps past 2^32 after 5 bytes
	tests := []struct {
		name string
		pkts []*Packet
		want string
	}{
		{"in order", []*Packet{
			pkt(tcpFrame(t, 1000, 80, 99, true, "")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "hello ")),
			pkt(tcpFrame(t, 1000, 80, 106, false, "world")),
		}, "hello world"},
		{"reordered and duplicated", []*Packet{
			pkt(tcpFrame(t, 1000, 80, 99, true, "")),
			pkt(tcpFrame(t, 1000, 80, 106, false, "world")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "hello ")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "hello ")),
		}, "hello world"},
		{"overlapping retransmission", []*Packet{
			pkt(tcpFrame(t, 1000, 80, 99, true, "")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "hel")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "hello")),
		}, "hello"},
		{"sequence wraps past 2^32", []*Packet{
			pkt(tcpFrame(t, 1000, 80, wrapISN-1, true, "")),
			pkt(tcpFrame(t, 1000, 80, wrapISN, false, "abcdef")),
			pkt(tcpFrame(t, 1000, 80, wrapISN+6, false, "ghij")),
		}, "abcdefghij"},
		{"no SYN seen: first segment is the start", []*Packet{
			pkt(tcpFrame(t, 1000, 80, 5000, false, "mid")),
			pkt(tcpFrame(t, 1000, 80, 5003, false, "stream")),
		}, "midstream"},
		{"gap stops the stream", []*Packet{
			pkt(tcpFrame(t, 1000, 80, 99, true, "")),
			pkt(tcpFrame(t, 1000, 80, 100, false, "ab")),
			pkt(tcpFrame(t, 1000, 80, 110, false, "zz")),
		}, "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := TCPStreams(tt.pkts)
			if len(ss) != 1 {
				t.Fatalf("%d streams, want 1", len(ss))
			}
			s := ss[0]
			if string(s.Data) != tt.want {
				t.Errorf("data %q, want %q", s.Data, tt.want)
			}
			if s.Src != netip.MustParseAddrPort("127.0.0.1:1000") || s.Frames != len(tt.pkts) {
				t.Errorf("src %v frames %d", s.Src, s.Frames)
			}
			for off := range s.Data {
				if s.PacketAt(off) == nil {
					t.Errorf("byte %d has no packet", off)
				}
			}
			if s.PacketAt(len(s.Data)) != nil {
				t.Errorf("PacketAt past the end returned a packet")
			}
		})
	}
}
