package capture

import (
	"net/netip"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	lo6 := netip.MustParseAddr("::1")
	tests := []struct {
		name    string
		frame   []byte
		ok      bool
		src     netip.AddrPort
		proto   uint8
		payload string
	}{
		{"ipv4 tcp data segment", tcpFrame(t, 40000, 80, 1000, false, "GET /"), true, netip.AddrPortFrom(lo, 40000), ProtoTCP, "GET /"},
		{"ipv4 tcp syn without payload", tcpFrame(t, 40000, 80, 999, true, ""), true, netip.AddrPortFrom(lo, 40000), ProtoTCP, ""},
		{"ipv6 udp datagram", udp6Frame(t, 5353, 53, "q"), true, netip.AddrPortFrom(lo6, 5353), ProtoUDP, "q"},
		{"empty frame is rejected", nil, false, netip.AddrPort{}, 0, ""},
		{"arp ethertype is rejected", append(make([]byte, 12), 0x08, 0x06, 0, 0), false, netip.AddrPort{}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := DecodeFrame(tt.frame)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if m.Src != tt.src || m.Proto != tt.proto || string(m.Payload) != tt.payload {
				t.Errorf("got src=%v proto=%d payload=%q, want %v %d %q", m.Src, m.Proto, m.Payload, tt.src, tt.proto, tt.payload)
			}
		})
	}
}

// Every prefix of a valid frame decodes to "not ok" or to a payload inside
// the prefix, never a panic.
func TestDecodeFrameCutAtEveryLength(t *testing.T) {
	for _, frame := range [][]byte{tcpFrame(t, 1, 2, 3, false, "hello"), udp6Frame(t, 1, 2, "world")} {
		for n := 0; n < len(frame); n++ {
			if m, ok := DecodeFrame(frame[:n]); ok && len(m.Payload) > n {
				t.Fatalf("prefix %d: payload of %d bytes", n, len(m.Payload))
			}
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(tcpFrame(f, 40000, 80, 1, false, "x"))
	f.Add(udp6Frame(f, 53, 53, "y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ok := DecodeFrame(b)
		if ok && len(m.Payload) > len(b) {
			t.Fatalf("payload longer than frame")
		}
	})
}
