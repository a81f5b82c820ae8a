package quicexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn/nat"
)

// The comment every captured packet carries: a QUIC datagram's packets as
// both endpoints' qlogs record them, a TCP segment as Wireshark numbers it
// and who sent it.

// CommentDatagrams gives every captured datagram of ds one comment: its
// QUIC packets as the endpoints logged them (see DatagramComment).
func CommentDatagrams(ds []*Datagram, server netip.AddrPort) {
	for _, d := range ds {
		d.Pkt.Comment(DatagramComment(d, server))
	}
}

// DatagramComment describes a correlated datagram as the endpoints'
// qlogs record it: each QUIC packet's type, packet number, frames and
// destination connection ID, then the path on which the sender says it
// sent it and the receiver says it received it, each "as logged by" that
// endpoint. What no qlog recorded is said so, with what the cleartext
// header shows.
func DatagramComment(d *Datagram, server netip.AddrPort) string {
	sender, receiver := "client", "server"
	if d.Src == server {
		sender, receiver = "server", "client"
	}
	var parts []string
	var sent, recv *PacketEvent
	for _, p := range d.Parts {
		e := p.Sent
		if e == nil {
			e = p.Recv
		}
		parts = append(parts, describePart(p, e))
		if sent == nil {
			sent = p.Sent
		}
		if recv == nil {
			recv = p.Recv
		}
	}
	if len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("not a QUIC packet the header parser understands (%d B)", d.Size))
	}
	var b strings.Builder
	b.WriteString(strings.Join(parts, " + "))
	switch {
	case d.CopyOf != nil:
		fmt.Fprintf(&b, "; a byte-identical copy of the client's datagram (frame %d), sent from %s by an attacker, not by the client", d.CopyOf.Index+1, d.Src)
	case sent != nil:
		fmt.Fprintf(&b, "; %s sent it on %s → %s (as logged by the %s)", sender, sent.Local, sent.Remote, sender)
	default:
		fmt.Fprintf(&b, "; %s → %s on the wire; not in the %s's qlog as sent", d.Src, d.Dst, sender)
	}
	switch {
	case recv != nil && recv.Dropped != "":
		fmt.Fprintf(&b, "; the %s dropped it: %s (as logged by the %s)", receiver, recv.Dropped, receiver)
	case recv != nil:
		fmt.Fprintf(&b, "; %s received it on %s → %s (as logged by the %s)", receiver, recv.Remote, recv.Local, receiver)
	default:
		fmt.Fprintf(&b, "; the %s's qlog has no record of receiving it", receiver)
	}
	return annotate.Append(b.String(), datagramBlock(d, sender, sent, recv))
}

// datagramBlock is a datagram's machine-readable part (lab/annotate): who
// sent it, on which path as the sender logged it, its DCID, each packet's
// number as logged, and what the receiver's qlog made of it.
func datagramBlock(d *Datagram, sender string, sent, recv *PacketEvent) annotate.Block {
	if d.CopyOf != nil {
		sender = "attacker"
	}
	b := annotate.Block{}.Str(annotate.Side, sender)
	if sent != nil && d.CopyOf == nil {
		b = b.Str(annotate.Path, fmt.Sprintf("%s → %s", sent.Local, sent.Remote))
	} else {
		b = b.Str(annotate.Path, fmt.Sprintf("%s → %s", d.Src, d.Dst))
	}
	for _, p := range d.Parts {
		if p.DCID != "" {
			b = b.Str(annotate.DCID, p.DCID)
			break
		}
	}
	for _, p := range d.Parts {
		e := p.Sent
		if e == nil {
			e = p.Recv
		}
		if e != nil && e.PN >= 0 {
			b = b.Uint(annotate.PN, uint64(e.PN))
		}
	}
	switch {
	case recv != nil && recv.Dropped != "":
		b = b.Str(annotate.Verdict, "dropped").Str(annotate.Reason, recv.Dropped)
	case recv != nil:
		b = b.Str(annotate.Verdict, "received")
	default:
		b = b.Str(annotate.Verdict, "not logged")
	}
	if d.CopyOf != nil {
		b = b.Str(annotate.Event, "forged copy")
	}
	return b
}

// describePart is one QUIC packet: "1-RTT pn 57 [ACK 0-55, STREAM 0 off
// 1200 len 1100] DCID …", from the qlog record e when there is one,
// otherwise from the cleartext header alone.
func describePart(p Part, e *PacketEvent) string {
	s := packetTypeName(p.Type)
	if e != nil {
		s += fmt.Sprintf(" pn %d", e.PN)
		if len(e.Detail) > 0 {
			s += " [" + strings.Join(e.Detail, ", ") + "]"
		}
	}
	if p.DCID != "" {
		s += " DCID " + p.DCID
	}
	if p.SCID != "" {
		s += " SCID " + p.SCID
	}
	if e == nil {
		s += fmt.Sprintf(" (%d B; no qlog record: packet number and frames are encrypted)", p.Len)
	}
	return s
}

func packetTypeName(t string) string {
	switch t {
	case "initial":
		return "Initial"
	case "handshake":
		return "Handshake"
	case "0RTT":
		return "0-RTT"
	case "1RTT":
		return "1-RTT"
	case "retry":
		return "Retry"
	case "version_negotiation":
		return "Version Negotiation"
	}
	return "QUIC packet"
}

// tcpSegment is a captured TCP segment of the contrast with its sequence
// numbers relative to its direction's base, as Wireshark shows them.
type tcpSegment struct {
	p              *capture.Packet
	index          int // in the capture, from 0
	m              capture.Meta
	relSeq, relAck uint32
}

type tcpDir struct{ src, dst netip.AddrPort }

// commentTCP comments every captured TCP segment of the contrast (those
// to or from server) and returns them: its flags and its sequence and
// acknowledgment numbers relative to each direction's base as Wireshark
// shows them (the ISS for a connection whose SYN is captured, given once
// on the SYN and the SYN,ACK; one before the first sequence number seen
// for the NAT's new 4-tuple, which has no handshake), who sent it (the
// NAT's outside socket, the server's kernel, the NAT's raw socket from the
// new port) and what its bytes are. The crafted segment also gives its
// numbers in the old connection's terms.
func commentTCP(pkts []*capture.Packet, outside, server netip.AddrPort, rb nat.TCPRebinding) []*tcpSegment {
	var segs []*tcpSegment
	base := map[tcpDir]uint32{}
	for i, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP || !m.Involves(server.Port()) {
			continue
		}
		segs = append(segs, &tcpSegment{p: p, index: i, m: m})
		d := tcpDir{m.Src, m.Dst}
		if _, ok := base[d]; !ok {
			base[d] = m.Seq
			if m.Flags&capture.FlagSYN == 0 {
				base[d] = m.Seq - 1 // Wireshark: a stream joined mid-way starts at 1
			}
		}
	}
	old := tcpDir{outside, server}
	for _, g := range segs {
		m := g.m
		d, rev := tcpDir{m.Src, m.Dst}, tcpDir{m.Dst, m.Src}
		g.relSeq = m.Seq - base[d]
		nums := fmt.Sprintf("seq %d len %d win %d", g.relSeq, len(m.Payload), m.Window)
		if m.Flags&capture.FlagACK != 0 {
			if b, ok := base[rev]; ok {
				g.relAck = m.Ack - b
				nums = fmt.Sprintf("seq %d ack %d len %d win %d", g.relSeq, g.relAck, len(m.Payload), m.Window)
			} else {
				nums = fmt.Sprintf("seq %d ack %d (raw) len %d win %d", g.relSeq, m.Ack, len(m.Payload), m.Window)
			}
		}
		var who string
		switch {
		case d == old:
			who = fmt.Sprintf("the NAT's outside socket %s → the server %s", outside, server)
			switch {
			case m.Flags&capture.FlagSYN != 0:
				who += fmt.Sprintf(" (ISS %d; sequence numbers relative to it, as Wireshark shows them)", m.Seq)
			case len(m.Payload) > 0:
				who += fmt.Sprintf(": the client's bytes %d–%d, relayed", g.relSeq-1, g.relSeq-1+uint32(len(m.Payload))-1)
			}
		case rev == old:
			who = fmt.Sprintf("the server's kernel %s → the NAT's outside socket %s", server, outside)
			if m.Flags&capture.FlagSYN != 0 {
				who += fmt.Sprintf(" (ISS %d; sequence numbers relative to it, as Wireshark shows them)", m.Seq)
			} else if m.Flags&capture.FlagACK != 0 && g.relAck > 0 {
				who += fmt.Sprintf(": acknowledges the client's first %d bytes", g.relAck-1)
			}
		case m.Src == rb.New && m.Dst == server:
			who = fmt.Sprintf("crafted by the NAT on a raw socket from its new port %s → the server %s: the client's next bytes after the rebinding", rb.New, server)
			if b, ok := base[old]; ok && rb.SeqKnown {
				who += fmt.Sprintf(", numbered as the old connection %s would: seq %d ack %d in its terms (raw seq %d ack %d; Wireshark numbers this new 4-tuple from 1)",
					outside, m.Seq-b, m.Ack-base[tcpDir{server, outside}], m.Seq, m.Ack)
			} else if !rb.SeqKnown {
				who += "; the NAT did not see the old connection's handshake, so its numbers are zeros"
			}
		case m.Src == server && m.Dst == rb.New:
			who = fmt.Sprintf("the server's kernel %s → %s: no socket has this 4-tuple, so it resets it (a TCP connection is its 4-tuple)", server, rb.New)
		default:
			who = fmt.Sprintf("%s → %s: not a segment of the NAT's connections", m.Src, m.Dst)
		}
		side := "server"
		switch {
		case d == old:
			side = "nat"
		case m.Src == rb.New && m.Dst == server:
			side = "nat"
		case m.Src != server:
			side = "other"
		}
		g.p.Comment(annotate.Append(fmt.Sprintf("TCP [%s] %s; %s", tcpFlagNames(m.Flags), nums, who),
			annotate.Block{}.Str(annotate.Side, side).Str(annotate.Kind, "tcp").Str(annotate.Path, fmt.Sprintf("%s → %s", m.Src, m.Dst))))
	}
	return segs
}

// tcpFlagNames spells TCP flags as Wireshark does: "SYN, ACK".
func tcpFlagNames(f uint8) string {
	var n []string
	for _, x := range []struct {
		bit  uint8
		name string
	}{{capture.FlagFIN, "FIN"}, {capture.FlagSYN, "SYN"}, {capture.FlagRST, "RST"}, {capture.FlagPSH, "PSH"}, {capture.FlagACK, "ACK"}, {capture.FlagURG, "URG"}} {
		if f&x.bit != 0 {
			n = append(n, x.name)
		}
	}
	if len(n) == 0 {
		return "<none>"
	}
	return strings.Join(n, ", ")
}

// sideBlock is the [statelab …] block of a datagram whose comment an
// experiment writes itself: who sent it, on which 4-tuple, the DCID of
// its first packet, and what happens at it (event; "" for nothing).
func sideBlock(d *Datagram, side, event string) annotate.Block {
	b := annotate.Block{}.Str(annotate.Side, side).Str(annotate.Path, fmt.Sprintf("%s → %s", d.Src, d.Dst))
	if d.DCID != "" {
		b = b.Str(annotate.DCID, d.DCID)
	}
	if event != "" {
		b = b.Str(annotate.Event, event)
	}
	return b
}

// commentSide comments d with text and its sideBlock.
func commentSide(d *Datagram, text, side, event string) {
	d.Pkt.Comment(annotate.Append(text, sideBlock(d, side, event)))
}
