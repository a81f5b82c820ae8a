package tcpexp

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

// The capture's connections (conversations) and Wireshark's relative
// sequence numbers. The analysis files — match.go, conversation.go,
// kernelstate.go, transmissions.go — are pure functions of the records and
// packets, tested on small inputs; comments.go and ladder.go apply them to
// an experiment's capture.

// TCP flag bits as captured (capture.Meta.Flags; the engine's Flags use
// the same bits).
const (
	wFIN = capture.FlagFIN
	wSYN = capture.FlagSYN
	wRST = capture.FlagRST
	wACK = capture.FlagACK
)

func seqLT(a, b uint32) bool { return int32(a-b) < 0 }
func seqLE(a, b uint32) bool { return a == b || seqLT(a, b) }

// seqBase is Wireshark's base for one direction's relative sequence
// numbers: the SYN's sequence number, or one less than the first
// segment's when the direction begins without a SYN (so that segment
// shows as 1).
type seqBase struct {
	v   uint32
	set bool
}

func (b *seqBase) see(flags uint8, seq uint32) {
	if b.set {
		return
	}
	b.set, b.v = true, seq
	if flags&wSYN == 0 {
		b.v--
	}
}

// rel is x relative to the base, or x itself (marked) without a base.
func (b seqBase) rel(x uint32) string {
	if !b.set {
		return strconv.FormatUint(uint64(x), 10) + "(raw)"
	}
	return strconv.FormatUint(uint64(x-b.v), 10)
}

// conv is one TCP connection in the capture: a lab port and a kernel end,
// from a SYN (or the first segment) to the next SYN that starts over.
type conv struct {
	id        int // index among the capture's conversations
	lab, peer netip.AddrPort
	labBase   seqBase // the lab's direction
	peerBase  seqBase // the kernel's direction
	pkts      []int   // packet indices, capture order
	segs      []wseg
	kernel    []kview
}

// wseg is one captured segment of a conversation.
type wseg struct {
	fromLab  bool
	flags    uint8
	seq, ack uint32
	n        int
	at       time.Time
}

func (s wseg) has(f uint8) bool { return s.flags&f != 0 }

// end is the sequence number after the segment (SYN and FIN count one).
func (s wseg) end() uint32 {
	e := s.seq + uint32(s.n)
	if s.has(wSYN) {
		e++
	}
	if s.has(wFIN) {
		e++
	}
	return e
}

// conversations splits the packets into connections. fromLab says which
// end is the lab's; packets that are not TCP get conv -1.
func conversations(pkts []*capture.Packet, fromLab func(capture.Meta) bool) ([]*conv, []int) {
	type tuple struct{ lab, peer netip.AddrPort }
	cur := map[tuple]*conv{}
	var convs []*conv
	of := make([]int, len(pkts))
	for i, p := range pkts {
		of[i] = -1
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		s := wseg{fromLab: fromLab(m), flags: m.Flags, seq: m.Seq, ack: m.Ack, n: len(m.Payload), at: p.Time}
		t := tuple{m.Src, m.Dst}
		if !s.fromLab {
			t = tuple{m.Dst, m.Src}
		}
		c := cur[t]
		if c != nil && s.has(wSYN) && !s.has(wACK) {
			b := c.peerBase
			if s.fromLab {
				b = c.labBase
			}
			if b.set && b.v != s.seq { // a new connection on the same ports
				c = nil
			}
		}
		if c == nil {
			c = &conv{id: len(convs), lab: t.lab, peer: t.peer}
			cur[t] = c
			convs = append(convs, c)
		}
		if s.fromLab {
			c.labBase.see(s.flags, s.seq)
		} else {
			c.peerBase.see(s.flags, s.seq)
		}
		c.pkts = append(c.pkts, i)
		c.segs = append(c.segs, s)
		of[i] = c.id
	}
	for _, c := range convs {
		c.kernel = inferKernel(c.segs)
	}
	return convs, of
}
