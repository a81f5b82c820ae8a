package udpdns

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// walkRecords checks, without allocating, that the records after a reply's
// question are whole: every owner name well formed (labels, compression
// pointers followed as miekg/dns follows them), every record's fixed fields
// present and its RDATA inside the message. off is where the question
// ends. It is the reply path's stand-in for a full unpack: what it refuses
// miekg/dns refuses too (FuzzWalkRecords holds it to that), so a datagram
// it passes fails a later dns.Msg.Unpack only inside a record's RDATA,
// which Call.Reply then reports.
//
// Like miekg/dns it reads a message that ends where a record would start
// as one whose counts overstate it.
func walkRecords(b []byte, off int) error {
	counts := [3]uint16{
		binary.BigEndian.Uint16(b[6:8]),
		binary.BigEndian.Uint16(b[8:10]),
		binary.BigEndian.Uint16(b[10:12]),
	}
	for sec, n := range counts {
		for i := 0; i < int(n); i++ { // ends: each round moves off forward or returns
			if off == len(b) {
				return nil // the counts overstate the message
			}
			end, err := skipName(b, off)
			if err != nil {
				return fmt.Errorf("%w: %s record %d: %w", ErrMalformed, sectionNames[sec], i+1, err)
			}
			if end+10 > len(b) {
				return fmt.Errorf("%w: %s record %d: type, class, TTL or RDLENGTH cut off", ErrMalformed, sectionNames[sec], i+1)
			}
			rdlen := int(binary.BigEndian.Uint16(b[end+8:]))
			off = end + 10 + rdlen
			if off > len(b) {
				return fmt.Errorf("%w: %s record %d: RDATA runs %d bytes past the end", ErrMalformed, sectionNames[sec], i+1, off-len(b))
			}
		}
	}
	return nil
}

var sectionNames = [3]string{"answer", "authority", "additional"}

// maxPointers is how many compression pointers one name may follow, as
// miekg/dns allows ((255+1)/2 − 2).
const maxPointers = 126

// Preallocated so the walk never allocates on a good message.
var (
	errNameCut      = errors.New("name runs past the end")
	errNameLong     = errors.New("name longer than 255 bytes")
	errNamePointers = fmt.Errorf("name follows more than %d compression pointers", maxPointers)
	errNameReserved = errors.New("reserved label type")
)

// skipName walks the wire-form name at off and returns where it ends in the
// record (after its first pointer, if any).
func skipName(b []byte, off int) (int, error) {
	end, ptrs, budget := -1, 0, 255
	for { // ends: every label moves off forward and spends budget, every pointer spends one of maxPointers
		if off >= len(b) {
			return 0, errNameCut
		}
		c := int(b[off])
		off++
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				if end < 0 {
					end = off
				}
				return end, nil
			}
			if off+c > len(b) {
				return 0, errNameCut
			}
			if budget -= c + 1; budget <= 0 {
				return 0, errNameLong
			}
			off += c
		case 0xc0:
			if off >= len(b) {
				return 0, errNameCut
			}
			if end < 0 {
				end = off + 1
			}
			if ptrs++; ptrs > maxPointers {
				return 0, errNamePointers
			}
			off = (c&0x3f)<<8 | int(b[off])
		default:
			return 0, errNameReserved
		}
	}
}
