package udpdns

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the fixed size of a DNS header.
const HeaderLen = 12

// Header bits used by the reply path.
const (
	flagQR     = 1 << 15
	opcodeMask = 0xf
)

// Head is what the reply path needs from a DNS message — the header and the
// first question — decoded without allocating. QName aliases the message it
// was parsed from, in wire form (length-prefixed labels, root included),
// exactly as it was sent, letter case and all.
type Head struct {
	ID      uint16
	Flags   uint16
	QDCount uint16
	// HasQuestion is true when QDCOUNT is 1 and the question parsed; a
	// reply without exactly one question can match no query.
	HasQuestion   bool
	QName         []byte
	QType, QClass uint16
}

// Response reports the QR bit.
func (h *Head) Response() bool { return h.Flags&flagQR != 0 }

// Opcode is the header's 4-bit opcode.
func (h *Head) Opcode() uint8 { return uint8(h.Flags>>11) & opcodeMask }

// Name is the question's name as text, letter case as sent ("q1.synth.lab."),
// or "" when there is no question.
func (h *Head) Name() string {
	if !h.HasQuestion {
		return ""
	}
	return wireName(h.QName)
}

// ParseHead decodes the header and, when QDCOUNT is 1, the question. It
// never allocates and never panics; a truncated or malformed question is
// ErrMalformed, fewer than 12 bytes ErrShort. Compression pointers are
// refused in the question: at offset 12 there is nothing earlier a valid
// pointer could name.
func ParseHead(b []byte) (Head, error) {
	var h Head
	if len(b) < HeaderLen {
		return h, ErrShort
	}
	h.ID = binary.BigEndian.Uint16(b[0:2])
	h.Flags = binary.BigEndian.Uint16(b[2:4])
	h.QDCount = binary.BigEndian.Uint16(b[4:6])
	if h.QDCount != 1 {
		return h, nil
	}
	off := HeaderLen
	for {
		if off >= len(b) {
			return h, errMalformedName
		}
		l := int(b[off])
		if l&0xc0 != 0 {
			return h, errMalformedLabel
		}
		off += 1 + l
		if off-HeaderLen > 255 {
			return h, errMalformedLong
		}
		if l == 0 {
			break
		}
	}
	if off+4 > len(b) {
		return h, errMalformedQuestion
	}
	h.QName = b[HeaderLen:off:off]
	h.QType = binary.BigEndian.Uint16(b[off:])
	h.QClass = binary.BigEndian.Uint16(b[off+2:])
	h.HasQuestion = true
	return h, nil
}

// Preallocated so the parser never allocates.
var (
	errMalformedName     = fmt.Errorf("%w: question name runs past the end", ErrMalformed)
	errMalformedLabel    = fmt.Errorf("%w: compression pointer or reserved label type in the question", ErrMalformed)
	errMalformedLong     = fmt.Errorf("%w: question name longer than 255 bytes", ErrMalformed)
	errMalformedQuestion = fmt.Errorf("%w: question type and class cut off", ErrMalformed)
)

// equalFold compares two wire-form names ignoring ASCII letter case. Length
// octets are at most 63, below 'A', so folding them is harmless.
func equalFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// equalExact compares two names byte for byte (DNS 0x20: the server must
// echo the case it was sent).
func equalExact(a, b []byte) bool { return string(a) == string(b) }
