package tcpexp

import (
	"fmt"
	"strings"
)

// What can be read of a Linux SYN cookie from outside the kernel
// (net/ipv4/syncookies.c). The cookie is the SYN-ACK's ISN:
//
//	ISN = H1(addrs, ports) + the client's ISS + count<<24
//	      + ((H2(addrs, ports, count) + mssind) mod 2^24)
//
// with H1 and H2 keyed hashes of a secret, count a minute counter and
// mssind the index of the client's MSS in a table of four. Without the
// secret one cookie says nothing; two cookies for the same 4-tuple and
// the same minute differ by the difference of the client ISSs plus, in
// their low 24 bits, exactly the difference of their MSS indexes. With timestamps on, the
// SYN-ACK's TSval carries in its low 6 bits what the cookie has no room
// for: the client's window scale (0xf for none), SACK-permitted and ECN.

// cookieMSSTable is Linux's msstab: the MSS values a cookie can encode.
var cookieMSSTable = [4]uint16{536, 1300, 1440, 1460}

// cookieMSSIndex is the index Linux encodes for a SYN's MSS: the largest
// table entry not above it (0 below the smallest); cookieMSSTable[index]
// is the MSS the kernel remembers.
func cookieMSSIndex(mss uint16) int {
	i := len(cookieMSSTable) - 1
	for ; i > 0; i-- {
		if mss >= cookieMSSTable[i] {
			break
		}
	}
	return i
}

// cookieIndexDelta reads the MSS index difference of two cookies made for
// the same addresses and ports in the same minute, for SYNs whose ISSs
// differ by issDiff (a's minus b's): the difference of their low 24 bits
// once issDiff is taken out, signed. ok is false when it is not one a
// cookie can hold (|d| > 3): the cookies were not made from the same
// inputs (another minute, another 4-tuple).
func cookieIndexDelta(a, b, issDiff uint32) (d int, ok bool) {
	d = int(int32((a-b-issDiff)<<8) >> 8)
	return d, d >= -(len(cookieMSSTable)-1) && d <= len(cookieMSSTable)-1
}

// tsCookie is what a cookie SYN-ACK's TSval says in its low 6 bits.
type tsCookie struct {
	HasWScale bool  // the client's SYN offered window scaling
	WScale    uint8 // its shift, when HasWScale
	SACK      bool  // the client's SYN was SACK-permitted
	ECN       bool
}

// tsCookieBits is how many low TSval bits carry options (TSBITS).
const tsCookieBits = 6

// decodeTSCookie reads the low 6 bits of a cookie SYN-ACK's TSval:
// bits 0–3 the window scale (0xf: none), bit 4 SACK, bit 5 ECN. It reads
// the bits as sent only when the kernel adds no per-address offset to
// TSval (net.ipv4.tcp_timestamps = 2).
func decodeTSCookie(tsval uint32) tsCookie {
	t := tsCookie{SACK: tsval&(1<<4) != 0, ECN: tsval&(1<<5) != 0}
	if ws := uint8(tsval & 0xf); ws != 0xf {
		t.HasWScale, t.WScale = true, ws
	}
	return t
}

func (t tsCookie) String() string {
	var p []string
	if t.HasWScale {
		p = append(p, fmt.Sprintf("wscale %d", t.WScale))
	} else {
		p = append(p, "no wscale")
	}
	p = append(p, "SACK "+onOff(t.SACK), "ECN "+onOff(t.ECN))
	return strings.Join(p, ", ")
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// tcpiOptions renders TCP_INFO's tcpi_options bits (linux/tcp.h).
func tcpiOptions(o uint8) string {
	var p []string
	for _, b := range []struct {
		bit  uint8
		name string
	}{{1, "timestamps"}, {2, "SACK"}, {4, "wscale"}, {8, "ECN"}} {
		if o&b.bit != 0 {
			p = append(p, b.name)
		}
	}
	if len(p) == 0 {
		return "none"
	}
	return strings.Join(p, ", ")
}

// TCP_INFO's tcpi_options bits.
const (
	tcpiOptTimestamps = 1
	tcpiOptSACK       = 2
	tcpiOptWScale     = 4
)
