package tcpexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// wireKey identifies a segment in both the records and the capture.
type wireKey struct {
	sent         bool
	lport, rport uint16
	seq, ack     uint32
	flags        uint8
	n            int
}

func recKey(rec *rawtcp.Record) wireKey {
	k := wireKey{rec.Sent, rec.Seg.DstPort, rec.Seg.SrcPort, uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), uint8(rec.Seg.Flags) & 0x3f, rec.Seg.Len}
	if rec.Sent {
		k.lport, k.rport = rec.Seg.SrcPort, rec.Seg.DstPort
	}
	return k
}

// onWire reports whether the record's segment crossed the loopback: every
// segment the lab received did (the kernel sent it; a receive hook's drop
// happens after), a sent one unless the link dropped, held or lost it (a
// held segment has a second record when it is released). Records of notes
// ("lab forgot its TCB") are no segments.
func onWire(rec *rawtcp.Record) bool {
	if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 {
		return false
	}
	if !rec.Sent {
		return true
	}
	return !strings.HasPrefix(rec.Note, "dropped") && !strings.HasPrefix(rec.Note, "lost") && !strings.HasPrefix(rec.Note, "held")
}

// recMatcher pairs packets with records by direction, ports, SEQ, ACK,
// flags and length, in order for repeats. It is fed the capture as it
// grows (capture.StopWhen's completeness test) and counts the on-wire
// records of its snapshot that found their packet.
type recMatcher struct {
	recs    []rawtcp.Record
	lab     netip.Addr
	pmin    uint16
	pmax    uint16
	queue   map[wireKey][]int
	onWire  []bool
	want    int   // on-wire records
	got     int   // on-wire records matched
	n       int   // packets fed so far
	rec     []int // per packet fed: the record index, or -1
	recPkt  map[int]int
	missing []string
	extra   int // packets matching no record
}

func newRecMatcher(recs []rawtcp.Record, lab netip.Addr, pmin, pmax uint16) *recMatcher {
	m := &recMatcher{recs: recs, lab: lab, pmin: pmin, pmax: pmax, queue: map[wireKey][]int{}, onWire: make([]bool, len(recs)), recPkt: map[int]int{}}
	for i := range recs {
		rec := &recs[i]
		if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 {
			continue
		}
		// Only on-wire records are queued: a dropped copy must not take
		// the packet of an identical copy that did go out.
		if !onWire(rec) {
			continue
		}
		m.onWire[i] = true
		m.want++
		k := recKey(rec)
		m.queue[k] = append(m.queue[k], i)
	}
	return m
}

// fromLab says whether a captured segment was sent from a lab port.
func (m *recMatcher) fromLab(meta capture.Meta) bool {
	return meta.Src.Addr() == m.lab && meta.Src.Port() >= m.pmin && meta.Src.Port() <= m.pmax
}

// feed matches the packets not yet seen and reports whether every on-wire
// record has its packet.
func (m *recMatcher) feed(pkts []*capture.Packet) bool {
	for ; m.n < len(pkts); m.n++ {
		meta, ok := pkts[m.n].Decode()
		if !ok || meta.Proto != capture.ProtoTCP {
			m.rec = append(m.rec, -1)
			continue
		}
		sent := m.fromLab(meta)
		k := wireKey{sent, meta.Dst.Port(), meta.Src.Port(), meta.Seq, meta.Ack, meta.Flags & 0x3f, len(meta.Payload)}
		if sent {
			k.lport, k.rport = meta.Src.Port(), meta.Dst.Port()
		}
		q := m.queue[k]
		if len(q) == 0 {
			m.rec = append(m.rec, -1)
			m.extra++
			if len(m.missing) < 5 {
				m.missing = append(m.missing, fmt.Sprintf("%v→%v seq=%d ack=%d flags=%#x len=%d", meta.Src, meta.Dst, meta.Seq, meta.Ack, meta.Flags, len(meta.Payload)))
			}
			continue
		}
		m.queue[k] = q[1:]
		m.rec = append(m.rec, q[0])
		m.recPkt[q[0]] = m.n
		m.got++
	}
	return m.got >= m.want
}
