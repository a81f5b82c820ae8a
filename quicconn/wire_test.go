package quicconn

import (
	"encoding/hex"
	"net/netip"
	"testing"
)

func TestParseHeaderReadsCleartextConnectionIDs(t *testing.T) {
	short := append([]byte{0x40}, mustHex("0102030405060708")...)
	short = append(short, make([]byte, 30)...)
	// An Initial (token length 0, length 3) coalesced with a 1-RTT packet.
	initial := []byte{0xc0, 0, 0, 0, 1, 4, 0xaa, 0xbb, 0xcc, 0xdd, 2, 0x11, 0x22, 0x00, 0x03, 1, 2, 3}
	coalesced := append(append([]byte{}, initial...), short...)
	for _, tc := range []struct {
		name            string
		in              []byte
		long            bool
		typ, dcid, scid string
		tailLen         int
		tailDCID        string
	}{
		{"short header: 8-byte DCID after the flags", short, false, "1RTT", "0102030405060708", "", 0, ""},
		{"initial alone", initial, true, "initial", "aabbccdd", "1122", 0, ""},
		{"initial with a coalesced 1-RTT packet", coalesced, true, "initial", "aabbccdd", "1122", len(short), "0102030405060708"},
		{"truncated long header does not panic", []byte{0xc0, 0, 0, 0, 1, 20, 1}, true, "initial", "", "", 0, ""},
		{"version negotiation", []byte{0x80, 0, 0, 0, 0, 1, 9, 1, 8}, true, "version_negotiation", "09", "08", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Datagram{}
			parseHeader(d, tc.in, 8)
			if d.Long != tc.long || d.Type != tc.typ || d.DCID != tc.dcid || d.SCID != tc.scid || d.TailLen != tc.tailLen || d.TailDCID != tc.tailDCID {
				t.Errorf("got long=%t type=%s dcid=%s scid=%s tail=%d/%s", d.Long, d.Type, d.DCID, d.SCID, d.TailLen, d.TailDCID)
			}
		})
	}
}

func TestVarintDecodesEveryLength(t *testing.T) {
	for _, tc := range []struct {
		in string
		v  uint64
		n  int
	}{
		{"25", 37, 1},
		{"7bbd", 15293, 2},
		{"9d7f3e7d", 494878333, 4},
		{"c2197c5eff14e88c", 151288809941952652, 8},
		{"7b", 0, 0}, // short
	} {
		v, n := varint(mustHex(tc.in))
		if v != tc.v || n != tc.n {
			t.Errorf("varint(%s) = %d, %d; want %d, %d", tc.in, v, n, tc.v, tc.n)
		}
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// The anti-amplification check can fail: a synthetic exchange where the
// server sends more than 3× what it received from the new 4-tuple before
// validation is caught, and one within the limit passes.
func TestAntiAmplificationCheckCanFail(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:4433")
	peer := netip.MustParseAddrPort("127.0.0.1:50002")
	other := netip.MustParseAddrPort("127.0.0.1:50001")
	in := func(n int) *Datagram { return &Datagram{Src: peer, Dst: srv, Size: n} }
	out := func(n int) *Datagram { return &Datagram{Src: srv, Dst: peer, Size: n} }
	elsewhere := &Datagram{Src: srv, Dst: other, Size: 100000} // the old path does not count
	for _, tc := range []struct {
		name       string
		ds         []*Datagram
		sent, recv int
		ok         bool
	}{
		{"within 3×", []*Datagram{in(1200), out(1200), out(1200), elsewhere, out(1200), in(50), out(150)}, 3750, 1250, true},
		{"exactly 3×", []*Datagram{in(100), out(300)}, 300, 100, true},
		{"over 3× at one moment, even if it catches up later", []*Datagram{in(100), out(301), in(5000)}, 301, 5100, false},
		{"sending before receiving anything", []*Datagram{out(40), in(1200)}, 40, 1200, false},
		{"a burst of full packets to a 1-packet peer", []*Datagram{in(1200), out(1252), out(1252), out(1252)}, 3756, 1200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, recv, _, ok := antiAmplification(tc.ds, peer)
			if sent != tc.sent || recv != tc.recv || ok != tc.ok {
				t.Errorf("got sent %d recv %d ok %t, want %d %d %t", sent, recv, ok, tc.sent, tc.recv, tc.ok)
			}
		})
	}
}
