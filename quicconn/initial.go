package quicconn

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Initial and Retry packets built and read by hand (RFC 9000 §17.2.2,
// §17.2.5; RFC 9001 §5): what a lab needs to present a token of its
// choosing — a forged one, or a valid one from another address — from a
// plain UDP socket, and to read what the server answers. The Initial keys
// derive from the client's destination connection ID alone, so anyone can
// build an Initial and open the server's answer to it.

// Errors of the hand-built packets.
var (
	ErrNotRetry   = errors.New("quicconn: not a QUIC v1 Retry packet")
	ErrRetryTag   = errors.New("quicconn: Retry integrity tag does not verify")
	ErrNotInitial = errors.New("quicconn: not a QUIC v1 Initial packet")
	ErrOpen       = errors.New("quicconn: Initial packet does not decrypt")
	ErrFrame      = errors.New("quicconn: malformed frame")
)

// quicV1 is QUIC version 1.
const quicV1 = 0x00000001

// MinInitialSize is the least UDP payload of a client's Initial datagram
// (RFC 9000 §14.1); quic-go drops smaller ones.
const MinInitialSize = 1200

var (
	retryKeyV1   = []byte{0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e}
	retryNonceV1 = []byte{0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb}
)

// newInitialKeys derives the Initial keys of the client ("client in") or
// the server ("server in") from the client's first destination
// connection ID (RFC 9001 §5.2).
func newInitialKeys(dcid []byte, label string) (*packetKeys, error) {
	initial, err := hkdf.Extract(sha256.New, dcid, initialSaltV1)
	if err != nil {
		return nil, err
	}
	secret, err := hkdfExpandLabel(sha256.New, initial, label, nil, 32)
	if err != nil {
		return nil, err
	}
	return keysFrom(sha256.New, secret, 16)
}

func (k *packetKeys) nonce(pn uint32) []byte {
	n := bytes.Clone(k.iv)
	for i := 0; i < 4; i++ {
		n[len(n)-1-i] ^= byte(pn >> (8 * i))
	}
	return n
}

// mask is the header protection mask for a packet whose packet number
// starts at pnOff.
func (k *packetKeys) mask(pkt []byte, pnOff int) ([]byte, bool) {
	if pnOff+4+16 > len(pkt) {
		return nil, false
	}
	m := make([]byte, 16)
	k.hp.Encrypt(m, pkt[pnOff+4:pnOff+4+16])
	return m, true
}

// InitialSpec is a client Initial to build by hand.
type InitialSpec struct {
	DCID, SCID []byte // at least 8 bytes of DCID for a server to answer
	Token      []byte // nil: none
	PN         uint32
	// Frames is the plaintext payload; nil: a PING. The packet is padded
	// to MinInitialSize either way.
	Frames []byte
}

// BuildInitial returns a protected client Initial datagram of at least
// MinInitialSize bytes: long header, the token as given, a 4-byte packet
// number and the frames padded with PADDING.
func BuildInitial(s InitialSpec) ([]byte, error) {
	if len(s.DCID) > 20 || len(s.SCID) > 20 {
		return nil, fmt.Errorf("%w: connection IDs are at most 20 bytes", ErrNotInitial)
	}
	keys, err := newInitialKeys(s.DCID, "client in")
	if err != nil {
		return nil, err
	}
	frames := s.Frames
	if frames == nil {
		frames = []byte{0x01} // PING
	}
	const pnLen = 4
	hdr := []byte{0xc0 | (pnLen - 1)}
	hdr = binary.BigEndian.AppendUint32(hdr, quicV1)
	hdr = append(append(hdr, byte(len(s.DCID))), s.DCID...)
	hdr = append(append(hdr, byte(len(s.SCID))), s.SCID...)
	hdr = appendVarint(hdr, uint64(len(s.Token)))
	hdr = append(hdr, s.Token...)
	// The whole datagram: header, 2-byte length, packet number, payload, tag.
	pad := MinInitialSize - (len(hdr) + 2 + pnLen + len(frames) + 16)
	payload := append(bytes.Clone(frames), make([]byte, max(pad, 0))...)
	length := pnLen + len(payload) + 16
	if length >= 1<<14 {
		return nil, fmt.Errorf("%w: %d bytes is too long", ErrNotInitial, length)
	}
	hdr = append(hdr, 0x40|byte(length>>8), byte(length))
	pnOff := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, s.PN)
	pkt := keys.aead.Seal(hdr, keys.nonce(s.PN), payload, hdr)
	m, ok := keys.mask(pkt, pnOff)
	if !ok {
		return nil, fmt.Errorf("%w: too short to protect", ErrNotInitial)
	}
	pkt[0] ^= m[0] & 0x0f
	for i := 0; i < pnLen; i++ {
		pkt[pnOff+i] ^= m[1+i]
	}
	return pkt, nil
}

// appendVarint appends v as a QUIC variable-length integer.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, 0x80<<24|uint32(v))
	}
	return binary.BigEndian.AppendUint64(b, 0xc0<<56|v)
}

// Retry is a Retry packet as a client reads it.
type Retry struct {
	DCID, SCID []byte
	Token      []byte
	Tag        [16]byte
}

// ParseRetry reads a Retry datagram and verifies its integrity tag
// against the destination connection ID of the Initial it answers (RFC
// 9001 §5.8): only the server that saw that Initial can have made it.
func ParseRetry(b, odcid []byte) (Retry, error) {
	var r Retry
	if len(b) < 7 || b[0]&0xf0 != 0xf0 || binary.BigEndian.Uint32(b[1:5]) != quicV1 {
		return r, ErrNotRetry
	}
	off := 5
	var ok bool
	if r.DCID, off, ok = cid(b, off); !ok {
		return r, fmt.Errorf("%w: destination connection ID cut short", ErrNotRetry)
	}
	if r.SCID, off, ok = cid(b, off); !ok {
		return r, fmt.Errorf("%w: source connection ID cut short", ErrNotRetry)
	}
	if len(b)-off < 16 {
		return r, fmt.Errorf("%w: %d bytes left for token and tag", ErrNotRetry, len(b)-off)
	}
	r.Token = bytes.Clone(b[off : len(b)-16])
	copy(r.Tag[:], b[len(b)-16:])
	pseudo := append(append([]byte{byte(len(odcid))}, odcid...), b[:len(b)-16]...)
	block, _ := aes.NewCipher(retryKeyV1)
	aead, _ := cipher.NewGCM(block)
	if _, err := aead.Open(nil, retryNonceV1, r.Tag[:], pseudo); err != nil {
		return r, ErrRetryTag
	}
	return r, nil
}

// cid reads a length-prefixed connection ID at off.
func cid(b []byte, off int) ([]byte, int, bool) {
	if off >= len(b) {
		return nil, off, false
	}
	n := int(b[off])
	off++
	if n > 20 || off+n > len(b) {
		return nil, off, false
	}
	return bytes.Clone(b[off : off+n]), off + n, true
}

// OpenedInitial is a server Initial opened with the keys of the client's
// first destination connection ID.
type OpenedInitial struct {
	DCID, SCID []byte
	PN         uint32
	Frames     []Frame
}

// Frame is one frame of an opened Initial: its type and, for a
// CONNECTION_CLOSE, the error code and reason.
type Frame struct {
	Type      uint64 // 0x00 PADDING (a run), 0x01 PING, 0x02/0x03 ACK, 0x06 CRYPTO, 0x1c CONNECTION_CLOSE
	ErrorCode uint64
	Reason    string
}

// Name is the frame's name as RFC 9000 spells it.
func (f Frame) Name() string {
	switch f.Type {
	case 0x00:
		return "PADDING"
	case 0x01:
		return "PING"
	case 0x02, 0x03:
		return "ACK"
	case 0x06:
		return "CRYPTO"
	case 0x1c, 0x1d:
		return "CONNECTION_CLOSE"
	}
	return fmt.Sprintf("frame 0x%x", f.Type)
}

// Transport error codes a server's CONNECTION_CLOSE may carry here.
const (
	ErrCodeConnectionRefused = 0x02
	ErrCodeInvalidToken      = 0x0b
)

// OpenServerInitial removes the protection of the first packet of a
// server's Initial datagram, keyed by odcid (the destination connection
// ID of the client Initial it answers), and parses its frames.
func OpenServerInitial(b, odcid []byte) (OpenedInitial, error) {
	var o OpenedInitial
	if len(b) < 7 || b[0]&0xf0 != 0xc0 || binary.BigEndian.Uint32(b[1:5]) != quicV1 {
		return o, ErrNotInitial
	}
	off := 5
	var ok bool
	if o.DCID, off, ok = cid(b, off); !ok {
		return o, fmt.Errorf("%w: cut short", ErrNotInitial)
	}
	if o.SCID, off, ok = cid(b, off); !ok {
		return o, fmt.Errorf("%w: cut short", ErrNotInitial)
	}
	tl, n := varint(b[off:])
	if n == 0 || uint64(len(b)-off-n) < tl {
		return o, fmt.Errorf("%w: token cut short", ErrNotInitial)
	}
	off += n + int(tl)
	length, n := varint(b[off:])
	if n == 0 || uint64(len(b)-off-n) < length {
		return o, fmt.Errorf("%w: length %d past the datagram", ErrNotInitial, length)
	}
	off += n
	pkt := bytes.Clone(b[:off+int(length)])
	keys, err := newInitialKeys(odcid, "server in")
	if err != nil {
		return o, err
	}
	m, ok := keys.mask(pkt, off)
	if !ok {
		return o, fmt.Errorf("%w: too short to sample", ErrOpen)
	}
	pkt[0] ^= m[0] & 0x0f
	pnLen := int(pkt[0]&0x03) + 1
	for i := 0; i < pnLen; i++ {
		pkt[off+i] ^= m[1+i]
		o.PN = o.PN<<8 | uint32(pkt[off+i])
	}
	hdrLen := off + pnLen
	plain, err := keys.aead.Open(nil, keys.nonce(o.PN), pkt[hdrLen:], pkt[:hdrLen])
	if err != nil {
		return o, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	o.Frames, err = parseFrames(plain)
	return o, err
}

// parseFrames reads the frames an Initial packet may carry.
func parseFrames(b []byte) ([]Frame, error) {
	var fs []Frame
	for len(b) > 0 {
		t, n := varint(b)
		if n == 0 {
			return fs, fmt.Errorf("%w: frame type cut short", ErrFrame)
		}
		b = b[n:]
		f := Frame{Type: t}
		switch t {
		case 0x00:
			for len(b) > 0 && b[0] == 0 {
				b = b[1:]
			}
		case 0x01:
		case 0x02, 0x03:
			// largest, delay, range count, first range, ranges, [ECN]
			var vals [4]uint64
			for i := range vals {
				if vals[i], n = varint(b); n == 0 {
					return fs, fmt.Errorf("%w: ACK cut short", ErrFrame)
				}
				b = b[n:]
			}
			extra := 2 * vals[2]
			if t == 0x03 {
				extra += 3
			}
			if extra > uint64(len(b)) {
				return fs, fmt.Errorf("%w: ACK with %d ranges in %d bytes", ErrFrame, vals[2], len(b))
			}
			for i := uint64(0); i < extra; i++ {
				if _, n = varint(b); n == 0 {
					return fs, fmt.Errorf("%w: ACK range cut short", ErrFrame)
				}
				b = b[n:]
			}
		case 0x06:
			if _, n = varint(b); n == 0 {
				return fs, fmt.Errorf("%w: CRYPTO offset cut short", ErrFrame)
			}
			b = b[n:]
			l, n := varint(b)
			if n == 0 || uint64(len(b)-n) < l {
				return fs, fmt.Errorf("%w: CRYPTO data cut short", ErrFrame)
			}
			b = b[n+int(l):]
		case 0x1c, 0x1d:
			var code, ft, rl uint64
			if code, n = varint(b); n == 0 {
				return fs, fmt.Errorf("%w: CONNECTION_CLOSE cut short", ErrFrame)
			}
			b = b[n:]
			if t == 0x1c {
				if ft, n = varint(b); n == 0 {
					return fs, fmt.Errorf("%w: CONNECTION_CLOSE cut short", ErrFrame)
				}
				b = b[n:]
				_ = ft
			}
			if rl, n = varint(b); n == 0 || uint64(len(b)-n) < rl {
				return fs, fmt.Errorf("%w: CONNECTION_CLOSE reason cut short", ErrFrame)
			}
			f.ErrorCode, f.Reason = code, string(b[n:n+int(rl)])
			b = b[n+int(rl):]
		default:
			return fs, fmt.Errorf("%w: type 0x%x is not expected in an Initial", ErrFrame, t)
		}
		fs = append(fs, f)
	}
	return fs, nil
}

// InitialToken is the token of a client Initial datagram's first packet,
// read from its cleartext header; ok is false when b is not a v1 Initial.
func InitialToken(b []byte) (token []byte, ok bool) {
	if len(b) < 7 || b[0]&0xf0 != 0xc0 || binary.BigEndian.Uint32(b[1:5]) != quicV1 {
		return nil, false
	}
	off := 5
	if _, off, ok = cid(b, off); !ok {
		return nil, false
	}
	if _, off, ok = cid(b, off); !ok {
		return nil, false
	}
	tl, n := varint(b[off:])
	if n == 0 || uint64(len(b)-off-n) < tl {
		return nil, false
	}
	return bytes.Clone(b[off+n : off+n+int(tl)]), true
}
