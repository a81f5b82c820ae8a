package tcpstate

import (
	"strconv"
)

// Flags is the set of TCP control bits (RFC 9293 §3.1).
type Flags uint8

// The control bits, in header bit order.
const (
	FIN Flags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Has reports whether all bits of x are set in f.
func (f Flags) Has(x Flags) bool { return f&x == x }

// String returns the set bits joined by "|", e.g. "SYN|ACK"; "0" for none.
func (f Flags) String() string {
	if f == 0 {
		return "0"
	}
	var buf [40]byte
	return string(f.appendText(buf[:0]))
}

func (f Flags) appendText(b []byte) []byte {
	first := true
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if !first {
				b = append(b, '|')
			}
			b = append(b, n...)
			first = false
		}
	}
	return b
}

// Options holds the TCP options this package understands. The zero value
// means "no options". On decode, options of unknown kind are skipped; on
// encode, Extra is appended verbatim (it must be well-formed option bytes).
type Options struct {
	MSS           uint16 // maximum segment size; 0 means absent
	HasWScale     bool   // window scale option present (RFC 7323)
	WScale        uint8  // shift count
	SACKPermitted bool   // SACK-permitted option present (RFC 2018)
	HasTimestamps bool   // timestamps option present (RFC 7323)
	TSVal, TSEcr  uint32
	// SACK holds the first NumSACK blocks of a SACK option (RFC 2018 §3);
	// NumSACK 0 means absent. Encoded in order: the first block is the most
	// recent.
	SACK    [MaxSACKBlocks]SACKBlock
	NumSACK uint8
	Extra   []byte // raw extra options, encode only
}

// MaxSACKBlocks is the most SACK blocks the 40 octets of option space hold
// (RFC 2018 §3: 4, or 3 beside the timestamps option).
const MaxSACKBlocks = 4

// SACKBlock is one block of a SACK option: the receiver holds the octets
// [Left, Right) (RFC 2018 §3: Right is the sequence number just past the
// block).
type SACKBlock struct{ Left, Right Seq }

// SACKBlocks returns the SACK blocks present, aliasing o.
func (o *Options) SACKBlocks() []SACKBlock { return o.SACK[:min(int(o.NumSACK), MaxSACKBlocks)] }

// AddSACK appends a block if there is room, reporting whether it was added.
func (o *Options) AddSACK(b SACKBlock) bool {
	if int(o.NumSACK) >= MaxSACKBlocks {
		return false
	}
	o.SACK[o.NumSACK] = b
	o.NumSACK++
	return true
}

// Segment is one TCP segment as the engine sees it. Window is the raw 16-bit
// header field (not yet scaled). Payload aliases the caller's buffer on
// input and the Output's arena on output.
type Segment struct {
	SrcPort, DstPort uint16
	Seq, Ack         Seq
	Flags            Flags
	Window           uint16
	Urgent           uint16
	Options          Options
	Payload          []byte
}

// Len returns SEG.LEN: the payload length plus one for SYN and one for FIN.
func (s *Segment) Len() Size {
	n := Size(len(s.Payload))
	if s.Flags&SYN != 0 {
		n++
	}
	if s.Flags&FIN != 0 {
		n++
	}
	return n
}

// String returns a compact one-line description, e.g.
// "SYN|ACK seq=300 ack=101 win=65535 len=0 mss=1460 ws=7".
func (s *Segment) String() string {
	var buf [160]byte
	return string(s.AppendText(buf[:0]))
}

// AppendText appends String's text to b without allocating.
func (s *Segment) AppendText(b []byte) []byte {
	b = s.Flags.appendText(b)
	if s.Flags == 0 {
		b = append(b, "<none>"...)
	}
	b = append(b, " seq="...)
	b = strconv.AppendUint(b, uint64(s.Seq), 10)
	if s.Flags&ACK != 0 {
		b = append(b, " ack="...)
		b = strconv.AppendUint(b, uint64(s.Ack), 10)
	}
	b = append(b, " win="...)
	b = strconv.AppendUint(b, uint64(s.Window), 10)
	b = append(b, " len="...)
	b = strconv.AppendUint(b, uint64(len(s.Payload)), 10)
	if s.Options.MSS != 0 {
		b = append(b, " mss="...)
		b = strconv.AppendUint(b, uint64(s.Options.MSS), 10)
	}
	if s.Options.HasWScale {
		b = append(b, " ws="...)
		b = strconv.AppendUint(b, uint64(s.Options.WScale), 10)
	}
	return s.Options.appendSACKTS(b)
}

// appendSACKTS appends the SACK-permitted, SACK and timestamp options in
// String's form: " sackok", " sack=L-R,L-R", " ts=VAL/ECR".
func (o *Options) appendSACKTS(b []byte) []byte {
	if o.SACKPermitted {
		b = append(b, " sackok"...)
	}
	for i, k := range o.SACKBlocks() {
		if i == 0 {
			b = append(b, " sack="...)
		} else {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(k.Left), 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(k.Right), 10)
	}
	if o.HasTimestamps {
		b = append(b, " ts="...)
		b = strconv.AppendUint(b, uint64(o.TSVal), 10)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(o.TSEcr), 10)
	}
	return b
}
