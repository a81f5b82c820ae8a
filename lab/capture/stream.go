package capture

import (
	"net/netip"
	"sort"
)

// Stream is one direction of a TCP connection reassembled from a capture:
// the bytes the sender's application wrote, in order, each byte traceable to
// the packet that carried it first.
type Stream struct {
	Src, Dst netip.AddrPort
	Data     []byte
	// Segments that contributed new bytes, in stream order.
	Segments []Segment
	// Frames and WireBytes count every packet of this direction, handshake,
	// ACKs and retransmissions included; WireBytes is whole frames.
	Frames, WireBytes int
}

// Segment records which packet carried the stream bytes [Offset, Offset+Len).
type Segment struct {
	Offset, Len int
	Packet      *Packet
}

// PacketAt returns the packet that carried stream byte off, or nil.
func (s *Stream) PacketAt(off int) *Packet {
	i := sort.Search(len(s.Segments), func(i int) bool { return s.Segments[i].Offset+s.Segments[i].Len > off })
	if i < len(s.Segments) && s.Segments[i].Offset <= off {
		return s.Segments[i].Packet
	}
	return nil
}

type flowKey struct{ src, dst netip.AddrPort }

// TCPStreams reassembles every TCP direction in pkts, returned in the order
// each direction's first packet appeared. Sequence numbers are taken relative
// to the SYN when one was seen, else to the first segment, with wrap-safe
// arithmetic; duplicate and overlapping bytes are kept once.
func TCPStreams(pkts []*Packet) []*Stream {
	type seg struct {
		rel uint32
		p   *Packet
		n   int
		pay []byte
	}
	type flow struct {
		s    *Stream
		base uint32
		set  bool
		segs []seg
	}
	flows := map[flowKey]*flow{}
	var order []*flow
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != ProtoTCP {
			continue
		}
		k := flowKey{m.Src, m.Dst}
		f := flows[k]
		if f == nil {
			f = &flow{s: &Stream{Src: m.Src, Dst: m.Dst}}
			flows[k] = f
			order = append(order, f)
		}
		f.s.Frames++
		f.s.WireBytes += len(p.Data)
		if m.Flags&FlagSYN != 0 {
			f.base, f.set = m.Seq+1, true
		}
		if len(m.Payload) == 0 {
			continue
		}
		if !f.set {
			f.base, f.set = m.Seq, true
		}
		f.segs = append(f.segs, seg{rel: m.Seq - f.base, p: p, n: len(m.Payload), pay: m.Payload})
	}
	out := make([]*Stream, 0, len(order))
	for _, f := range order {
		sort.SliceStable(f.segs, func(i, j int) bool { return int32(f.segs[i].rel-f.segs[j].rel) < 0 })
		for _, sg := range f.segs {
			have := uint32(len(f.s.Data))
			if int32(sg.rel-have) > 0 { // a gap the capture never filled
				break
			}
			skip := int(have - sg.rel)
			if skip >= sg.n {
				continue // retransmitted bytes already held
			}
			f.s.Segments = append(f.s.Segments, Segment{Offset: len(f.s.Data), Len: sg.n - skip, Packet: sg.p})
			f.s.Data = append(f.s.Data, sg.pay[skip:]...)
		}
		out = append(out, f.s)
	}
	return out
}
