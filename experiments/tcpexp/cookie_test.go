package tcpexp

import "testing"

func TestCookieMSSIndex(t *testing.T) {
	tests := []struct {
		name string
		mss  uint16
		want int
	}{
		{"below the table: the smallest entry", 100, 0},
		{"536 exactly", 536, 0},
		{"between 536 and 1300", 1299, 0},
		{"1400 rounds down to 1300", 1400, 1},
		{"1440 exactly (PPPoE)", 1440, 2},
		{"1452 rounds down to 1440", 1452, 2},
		{"1460 exactly", 1460, 3},
		{"above the table: the largest entry", 9000, 3},
	}
	for _, tt := range tests {
		if got := cookieMSSIndex(tt.mss); got != tt.want {
			t.Errorf("%s: cookieMSSIndex(%d) = %d, want %d", tt.name, tt.mss, got, tt.want)
		}
	}
}

// Two cookies of one 4-tuple and minute differ by their ISS difference
// and, in their low 24 bits, by their MSS indexes, even when the hash's
// low bits carry into bit 24.
func TestCookieIndexDelta(t *testing.T) {
	const base = 0x12fffffe // low 24 bits near the carry
	tests := []struct {
		name    string
		a, b    uint32
		issDiff uint32
		want    int
		wantOK  bool
	}{
		{"the same cookie", base, base, 0, 0, true},
		{"1460 against 536: +3", base + 3, base, 0, 3, true},
		{"536 against 1460: -3", base, base + 3, 0, -3, true},
		{"a carry into bit 24 is not the index", 0x13000001, 0x12fffffe, 0, 3, true},
		{"the ISS difference taken out", base + 1000 - 2, base, 1000, -2, true},
		{"an ISS difference that wraps", base - 3, base, 0xfffffffe, -1, true},
		{"the ISS difference left in is no index", base + 1000, base, 0, 1000, false},
		{"another minute: the low bits are another hash", 0x3456789a, 0x12fffffe, 0, 0, false},
		{"4 is no index difference", base + 4, base, 0, 4, false},
	}
	for _, tt := range tests {
		d, ok := cookieIndexDelta(tt.a, tt.b, tt.issDiff)
		if ok != tt.wantOK || (ok && d != tt.want) {
			t.Errorf("%s: cookieIndexDelta(%#x, %#x, %d) = %d, %v; want %d, %v", tt.name, tt.a, tt.b, tt.issDiff, d, ok, tt.want, tt.wantOK)
		}
	}
}

func TestDecodeTSCookie(t *testing.T) {
	tests := []struct {
		name  string
		tsval uint32
		want  tsCookie
		text  string
	}{
		{"wscale 7 and SACK", 0xabcd_0000 | 7 | 1<<4, tsCookie{HasWScale: true, WScale: 7, SACK: true}, "wscale 7, SACK on, ECN off"},
		{"no wscale (0xf), no SACK", 0x1000_0000 | 0xf, tsCookie{}, "no wscale, SACK off, ECN off"},
		{"wscale 0 is a wscale", 0x40, tsCookie{HasWScale: true}, "wscale 0, SACK off, ECN off"},
		{"ECN", 0x2f, tsCookie{ECN: true}, "no wscale, SACK off, ECN on"},
		{"bits above the sixth are the clock's", 0xffff_ffc0 | 3, tsCookie{HasWScale: true, WScale: 3}, "wscale 3, SACK off, ECN off"},
	}
	for _, tt := range tests {
		got := decodeTSCookie(tt.tsval)
		if got != tt.want || got.String() != tt.text {
			t.Errorf("%s: decodeTSCookie(%#x) = %+v %q, want %+v %q", tt.name, tt.tsval, got, got, tt.want, tt.text)
		}
	}
}

func TestTCPIOptions(t *testing.T) {
	tests := []struct {
		o    uint8
		want string
	}{
		{0, "none"},
		{tcpiOptTimestamps | tcpiOptSACK | tcpiOptWScale, "timestamps, SACK, wscale"},
		{8, "ECN"},
	}
	for _, tt := range tests {
		if got := tcpiOptions(tt.o); got != tt.want {
			t.Errorf("tcpiOptions(%#x) = %q, want %q", tt.o, got, tt.want)
		}
	}
}

// Whatever the clock bits, the low 6 bits decode to options that encode
// back to them.
func FuzzDecodeTSCookie(f *testing.F) {
	for _, v := range []uint32{0, 0xf, 0x17, 0x3f, 0xffffffc3} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, tsval uint32) {
		o := decodeTSCookie(tsval)
		enc := uint32(0xf)
		if o.HasWScale {
			enc = uint32(o.WScale)
		}
		if o.SACK {
			enc |= 1 << 4
		}
		if o.ECN {
			enc |= 1 << 5
		}
		if enc != tsval&(1<<tsCookieBits-1) {
			t.Fatalf("decodeTSCookie(%#x) = %+v, which encodes to %#x", tsval, o, enc)
		}
	})
}
