package rawtcp

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/statelab/statelab/tcpstate"
)

// Building and sending one data segment to a kernel listener's port on lo
// (the kernel answers each with a RST the link's filter drops): the whole
// per-segment send cost of the lab's TCP, the kernel's receive included,
// with the checksum offloaded (a packet socket) and summed by the lab (the
// raw socket) side by side.
func BenchmarkLinkSend(b *testing.B) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := netip.MustParseAddrPort(ln.Addr().String()).Port()
	for _, path := range []struct {
		name     string
		software bool
	}{{"offload", false}, {"raw", true}} {
		l, err := OpenLink(LinkConfig{NetNS: netNS(b), SoftwareChecksum: path.software})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		for _, n := range []int{1460, 65483} {
			benchSend(b, l, path.name, port, n)
		}
	}
}

func benchSend(b *testing.B, l *Link, path string, port uint16, n int) {
	seg := tcpstate.Segment{SrcPort: 61000, DstPort: port, Seq: 1, Ack: 1, Flags: tcpstate.ACK, Window: 65535,
		Options: tcpstate.Options{HasTimestamps: true, TSVal: 1, TSEcr: 2}, Payload: make([]byte, n)}
	b.Run(fmt.Sprintf("%s/%d", path, n), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(n))
		for b.Loop() {
			if err := l.Send(&seg, [4]byte{127, 0, 0, 1}); err != nil && err != ErrSegmentLost {
				b.Fatal(err)
			}
		}
	})
}
