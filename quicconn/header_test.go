package quicconn

import (
	"encoding/hex"
	"reflect"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseHeadersReadsCleartextConnectionIDs(t *testing.T) {
	short := append([]byte{0x40}, mustHex("0102030405060708")...)
	short = append(short, make([]byte, 30)...)
	// An Initial (token length 0, length 3) coalesced with a 1-RTT packet.
	initial := []byte{0xc0, 0, 0, 0, 1, 4, 0xaa, 0xbb, 0xcc, 0xdd, 2, 0x11, 0x22, 0x00, 0x03, 1, 2, 3}
	coalesced := append(append([]byte{}, initial...), short...)
	for _, tc := range []struct {
		name string
		in   []byte
		want []Header
	}{
		{"short header: 8-byte DCID after the flags", short, []Header{{"1RTT", "0102030405060708", "", len(short)}}},
		{"short header cut before its DCID", short[:5], []Header{{"1RTT", "", "", 5}}},
		{"initial alone", initial, []Header{{"initial", "aabbccdd", "1122", len(initial)}}},
		{"initial with a coalesced 1-RTT packet", coalesced,
			[]Header{{"initial", "aabbccdd", "1122", len(initial)}, {"1RTT", "0102030405060708", "", len(short)}}},
		{"truncated long header does not panic", []byte{0xc0, 0, 0, 0, 1, 20, 1}, []Header{{"initial", "", "", 7}}},
		{"version negotiation takes the rest", []byte{0x80, 0, 0, 0, 0, 1, 9, 1, 8, 0, 0, 0, 1}, []Header{{"version_negotiation", "09", "08", 13}}},
		{"nothing", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseHeaders(tc.in, 8); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
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
