package quicexp

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
)

// The qlog records the analysis joins with the capture, as quicconn's
// tracer keeps them, and the datagrams an endpoint's sockets wrote.
type (
	PacketEvent = quicconn.PacketEvent
	TupleEvent  = quicconn.TupleEvent
	Write       = quicconn.Write
)

// Datagram is one captured UDP datagram of a QUIC connection with what its
// cleartext headers show, and — once correlated — the qlog records both
// endpoints logged for each QUIC packet in it: the per-packet record the
// experiments check and the captures' comments are made of.
type Datagram struct {
	Pkt      *capture.Packet
	Index    int // in the capture, from 0
	Time     time.Time
	Src, Dst netip.AddrPort
	Size     int    // UDP payload bytes
	Sum      uint32 // CRC32C of the UDP payload, as quic-go's qlog logs it
	Long     bool   // long header (handshake); false: 1-RTT short header
	Type     string // qlog packet type of the first packet
	DCID     string // hex, from the cleartext header
	SCID     string // hex, long headers only
	// TailLen and TailDCID describe a 1-RTT packet coalesced after the
	// long header packets of a handshake datagram (0: none).
	TailLen  int
	TailDCID string
	// Parts are the QUIC packets of the datagram, coalesced in order.
	Parts []Part
	// CopyOf, for a datagram whose bytes repeat another's sent from the
	// client's own address (an attacker's replayed copy), is that
	// original; nil otherwise.
	CopyOf *Datagram
	// Event is the server's qlog record of this datagram's 1-RTT packet
	// (sent or received), nil when unmatched; ClientEvent the client's.
	Event, ClientEvent *PacketEvent

	payload []byte
}

// Part is one QUIC packet of a captured datagram: its cleartext header,
// and the qlog records of the endpoint that sent it and of the one that
// received it (a packet_received, or a packet_dropped for one it
// discarded), nil where none matched.
type Part struct {
	quicconn.Header
	Sent, Recv *PacketEvent
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
		d := &Datagram{Pkt: p, Index: i, Time: p.Time, Src: m.Src, Dst: m.Dst, Size: len(m.Payload), payload: m.Payload,
			Sum: quicconn.Checksum(m.Payload)}
		parseHeader(d, m.Payload, cidLen)
		out = append(out, d)
	}
	return out
}

// parseHeader fills d's cleartext fields from its payload b.
func parseHeader(d *Datagram, b []byte, cidLen int) {
	for _, h := range quicconn.ParseHeaders(b, cidLen) {
		d.Parts = append(d.Parts, Part{Header: h})
	}
	if len(d.Parts) == 0 {
		return
	}
	first := d.Parts[0]
	d.Type, d.DCID, d.SCID = first.Type, first.DCID, first.SCID
	d.Long = first.Long()
	if last := d.Parts[len(d.Parts)-1]; len(d.Parts) > 1 && !last.Long() {
		d.TailLen, d.TailDCID = last.Len, last.DCID
	}
}

// Logs are what the two endpoints of one connection logged in qlog:
// their packet events (sent and received, with paths; see
// ConnTrace.PathedPackets) and their packet_dropped events.
type Logs struct {
	Client, Server               []PacketEvent
	ClientDropped, ServerDropped []PacketEvent
	// ClientWrites and ServerWrites, when recorded, are the datagrams each
	// endpoint's sockets wrote, in order (ClientConfig.RecordWrites).
	ClientWrites, ServerWrites []Write
}

// LogsOf reads the logs of the client's and the server's traces (either
// may be nil).
func LogsOf(client, server *quicconn.ConnTrace) Logs {
	var l Logs
	if client != nil {
		l.Client, l.ClientDropped = client.PathedPackets(), client.Dropped()
	}
	if server != nil {
		l.Server, l.ServerDropped = server.PathedPackets(), server.Dropped()
	}
	return l
}

// Correlation says how much of each endpoint's qlog found its packet in
// the capture.
type Correlation struct {
	// ClientMatched of ClientTotal packet events (sent and received) of
	// the client's qlog describe a captured packet; the same for the server.
	ClientMatched, ClientTotal int
	ServerMatched, ServerTotal int
	// Copies is how many datagrams repeat another's bytes from a forged
	// address.
	Copies int
}

// matchWindow bounds how far ahead of the oldest unmatched datagram a
// record may find its own: quic-go's sends are FIFO except path probes,
// which it writes at once.
const matchWindow = 256

// Correlate pairs the endpoints' qlog records with the captured datagrams
// to or from server (ds, in capture order) and fills each Part's Sent and
// Recv, and each Datagram's Event and ClientEvent.
//
// The packet number is encrypted on the wire, and a datagram can be lost
// between an endpoint and the capture (a NAT's socket buffer), so a
// sender's record is found in two exact steps when the endpoint's writes
// were recorded: each qlog packet_sent to the datagram its socket wrote
// next with the same cleartext headers (type, destination connection ID,
// length; qlog and socket see the same packets in the same order, path
// probes aside), and each written datagram to the captured one with the
// same CRC32C and size. Without a record of writes, sent records are
// matched to captured datagrams in order by the cleartext headers alone
// (and the datagram CRC32C quic-go logs for long header packets).
//
// The receiver's record of a packet is the one with the same packet
// number space and number (a packet_received, or a packet_dropped for a
// duplicate), taken in capture order. Datagrams to the server from an
// address forged reports true for (an attacker's replays) are not the
// client's: each is matched to the client's datagram with the same
// bytes, and takes its sender's record.
func Correlate(ds []*Datagram, server netip.AddrPort, logs Logs, forged func(netip.AddrPort) bool) Correlation {
	var c Correlation
	isForged := func(d *Datagram) bool { return forged != nil && d.Dst == server && forged(d.Src) }
	toServer := func(d *Datagram) bool { return d.Dst == server && !isForged(d) }
	fromServer := func(d *Datagram) bool { return d.Src == server }
	attachSent(ds, logs.Client, logs.ClientWrites, toServer)
	attachSent(ds, logs.Server, logs.ServerWrites, fromServer)
	for i, d := range ds {
		if !isForged(d) {
			continue
		}
		for _, o := range ds[i+1 : min(len(ds), i+1+matchWindow)] {
			if toServer(o) && bytes.Equal(o.payload, d.payload) {
				d.CopyOf = o
				c.Copies++
				for k := range d.Parts {
					if k < len(o.Parts) {
						d.Parts[k].Sent = o.Parts[k].Sent
					}
				}
				break
			}
		}
	}
	joinReceived(ds, logs.Server, logs.ServerDropped, func(d *Datagram) bool { return d.Dst == server })
	joinReceived(ds, logs.Client, logs.ClientDropped, fromServer)
	for _, d := range ds {
		for k := range d.Parts {
			p := &d.Parts[k]
			if p.Type != "1RTT" {
				continue
			}
			if d.Dst == server {
				d.Event, d.ClientEvent = p.Recv, p.Sent
			} else {
				d.Event, d.ClientEvent = p.Sent, p.Recv
			}
		}
	}
	c.ClientMatched, c.ClientTotal = counted(ds, logs.Client)
	c.ServerMatched, c.ServerTotal = counted(ds, logs.Server)
	return c
}

// attachSent gives each part of the datagrams from reports true for the
// sender's qlog record; see Correlate.
func attachSent(ds []*Datagram, events []PacketEvent, writes []Write, from func(*Datagram) bool) {
	if len(writes) == 0 {
		matchSent(ds, events, from)
		return
	}
	byWrite := recordsOfWrites(events, writes)
	type key struct {
		sum  uint32
		size int
	}
	queue := map[key][]*Datagram{}
	for _, d := range ds {
		if from(d) {
			k := key{d.Sum, d.Size}
			queue[k] = append(queue[k], d)
		}
	}
	for i, w := range writes {
		k := key{w.Sum, w.Size}
		q := queue[k]
		if len(q) == 0 {
			continue // lost before the capture's leg
		}
		d := q[0]
		queue[k] = q[1:]
		for p := range d.Parts {
			if p < len(byWrite[i]) {
				d.Parts[p].Sent = byWrite[i][p]
			}
		}
	}
}

// recordsOfWrites pairs an endpoint's packet_sent records with the parts
// of the datagrams its sockets wrote: in order, each part with the first
// record not yet taken with the same type, destination connection ID and
// length (and datagram CRC32C when logged), preferring one whose path
// goes where the datagram went. A record may come a little out of order
// (quic-go writes path probes at once, past its send queue): the search
// looks up to matchWindow records ahead of the oldest one not yet taken.
func recordsOfWrites(events []PacketEvent, writes []Write) [][]*PacketEvent {
	var sent []*PacketEvent
	for i := range events {
		if events[i].Sent {
			sent = append(sent, &events[i])
		}
	}
	taken := make([]bool, len(sent))
	out := make([][]*PacketEvent, len(writes))
	lo := 0
	for i, w := range writes {
		out[i] = make([]*PacketEvent, len(w.Headers))
		for k, p := range w.Headers {
			for lo < len(sent) && taken[lo] {
				lo++
			}
			best := -1
			for j := lo; j < len(sent) && j < lo+matchWindow; j++ {
				e := sent[j]
				if taken[j] || e.Type != p.Type || e.DCID != p.DCID || e.Length != p.Len || (e.Checksum != 0 && e.Checksum != w.Sum) {
					continue
				}
				if best < 0 {
					best = j
				}
				if e.Remote == w.To {
					best = j
					break
				}
			}
			if best >= 0 {
				taken[best] = true
				out[i][k] = sent[best]
			}
		}
	}
	return out
}

type slot struct {
	d *Datagram
	k int
}

// matchSent gives each sent event the part of a datagram (those from
// reports true for) it describes.
func matchSent(ds []*Datagram, events []PacketEvent, from func(*Datagram) bool) {
	var slots []slot
	for _, d := range ds {
		if from(d) {
			for k := range d.Parts {
				slots = append(slots, slot{d, k})
			}
		}
	}
	lo := 0
	for i := range events {
		e := &events[i]
		if !e.Sent {
			continue
		}
		for lo < len(slots) && slots[lo].d.Parts[slots[lo].k].Sent != nil {
			lo++
		}
		for j := lo; j < len(slots) && j < lo+matchWindow; j++ {
			s := slots[j]
			p := &s.d.Parts[s.k]
			if p.Sent == nil && p.Type == e.Type && p.DCID == e.DCID && p.Len == e.Length && (e.Checksum == 0 || e.Checksum == s.d.Sum) {
				p.Sent = e
				break
			}
		}
	}
}

// space is a packet's packet number space.
func space(typ string) string {
	switch typ {
	case "initial", "handshake":
		return typ
	}
	return "application"
}

type pnKey struct {
	space string
	pn    int64
}

// joinReceived gives each part sent to the receiver (to reports true)
// the receiver's record with the same packet number: received and
// dropped events in the order the receiver logged them, taken in capture
// order, so a packet that arrived twice (a replayed copy first) gets the
// packet_received first and the packet_dropped (duplicate) second.
func joinReceived(ds []*Datagram, events, dropped []PacketEvent, to func(*Datagram) bool) {
	var all []*PacketEvent
	for i := range events {
		if !events[i].Sent {
			all = append(all, &events[i])
		}
	}
	for i := range dropped {
		if dropped[i].PN >= 0 && dropped[i].Type != "" {
			all = append(all, &dropped[i])
		}
	}
	slices.SortStableFunc(all, func(a, b *PacketEvent) int { return a.Seq - b.Seq })
	queue := map[pnKey][]*PacketEvent{}
	for _, e := range all {
		k := pnKey{space(e.Type), e.PN}
		queue[k] = append(queue[k], e)
	}
	for _, d := range ds {
		if !to(d) {
			continue
		}
		for k := range d.Parts {
			p := &d.Parts[k]
			if p.Sent == nil || p.Recv != nil {
				continue
			}
			key := pnKey{space(p.Sent.Type), p.Sent.PN}
			if q := queue[key]; len(q) > 0 {
				p.Recv, queue[key] = q[0], q[1:]
			}
		}
	}
}

// counted is how many of events (sent and received) are the record of a
// captured packet.
func counted(ds []*Datagram, events []PacketEvent) (matched, total int) {
	seen := map[*PacketEvent]bool{}
	for _, d := range ds {
		for _, p := range d.Parts {
			seen[p.Sent], seen[p.Recv] = true, true
		}
	}
	for i := range events {
		total++
		if seen[&events[i]] {
			matched++
		}
	}
	return matched, total
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
		if t.ID == "" && t.Remote == d.Dst && t.Seq > e.Seq {
			return true
		}
	}
	return false
}

// firstOf is the first datagram f reports true for, nil if none.
func firstOf(ds []*Datagram, f func(*Datagram) bool) *Datagram {
	for _, d := range ds {
		if f(d) {
			return d
		}
	}
	return nil
}

// peerOf is the client end of a datagram to or from server.
func peerOf(d *Datagram, server netip.AddrPort) netip.AddrPort {
	if d.Src == server {
		return d.Dst
	}
	return d.Src
}

// describe names a datagram for a check's detail.
func describe(d *Datagram) string {
	if d == nil {
		return "none"
	}
	if d.Event == nil {
		return fmt.Sprintf("#%d %d bytes DCID %s, no qlog record", d.Index+1, d.Size, d.DCID)
	}
	return fmt.Sprintf("#%d %d bytes DCID %s [%s]", d.Index+1, d.Size, d.DCID, strings.Join(d.Event.Frames, " "))
}

func dcidOf(d *Datagram) string {
	if d == nil {
		return "none"
	}
	return d.DCID
}

// keys are a map's keys, sorted.
func keys[V any](m map[string]V) []string {
	out := slices.Collect(maps.Keys(m))
	slices.Sort(out)
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
