package tcpstate

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// checksumRef is RFC 1071's sum as written: big-endian 16-bit words,
// folded at the end (the checksum before the 64-bit add-with-carry one).
func checksumRef(seg []byte, src, dst [4]byte) uint16 {
	var sum uint64
	sum += uint64(binary.BigEndian.Uint16(src[0:])) + uint64(binary.BigEndian.Uint16(src[2:]))
	sum += uint64(binary.BigEndian.Uint16(dst[0:])) + uint64(binary.BigEndian.Uint16(dst[2:]))
	sum += 6 + uint64(len(seg))
	b := seg
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// The fast checksum equals RFC 1071's on every length up to 300 bytes
// (each tail and unrolled-loop remainder), on all-0xff data (carries on
// every add) and on full-size segments.
func TestChecksumEqualsRFC1071(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	src, dst := [4]byte{127, 0, 0, 1}, [4]byte{127, 255, 255, 254}
	check := func(name string, b []byte) {
		t.Helper()
		if got, want := Checksum(b, src, dst), checksumRef(b, src, dst); got != want {
			t.Fatalf("%s (%d bytes): %#04x, want %#04x", name, len(b), got, want)
		}
	}
	for n := range 300 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		check("random", b)
		for i := range b {
			b[i] = 0xff
		}
		check("all 0xff", b)
	}
	for _, n := range []int{1480, 65495, 65535} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		check("large", b)
	}
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint32(0))
	f.Add([]byte{0xff, 0xff, 0xff}, uint32(0xffffffff), uint32(0x7f000001))
	f.Add(make([]byte, 33), uint32(1), uint32(2))
	f.Fuzz(func(t *testing.T, b []byte, s, d uint32) {
		var src, dst [4]byte
		binary.BigEndian.PutUint32(src[:], s)
		binary.BigEndian.PutUint32(dst[:], d)
		if got, want := Checksum(b, src, dst), checksumRef(b, src, dst); got != want {
			t.Fatalf("%#04x, want %#04x", got, want)
		}
	})
}

// checksumBefore is the checksum the fast one replaced (two 32-bit words
// per round into a 64-bit sum), kept to measure against.
func checksumBefore(seg []byte, src, dst [4]byte) uint16 {
	var sum uint64
	sum += uint64(binary.BigEndian.Uint16(src[0:])) + uint64(binary.BigEndian.Uint16(src[2:]))
	sum += uint64(binary.BigEndian.Uint16(dst[0:])) + uint64(binary.BigEndian.Uint16(dst[2:]))
	sum += 6 + uint64(len(seg))
	b := seg
	for len(b) >= 8 {
		sum += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// The fast checksum against the one it replaced, alternating (-count N
// gives N figures of each): go test -run X -bench ChecksumVsBefore -count 8.
func BenchmarkChecksumVsBefore(b *testing.B) {
	src, dst := [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 1}
	seg := make([]byte, 65495)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	for _, tc := range []struct {
		name string
		f    func([]byte, [4]byte, [4]byte) uint16
	}{{"fast", Checksum}, {"before", checksumBefore}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(seg)))
			b.ReportAllocs()
			for b.Loop() {
				_ = tc.f(seg, src, dst)
			}
		})
	}
}

// forEachSegment calls f with a data segment for every payload length's
// parity, with and without options, and AppendWire's encoding of it.
func forEachSegment(t *testing.T, f func(seg Segment, want []byte)) {
	t.Helper()
	src, dst := [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2}
	for _, n := range []int{0, 1, 2, 3, 7, 31, 1460, 65483} {
		for _, opts := range []Options{{}, {HasTimestamps: true, TSVal: 7, TSEcr: 9}, {MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true}} {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(i*13 + 5)
			}
			seg := Segment{SrcPort: 61000, DstPort: 80, Seq: 12345, Ack: 678, Flags: ACK | PSH, Window: 512, Options: opts, Payload: p}
			want, err := seg.AppendWire(nil, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			f(seg, want)
		}
	}
}

var testSrc, testDst = [4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2}

// The header AppendHeader builds, followed by the payload, is what
// AppendWire builds: same bytes, same checksum, for every payload length's
// parity and with options.
func TestAppendHeaderThenPayloadIsTheWireSegment(t *testing.T) {
	forEachSegment(t, func(seg Segment, want []byte) {
		p, n := seg.Payload, len(seg.Payload)
		h, err := seg.AppendHeader([]byte{0xee}, testSrc, testDst)
		if err != nil {
			t.Fatal(err)
		}
		if got := append(h[1:], p...); string(got) != string(want) || len(seg.Payload) != n {
			t.Fatalf("%d bytes, options %+v: header+payload differs from AppendWire", n, seg.Options)
		}
	})
}

// AppendHeaderOffload leaves in the checksum field what a checksum-offload
// link completes: summing the header (field as stored) and payload, as
// loopback's "hardware" would, gives exactly AppendWire's checksum.
func TestAppendHeaderOffloadCompletesToTheWireChecksum(t *testing.T) {
	forEachSegment(t, func(seg Segment, want []byte) {
		p, n := seg.Payload, len(seg.Payload)
		h, err := seg.AppendHeaderOffload([]byte{0xee}, testSrc, testDst)
		if err != nil {
			t.Fatal(err)
		}
		h = h[1:]
		// The offload: ~(field + header + payload), no pseudo-header.
		completed := checksumFinish(0, addCarry(sum64(h), sum64(p)))
		got := append(append([]byte(nil), h...), p...)
		got[16], got[17] = byte(completed>>8), byte(completed)
		if string(got) != string(want) || len(seg.Payload) != n {
			t.Fatalf("%d bytes, options %+v: completed checksum %#04x, AppendWire's %#02x%02x", n, seg.Options, completed, want[16], want[17])
		}
	})
}
