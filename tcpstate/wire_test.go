package tcpstate

import (
	"bytes"
	"errors"
	"testing"
)

var (
	srcIP = [4]byte{10, 0, 0, 1}
	dstIP = [4]byte{10, 0, 0, 2}
)

var wireSegments = []Segment{
	{SrcPort: 1, DstPort: 2, Seq: 100, Flags: SYN, Window: 65535},
	{SrcPort: 80, DstPort: 4000, Seq: 100, Ack: 301, Flags: SYN | ACK, Window: 29200,
		Options: Options{MSS: 1460, HasWScale: true, WScale: 7, SACKPermitted: true,
			HasTimestamps: true, TSVal: 0xdeadbeef, TSEcr: 7}},
	{SrcPort: 80, DstPort: 4000, Seq: 0xffffffff, Ack: 1, Flags: PSH | ACK, Window: 1, Payload: []byte("hello, world")},
	{SrcPort: 65535, DstPort: 0, Seq: 7, Ack: 9, Flags: FIN | ACK | URG, Urgent: 3, Payload: []byte{1}},
	{SrcPort: 5, DstPort: 6, Flags: RST, Options: Options{MSS: 536}},
	{SrcPort: 5, DstPort: 6, Flags: ACK, Options: Options{Extra: []byte{30, 4, 1, 2}}}, // unknown kind 30
	// SACK blocks: three beside timestamps, four alone (RFC 2018 §3).
	{SrcPort: 80, DstPort: 4000, Seq: 5, Ack: 1001, Flags: ACK, Window: 500,
		Options: Options{HasTimestamps: true, TSVal: 9, TSEcr: 8, NumSACK: 3,
			SACK: [MaxSACKBlocks]SACKBlock{{3001, 4001}, {1501, 2001}, {0xfffffff0, 10}}}},
	{SrcPort: 80, DstPort: 4000, Seq: 5, Ack: 1001, Flags: ACK, Window: 500,
		Options: Options{NumSACK: 4, SACK: [MaxSACKBlocks]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}},
}

func TestWireRoundTrip(t *testing.T) {
	for _, s := range wireSegments {
		b, err := s.AppendWire(nil, srcIP, dstIP)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != s.WireLen() || s.HeaderLen()%4 != 0 {
			t.Fatalf("%v: encoded %d bytes, WireLen %d", &s, len(b), s.WireLen())
		}
		if !VerifyChecksum(b, srcIP, dstIP) {
			t.Fatalf("%v: bad checksum", &s)
		}
		if VerifyChecksum(b, srcIP, [4]byte{10, 0, 0, 3}) {
			t.Fatalf("%v: checksum ignores the pseudo-header", &s)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		want := s
		want.Options.Extra = nil // decode skips unknown options
		if len(want.Payload) == 0 {
			want.Payload = nil
		}
		if got.String() != want.String() || !sameOptions(got.Options, want.Options) || !bytes.Equal(got.Payload, want.Payload) ||
			got.Urgent != want.Urgent {
			t.Fatalf("round trip:\n got  %v %+v\n want %v %+v", &got, got.Options, &want, want.Options)
		}
	}
}

func TestChecksumKnownValue(t *testing.T) {
	// Header with checksum zero; the stored value then verifies.
	s := Segment{SrcPort: 0x1234, DstPort: 0x5678, Seq: 1, Ack: 2, Flags: ACK, Window: 100}
	b, _ := s.AppendWire(nil, srcIP, dstIP)
	b[16], b[17] = 0, 0
	cs := Checksum(b, srcIP, dstIP)
	b[16], b[17] = byte(cs>>8), byte(cs)
	if Checksum(b, srcIP, dstIP) != 0 {
		t.Fatal("checksum does not verify")
	}
	// Odd-length payload is padded with a zero byte.
	s.Payload = []byte{0xab}
	b, _ = s.AppendWire(nil, srcIP, dstIP)
	if !VerifyChecksum(b, srcIP, dstIP) {
		t.Fatal("odd length")
	}
}

// TestDecodeEveryTruncation cuts every valid encoding at every length: below
// the header length decode must fail cleanly; at or above it, the shorter
// buffer is a valid segment with a shorter payload (TCP has no length field).
func TestDecodeEveryTruncation(t *testing.T) {
	for _, s := range wireSegments {
		b, _ := s.AppendWire(nil, srcIP, dstIP)
		hl := s.HeaderLen()
		for n := 0; n < len(b); n++ {
			got, err := Decode(b[:n])
			if n < hl {
				if err == nil || !errors.Is(err, ErrTruncated) {
					t.Fatalf("%v cut at %d: err %v", &s, n, err)
				}
				continue
			}
			if err != nil || len(got.Payload) != n-hl {
				t.Fatalf("%v cut at %d: payload %d err %v", &s, n, len(got.Payload), err)
			}
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	base, _ := (&Segment{Flags: ACK, Options: Options{MSS: 1460}}).AppendWire(nil, srcIP, dstIP)
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), base...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"data offset below 5", mut(func(b []byte) { b[12] = 4 << 4 }), ErrBadDataOffset},
		{"data offset beyond buffer", mut(func(b []byte) { b[12] = 15 << 4 }), ErrTruncated},
		{"option length zero", mut(func(b []byte) { b[21] = 0 }), ErrBadOption},
		{"option length past header", mut(func(b []byte) { b[21] = 9 }), ErrBadOption},
		{"MSS with wrong length", mut(func(b []byte) { b[21] = 3 }), ErrBadOption},
		{"kind without length byte", mut(func(b []byte) { b[20], b[21], b[22], b[23] = 1, 1, 1, 2 }), ErrBadOption},
		{"SACK without a block", mut(func(b []byte) { b[20], b[21], b[22], b[23] = 5, 2, 1, 1 }), ErrBadOption},
		{"SACK with half a block", mut(func(b []byte) { b[20], b[21], b[22], b[23] = 5, 4, 0, 0 }), ErrBadOption},
		{"empty", nil, ErrTruncated},
	}
	for _, tt := range tests {
		if _, err := Decode(tt.b); !errors.Is(err, tt.want) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestEncodeRejectsOversizedOptions(t *testing.T) {
	s := Segment{Options: Options{MSS: 1, HasTimestamps: true, Extra: make([]byte, 30)}}
	if _, err := s.AppendWire(nil, srcIP, dstIP); !errors.Is(err, ErrOptionsTooLong) {
		t.Fatal(err)
	}
}

func TestFlagsString(t *testing.T) {
	tests := map[Flags]string{0: "0", SYN: "SYN", SYN | ACK: "SYN|ACK", FIN | PSH | ACK: "FIN|PSH|ACK", RST | ACK: "RST|ACK", 0xff: "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"}
	for f, want := range tests {
		if f.String() != want {
			t.Errorf("%08b: %q, want %q", uint8(f), f.String(), want)
		}
	}
}

// Crashes found by fuzzing are kept here as named cases. (None so far; the
// shapes below are the ones that most often break TCP option parsers.)
var decodeRegressions = map[string][]byte{
	"nop run to end of header": append(append(make([]byte, 12), 6<<4, 0x10, 0, 0, 0, 0, 0, 0), 1, 1, 1, 1),
	"option length 1":          append(append(make([]byte, 12), 6<<4, 0x10, 0, 0, 0, 0, 0, 0), 8, 1, 0, 0),
	"timestamps truncated":     append(append(make([]byte, 12), 6<<4, 0x10, 0, 0, 0, 0, 0, 0), 8, 10, 0, 0),
}

func TestDecodeRegressions(t *testing.T) {
	for name, b := range decodeRegressions {
		t.Run(name, func(t *testing.T) { checkDecode(t, b) })
	}
}

// checkDecode is the fuzz property: no panic; if it decodes, re-encoding the
// result decodes to the same fields.
func checkDecode(t *testing.T, b []byte) {
	s, err := Decode(b)
	if err != nil {
		return
	}
	if s.HeaderLen() > HeaderMaxLen {
		t.Fatalf("decoded header %d > 60", s.HeaderLen())
	}
	// The length the header computes: data offset plus payload is the input.
	if hl := int(b[12]>>4) * 4; hl+len(s.Payload) != len(b) {
		t.Fatalf("data offset %d + payload %d != input %d", hl, len(s.Payload), len(b))
	}
	enc, err := s.AppendWire(nil, srcIP, dstIP)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	if len(enc) != s.WireLen() {
		t.Fatalf("encoded %d, WireLen %d", len(enc), s.WireLen())
	}
	s2, err := Decode(enc)
	if err != nil {
		t.Fatalf("decode of re-encoding: %v", err)
	}
	if s2.String() != s.String() || !sameOptions(s2.Options, s.Options) || !bytes.Equal(s2.Payload, s.Payload) {
		t.Fatalf("re-encoding changed the segment:\n %v %+v\n %v %+v", &s, s.Options, &s2, s2.Options)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range wireSegments {
		b, _ := s.AppendWire(nil, srcIP, dstIP)
		f.Add(b)
	}
	for _, b := range decodeRegressions {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Cut the input at every length (TCP has no length field, so every
		// prefix at least a header long is a segment of its own).
		if len(b) > 4096 {
			b = b[:4096]
		}
		for n := 0; n <= len(b); n++ {
			checkDecode(t, b[:n:n])
		}
	})
}

func sameOptions(a, b Options) bool {
	return a.MSS == b.MSS && a.HasWScale == b.HasWScale && a.WScale == b.WScale &&
		a.SACKPermitted == b.SACKPermitted && a.HasTimestamps == b.HasTimestamps &&
		a.TSVal == b.TSVal && a.TSEcr == b.TSEcr && a.NumSACK == b.NumSACK && a.SACK == b.SACK &&
		bytes.Equal(a.Extra, b.Extra)
}
