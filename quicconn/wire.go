package quicconn

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/statelab/statelab/internal/capture"
)

// Datagram is one captured UDP datagram of a QUIC connection with what its
// cleartext header shows, and — once matched — the qlog event the server
// recorded for it: the per-packet record the experiments check.
type Datagram struct {
	Pkt      *capture.Packet
	Index    int // in the capture, from 0
	Time     time.Time
	Src, Dst netip.AddrPort
	Size     int    // UDP payload bytes
	Long     bool   // long header (handshake); false: 1-RTT short header
	Type     string // qlog packet type of the first packet
	DCID     string // hex, from the cleartext header
	SCID     string // hex, long headers only
	// TailLen and TailDCID describe a 1-RTT packet coalesced after the
	// long header packets of a handshake datagram (0: none).
	TailLen  int
	TailDCID string
	// Event is the server's qlog record of this datagram's 1-RTT packet
	// (sent or received), nil when unmatched; ClientEvent the client's.
	Event, ClientEvent *PacketEvent
}

// Datagrams decodes the captured UDP datagrams to or from server. Short
// header connection IDs are cidLen bytes (both sides use 8 here).
func Datagrams(pkts []*capture.Packet, server netip.AddrPort, cidLen int) []*Datagram {
	var out []*Datagram
	for i, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoUDP || (m.Src != server && m.Dst != server) || len(m.Payload) == 0 {
			continue
		}
		d := &Datagram{Pkt: p, Index: i, Time: p.Time, Src: m.Src, Dst: m.Dst, Size: len(m.Payload)}
		parseHeader(d, m.Payload, cidLen)
		out = append(out, d)
	}
	return out
}

func parseHeader(d *Datagram, b []byte, cidLen int) {
	if b[0]&0x80 == 0 { // short header: flags, DCID, …
		d.Type = "1RTT"
		if len(b) >= 1+cidLen {
			d.DCID = hex.EncodeToString(b[1 : 1+cidLen])
		}
		return
	}
	d.Long = true
	if len(b) < 7 {
		return
	}
	if binary.BigEndian.Uint32(b[1:5]) == 0 {
		d.Type = "version_negotiation"
	} else {
		d.Type = [4]string{"initial", "0RTT", "handshake", "retry"}[(b[0]>>4)&3]
	}
	dl := int(b[5])
	if len(b) < 6+dl+1 {
		return
	}
	d.DCID = hex.EncodeToString(b[6 : 6+dl])
	sl := int(b[6+dl])
	if len(b) < 7+dl+sl {
		return
	}
	d.SCID = hex.EncodeToString(b[7+dl : 7+dl+sl])
	// Walk the coalesced long header packets to find a trailing 1-RTT one.
	for len(b) > 0 && b[0]&0x80 != 0 {
		if len(b) < 7 || binary.BigEndian.Uint32(b[1:5]) == 0 {
			return
		}
		typ := (b[0] >> 4) & 3
		off := 6 + int(b[5])
		if off >= len(b) {
			return
		}
		off += 1 + int(b[off])
		if typ == 3 { // retry: the rest of the datagram
			return
		}
		if typ == 0 { // initial: token
			tl, n := varint(b[min(off, len(b)):])
			if n == 0 {
				return
			}
			off += n + int(tl)
		}
		if off > len(b) {
			return
		}
		pl, n := varint(b[off:])
		if n == 0 || off+n+int(pl) > len(b) {
			return
		}
		b = b[off+n+int(pl):]
	}
	if len(b) >= 1+cidLen {
		d.TailLen = len(b)
		d.TailDCID = hex.EncodeToString(b[1 : 1+cidLen])
	}
}

// varint decodes a QUIC variable-length integer; n is 0 when b is short.
func varint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}

// Match pairs the server's 1-RTT qlog events with the captured datagrams
// they describe (a datagram's only packet, or the 1-RTT packet coalesced
// after a handshake's): a sent event with a datagram from the server, a received
// one with a datagram to it, with the same destination connection ID and
// size, in order (a window absorbs reordering between quic-go's
// logging and the socket). It returns how many 1-RTT events found their
// datagram. Long header packets themselves are not matched.
func Match(ds []*Datagram, server netip.AddrPort, events []PacketEvent) (matched, total int) {
	return match(ds, server, events, true)
}

// MatchClient is Match for the client's qlog: its sent events pair with
// datagrams to the server. It fills Datagram.ClientEvent.
func MatchClient(ds []*Datagram, server netip.AddrPort, events []PacketEvent) (matched, total int) {
	return match(ds, server, events, false)
}

func match(ds []*Datagram, server netip.AddrPort, events []PacketEvent, serverSide bool) (matched, total int) {
	slot := func(d *Datagram) **PacketEvent {
		if serverSide {
			return &d.Event
		}
		return &d.ClientEvent
	}
	const window = 256
	var from, to []*Datagram
	for _, d := range ds {
		if d.Long && d.TailLen == 0 {
			continue
		}
		if d.Src == server {
			from = append(from, d)
		} else {
			to = append(to, d)
		}
	}
	lo := map[bool]int{}
	for i := range events {
		e := &events[i]
		if e.Type != "1RTT" {
			continue
		}
		total++
		list := to
		if e.Sent == serverSide {
			list = from
		}
		for lo[e.Sent] < len(list) && *slot(list[lo[e.Sent]]) != nil {
			lo[e.Sent]++
		}
		for j := lo[e.Sent]; j < len(list) && j < lo[e.Sent]+window; j++ {
			d := list[j]
			size, dcid := d.Size, d.DCID
			if d.Long {
				size, dcid = d.TailLen, d.TailDCID
			}
			if *slot(d) == nil && size == e.Length && dcid == e.DCID {
				*slot(d) = e
				matched++
				break
			}
		}
	}
	return matched, total
}

// ClaimPaths replays an endpoint's qlog in time order and fills each
// packet event's Remote: the peer address the event's tuple stands for
// (tuple "" is the active path, others were assigned by tuple events).
// first is the connection's original peer address.
func ClaimPaths(events []PacketEvent, tuples []TupleEvent, first netip.AddrPort) {
	ti := 0
	ids := map[string]netip.AddrPort{"": first}
	for i := range events {
		for ti < len(tuples) && !tuples[ti].Time.After(events[i].Time) {
			ids[tuples[ti].ID] = tuples[ti].Remote
			ti++
		}
		events[i].Remote = ids[events[i].Tuple]
	}
}

// InFlightAtSwitch reports whether d is a packet the server packed for one
// path and wrote to another because it switched paths in between: quic-go
// v0.65's send queue reads the peer address when it writes, not when it
// packs, so such a packet carries the old path's connection ID to the new
// address. Under load a few do; the experiments count them apart.
func InFlightAtSwitch(d *Datagram, server netip.AddrPort, tuples []TupleEvent) bool {
	e := d.Event
	if e == nil || !e.Sent || d.Src != server || e.Remote == d.Dst {
		return false
	}
	for _, t := range tuples {
		if t.ID == "" && t.Remote == d.Dst && t.Time.After(e.Time) {
			return true
		}
	}
	return false
}
