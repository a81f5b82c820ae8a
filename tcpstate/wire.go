package tcpstate

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Wire format of the TCP header (RFC 9293 §3.1):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	|                        Sequence Number                        |
//	|                    Acknowledgment Number                      |
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|                               |R|E|G|K|H|T|N|N|               |
//	|           Checksum            |         Urgent Pointer        |
//	|                    Options                    |    Padding    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

const (
	// HeaderMinLen is the length of a TCP header without options.
	HeaderMinLen = 20
	// HeaderMaxLen is the largest header the 4-bit data offset allows.
	HeaderMaxLen = 60

	optEOL       = 0
	optNOP       = 1
	optMSS       = 2
	optWScale    = 3
	optSACKPerm  = 4
	optSACK      = 5
	optTimestamp = 8
)

// optionsLen returns the encoded length of o, padded to a multiple of 4.
func (o *Options) optionsLen() int {
	n := 0
	if o.MSS != 0 {
		n += 4
	}
	if o.HasWScale {
		n += 4 // NOP + kind,len,shift
	}
	if o.SACKPermitted {
		n += 4 // NOP,NOP + kind,len
	}
	if o.HasTimestamps {
		n += 12 // NOP,NOP + kind,len,val,ecr
	}
	if k := len(o.SACKBlocks()); k > 0 {
		n += 4 + 8*k // NOP,NOP + kind,len + blocks
	}
	n += len(o.Extra)
	return (n + 3) &^ 3
}

// HeaderLen returns the encoded header length including padded options.
func (s *Segment) HeaderLen() int { return HeaderMinLen + s.Options.optionsLen() }

// WireLen returns the encoded length of the whole segment.
func (s *Segment) WireLen() int { return s.HeaderLen() + len(s.Payload) }

// AppendWire appends the encoded segment to b and returns the extended
// slice. The checksum is computed over the IPv4 pseudo-header of src and dst
// (RFC 9293 §3.1). It fails only when the options do not fit in 40 bytes.
func (s *Segment) AppendWire(b []byte, src, dst [4]byte) ([]byte, error) {
	hl := s.HeaderLen()
	if hl > HeaderMaxLen {
		return b, fmt.Errorf("%w: %d bytes", ErrOptionsTooLong, hl-HeaderMinLen)
	}
	start := len(b)
	var h [HeaderMinLen]byte
	binary.BigEndian.PutUint16(h[0:], s.SrcPort)
	binary.BigEndian.PutUint16(h[2:], s.DstPort)
	binary.BigEndian.PutUint32(h[4:], uint32(s.Seq))
	binary.BigEndian.PutUint32(h[8:], uint32(s.Ack))
	h[12] = byte(hl/4) << 4
	h[13] = byte(s.Flags)
	binary.BigEndian.PutUint16(h[14:], s.Window)
	binary.BigEndian.PutUint16(h[18:], s.Urgent)
	b = append(b, h[:]...)
	o := &s.Options
	if o.MSS != 0 {
		b = append(b, optMSS, 4, byte(o.MSS>>8), byte(o.MSS))
	}
	if o.HasWScale {
		b = append(b, optNOP, optWScale, 3, o.WScale)
	}
	if o.SACKPermitted {
		b = append(b, optNOP, optNOP, optSACKPerm, 2)
	}
	if o.HasTimestamps {
		b = append(b, optNOP, optNOP, optTimestamp, 10)
		b = binary.BigEndian.AppendUint32(b, o.TSVal)
		b = binary.BigEndian.AppendUint32(b, o.TSEcr)
	}
	if blocks := o.SACKBlocks(); len(blocks) > 0 {
		b = append(b, optNOP, optNOP, optSACK, byte(2+8*len(blocks)))
		for _, k := range blocks {
			b = binary.BigEndian.AppendUint32(b, uint32(k.Left))
			b = binary.BigEndian.AppendUint32(b, uint32(k.Right))
		}
	}
	b = append(b, o.Extra...)
	for len(b)-start < hl {
		b = append(b, optEOL)
	}
	b = append(b, s.Payload...)
	cs := Checksum(b[start:], src, dst)
	binary.BigEndian.PutUint16(b[start+16:], cs)
	return b, nil
}

// AppendHeader appends the segment's header (with options) to b, its
// checksum computed over the header and s.Payload, which it does not copy:
// the header and the payload go out together as two buffers of one
// sendmsg. It fails only when the options do not fit in 40 bytes.
func (s *Segment) AppendHeader(b []byte, src, dst [4]byte) ([]byte, error) {
	payload := s.Payload
	s.Payload = nil
	b, err := s.AppendWire(b, src, dst)
	s.Payload = payload
	if err != nil {
		return b, err
	}
	h := b[len(b)-s.HeaderLen():]
	binary.BigEndian.PutUint16(h[16:], 0)
	// The header's length is a multiple of 4: the payload's sum starts at
	// an even offset and adds as it is.
	cs := checksumFinish(pseudoSum(src, dst, len(h)+len(payload)), addCarry(sum64(h), sum64(payload)))
	binary.BigEndian.PutUint16(h[16:], cs)
	return b, nil
}

// AppendHeaderOffload is AppendHeader for a link that offloads the
// checksum (a packet socket with a virtio-net header asking for it, on
// loopback): the checksum field holds only the IPv4 pseudo-header's sum, as
// the kernel leaves it in its own segments on lo, and whoever completes the
// checksum adds the header and payload to it. It reads no payload byte.
func (s *Segment) AppendHeaderOffload(b []byte, src, dst [4]byte) ([]byte, error) {
	payload := s.Payload
	s.Payload = nil
	start := len(b)
	b, err := s.AppendWire(b, src, dst)
	s.Payload = payload
	if err != nil {
		return b, err
	}
	binary.BigEndian.PutUint16(b[start+16:], ^checksumFinish(pseudoSum(src, dst, len(b)-start+len(payload)), 0))
	return b, nil
}

// Checksum returns the TCP checksum of seg (header and payload, with the
// checksum field taken as it is) over the IPv4 pseudo-header. Computed over
// a segment whose checksum field is zero it is the value to store; computed
// over a received segment it is zero when the stored checksum is right.
//
// The one's complement sum does not depend on byte order (RFC 1071 §2(B)):
// it is taken over little-endian 64-bit words with add-with-carry
// (math/bits.Add64, four words a round) and byte-swapped at the end.
func Checksum(seg []byte, src, dst [4]byte) uint16 {
	return checksumFinish(pseudoSum(src, dst, len(seg)), sum64(seg))
}

// pseudoSum is the IPv4 pseudo-header's words, each big-endian 16-bit
// word read little-endian (see Checksum), for a segment of n bytes.
func pseudoSum(src, dst [4]byte, n int) uint64 {
	le := binary.LittleEndian
	return uint64(le.Uint16(src[0:])) + uint64(le.Uint16(src[2:])) +
		uint64(le.Uint16(dst[0:])) + uint64(le.Uint16(dst[2:])) +
		uint64(bits.ReverseBytes16(6)) + uint64(bits.ReverseBytes16(uint16(n)))
}

// sum64 is the one's complement sum of b as little-endian words, carries
// folded into 64 bits. Sums of pieces that start at even offsets combine
// with addCarry.
func sum64(b []byte) uint64 {
	le := binary.LittleEndian
	var sum, c uint64
	for len(b) >= 32 {
		sum, c = bits.Add64(sum, le.Uint64(b), c)
		sum, c = bits.Add64(sum, le.Uint64(b[8:]), c)
		sum, c = bits.Add64(sum, le.Uint64(b[16:]), c)
		sum, c = bits.Add64(sum, le.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		sum, c = bits.Add64(sum, le.Uint64(b), c)
		b = b[8:]
	}
	sum, c = bits.Add64(sum, 0, c)
	sum += c
	var tail uint64
	switch len(b) {
	case 7:
		tail |= uint64(b[6]) << 48
		fallthrough
	case 6:
		tail |= uint64(b[5]) << 40
		fallthrough
	case 5:
		tail |= uint64(b[4]) << 32
		fallthrough
	case 4:
		tail |= uint64(le.Uint32(b))
	case 3:
		tail |= uint64(b[2]) << 16
		fallthrough
	case 2:
		tail |= uint64(le.Uint16(b))
	case 1:
		tail |= uint64(b[0])
	}
	return addCarry(sum, tail)
}

// addCarry is a + b in one's complement (the carry added back).
func addCarry(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	return s + c
}

// checksumFinish folds the pseudo-header's and the data's sums to the
// 16-bit checksum, in network byte order.
func checksumFinish(pseudo, data uint64) uint16 {
	sum := addCarry(pseudo, data)
	// Fold 64 → 32 → 16 bits, carries added back each time.
	s32, c32 := bits.Add32(uint32(sum), uint32(sum>>32), 0)
	s32 += c32
	s16 := s32&0xffff + s32>>16
	s16 = s16&0xffff + s16>>16
	return ^bits.ReverseBytes16(uint16(s16))
}

// VerifyChecksum reports whether the checksum stored in seg is correct for
// the IPv4 pseudo-header of src and dst.
func VerifyChecksum(seg []byte, src, dst [4]byte) bool {
	return len(seg) >= HeaderMinLen && Checksum(seg, src, dst) == 0
}

// Decode parses b, a whole TCP segment (header, options, payload), into a
// new Segment. See (*Segment).Decode.
func Decode(b []byte) (Segment, error) {
	var s Segment
	err := s.Decode(b)
	return s, err
}

// Decode parses b into s. The payload and nothing else aliases b. It never
// panics: any input either decodes or returns an error wrapping ErrTruncated,
// ErrBadDataOffset or ErrBadOption. The checksum is not checked; use
// VerifyChecksum. Options of unknown kind are skipped.
func (s *Segment) Decode(b []byte) error {
	if len(b) < HeaderMinLen {
		return fmt.Errorf("%w: %d bytes, need %d", ErrTruncated, len(b), HeaderMinLen)
	}
	hl := int(b[12]>>4) * 4
	if hl < HeaderMinLen {
		return fmt.Errorf("%w: %d", ErrBadDataOffset, hl)
	}
	if len(b) < hl {
		return fmt.Errorf("%w: %d bytes, header needs %d", ErrTruncated, len(b), hl)
	}
	*s = Segment{
		SrcPort: binary.BigEndian.Uint16(b[0:]),
		DstPort: binary.BigEndian.Uint16(b[2:]),
		Seq:     Seq(binary.BigEndian.Uint32(b[4:])),
		Ack:     Seq(binary.BigEndian.Uint32(b[8:])),
		Flags:   Flags(b[13]),
		Window:  binary.BigEndian.Uint16(b[14:]),
		Urgent:  binary.BigEndian.Uint16(b[18:]),
	}
	if err := s.Options.decode(b[HeaderMinLen:hl]); err != nil {
		return err
	}
	if len(b) > hl {
		s.Payload = b[hl:len(b):len(b)]
	}
	return nil
}

func (o *Options) decode(b []byte) error {
	for len(b) > 0 {
		kind := b[0]
		switch kind {
		case optEOL:
			return nil
		case optNOP:
			b = b[1:]
			continue
		}
		if len(b) < 2 {
			return fmt.Errorf("%w: kind %d has no length", ErrBadOption, kind)
		}
		l := int(b[1])
		if l < 2 || l > len(b) {
			return fmt.Errorf("%w: kind %d length %d", ErrBadOption, kind, l)
		}
		body := b[2:l]
		want := -1
		switch kind {
		case optMSS:
			want = 2
		case optWScale:
			want = 1
		case optSACKPerm:
			want = 0
		case optTimestamp:
			want = 8
		}
		if want >= 0 && len(body) != want {
			return fmt.Errorf("%w: kind %d length %d", ErrBadOption, kind, l)
		}
		if kind == optSACK && (len(body) == 0 || len(body)%8 != 0 || len(body) > 8*MaxSACKBlocks) {
			return fmt.Errorf("%w: SACK length %d (2 + 8n, n 1..4)", ErrBadOption, l)
		}
		switch kind {
		case optMSS:
			o.MSS = binary.BigEndian.Uint16(body)
		case optWScale:
			o.HasWScale, o.WScale = true, body[0]
		case optSACKPerm:
			o.SACKPermitted = true
		case optTimestamp:
			o.HasTimestamps = true
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
		case optSACK:
			o.NumSACK = 0
			for ; len(body) >= 8; body = body[8:] {
				o.AddSACK(SACKBlock{Seq(binary.BigEndian.Uint32(body)), Seq(binary.BigEndian.Uint32(body[4:]))})
			}
		}
		b = b[l:]
	}
	return nil
}
