package quicconn

import (
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
)

// Header is what the cleartext header of one QUIC packet shows: its type,
// its connection IDs and how many bytes of its datagram it occupies. The
// packet number and everything after it are encrypted.
type Header struct {
	Type       string // qlog packet type: initial, 0RTT, handshake, retry, version_negotiation, 1RTT
	DCID, SCID string // hex; SCID for long headers only
	Len        int    // bytes of the datagram this packet occupies
}

// Long reports whether the packet has a long header (handshake, version
// negotiation, retry); false for a 1-RTT short header.
func (h Header) Long() bool { return h.Type != "1RTT" }

// ParseHeaders splits a UDP datagram's payload into its coalesced QUIC
// packets (RFC 9000 §12.2) as far as the cleartext headers allow: a long
// header packet carries its length; a short header packet takes the rest of
// the datagram, and its destination connection ID is cidLen bytes (the
// receiver's choice: the header does not say). A header cut short still
// yields a Header with what could be read.
func ParseHeaders(b []byte, cidLen int) []Header {
	var hs []Header
	for len(b) > 0 {
		if b[0]&0x80 == 0 { // short header: flags, DCID, …
			h := Header{Type: "1RTT", Len: len(b)}
			if len(b) >= 1+cidLen {
				h.DCID = hex.EncodeToString(b[1 : 1+cidLen])
			}
			return append(hs, h)
		}
		h, ok := parseLong(b)
		hs = append(hs, h)
		if !ok {
			return hs
		}
		b = b[h.Len:]
	}
	return hs
}

// parseLong reads the long header packet at the start of b; ok is false
// when the header is cut short or the packet takes the rest of b (version
// negotiation, retry): then nothing follows it.
func parseLong(b []byte) (h Header, ok bool) {
	h.Len = len(b)
	if len(b) < 7 {
		return h, false
	}
	vn := binary.BigEndian.Uint32(b[1:5]) == 0
	typ := (b[0] >> 4) & 3
	if vn {
		h.Type = "version_negotiation"
	} else {
		h.Type = [4]string{"initial", "0RTT", "handshake", "retry"}[typ]
	}
	off := 6 + int(b[5])
	if off > len(b) {
		return h, false
	}
	h.DCID = hex.EncodeToString(b[6:off])
	if off >= len(b) {
		return h, false
	}
	sl := int(b[off])
	off++
	if off+sl > len(b) {
		return h, false
	}
	h.SCID = hex.EncodeToString(b[off : off+sl])
	off += sl
	if vn || typ == 3 { // version negotiation, retry: the rest of the datagram
		return h, false
	}
	if typ == 0 { // initial: token
		tl, n := varint(b[off:])
		if n == 0 || off+n+int(tl) > len(b) {
			return h, false
		}
		off += n + int(tl)
	}
	pl, n := varint(b[off:])
	if n == 0 || off+n+int(pl) > len(b) {
		return h, false
	}
	h.Len = off + n + int(pl)
	return h, true
}

// varint decodes a QUIC variable-length integer; n is 0 when b is short.
func varint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC32C of a datagram's payload, which quic-go's qlog
// logs for long header packets and the packets coalesced with them.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }
