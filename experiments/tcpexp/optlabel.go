package tcpexp

import (
	"strconv"

	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// optionsLabel is what a ladder label shows of a segment's options:
// SACK-permitted on a SYN, the SACK blocks relative to the base of the
// acknowledged stream (as Wireshark shows them), and with ts the
// timestamps.
func optionsLabel(s *rawtcp.RecSeg, ackB seqBase, ts bool) string {
	var b []byte
	if s.SACKPermitted {
		b = append(b, " SACK_PERM"...)
	}
	for i, k := range s.SACKBlocks() {
		if i == 0 {
			b = append(b, " SACK="...)
		} else {
			b = append(b, ',')
		}
		b = append(b, ackB.rel(uint32(k.Left))...)
		b = append(b, '-')
		b = append(b, ackB.rel(uint32(k.Right))...)
	}
	if ts && s.HasTS {
		b = append(b, " TSval="...)
		b = strconv.AppendUint(b, uint64(s.TSVal), 10)
		b = append(b, " TSecr="...)
		b = strconv.AppendUint(b, uint64(s.TSEcr), 10)
	}
	return string(b)
}
