package udpdns

import "testing"

// SipHash-2-4 against the reference implementation's vectors: key 00..0f,
// message 00..n-1 for n from 0 to 63 (a selection covering every tail
// length and several blocks).
func TestSipHash24ReferenceVectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31}, {1, 0x74f839c593dc67fd}, {2, 0x0d6c8009d9a94f5a},
		{3, 0x85676696d7fb7e2d}, {4, 0xcf2794e0277187b7}, {5, 0x18765564cd99a68d},
		{6, 0xcbc9466e58fee3ce}, {7, 0xab0200f58b01d137}, {8, 0x93f5f5799a932462},
		{9, 0x9e0082df0ba9e4b0}, {10, 0x7a5dbbc594ddb9f3}, {11, 0xf4b32f46226bada7},
		{12, 0x751e8fbc860ee5fb}, {13, 0x14ea5627c0843d90}, {14, 0xf723ca908e7af2ee},
		{15, 0xa129ca6149be45e5}, {16, 0x3f2acc7f57c29bdb}, {17, 0x699ae9f52cbe4794},
		{18, 0x4bc1b3f0968dd39c}, {19, 0xbb6dc91da77961bd}, {20, 0xbed65cf21aa2ee98},
		{21, 0xd0f2cbb02e3b67c7}, {22, 0x93536795e3a33e88}, {23, 0xa80c038ccd5ccec8},
	}
	for _, tt := range tests {
		if got := sipHash24(&key, msg[:tt.n]); got != tt.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#016x, want %#016x", tt.n, got, tt.want)
		}
	}
}
