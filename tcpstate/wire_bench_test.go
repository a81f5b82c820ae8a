package tcpstate

import (
	"fmt"
	"testing"
)

// The checksum over a full-MSS segment on Ethernet and on lo (the bench's
// MSS): bytes per second is the figure to compare (go test -bench Checksum
// -benchmem).
func BenchmarkChecksum(b *testing.B) {
	src, dst := [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 1}
	for _, n := range []int{20, 1480, 65495} {
		seg := make([]byte, n)
		for i := range seg {
			seg[i] = byte(i * 7)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				_ = Checksum(seg, src, dst)
			}
		})
	}
}

// Building a data segment (header, timestamps, payload copy, checksum) into
// a reused wire buffer, as rawtcp's Link.Send does.
func BenchmarkAppendWire(b *testing.B) {
	src, dst := [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 1}
	for _, n := range []int{1460, 65483} {
		seg := Segment{SrcPort: 61000, DstPort: 80, Seq: 1, Ack: 1, Flags: ACK | PSH, Window: 65535,
			Options: Options{HasTimestamps: true, TSVal: 1, TSEcr: 2}, Payload: make([]byte, n)}
		buf := make([]byte, 0, 1<<17)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				var err error
				if buf, err = seg.AppendWire(buf[:0], src, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
