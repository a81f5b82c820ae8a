package dnsexp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// wirePkt is a DNS datagram read back from a capture.
type wirePkt struct {
	p    *capture.Packet
	meta capture.Meta
	head udpdns.Head
	msg  *dns.Msg // nil when it does not unpack
}

// dnsPackets returns the UDP datagrams of pkts that carry at least a DNS
// header, in capture order.
func dnsPackets(pkts []*capture.Packet) []wirePkt {
	var out []wirePkt
	for _, p := range pkts {
		if w, ok := dnsPacket(p); ok {
			out = append(out, w)
		}
	}
	return out
}

// dnsPacket reads one packet as a DNS datagram.
func dnsPacket(p *capture.Packet) (wirePkt, bool) {
	m, ok := p.Decode()
	if !ok || m.Proto != capture.ProtoUDP || len(m.Payload) < udpdns.HeaderLen {
		return wirePkt{}, false
	}
	h, _ := udpdns.ParseHead(m.Payload)
	w := wirePkt{p: p, meta: m, head: h}
	msg := new(dns.Msg)
	if msg.Unpack(m.Payload) == nil {
		w.msg = msg
	}
	return w, true
}

// name is the QNAME as sent, lower-cased: the query's identity across
// attempts.
func (w wirePkt) name() string { return strings.ToLower(w.head.Name()) }

// question renders "id=0x3a2f q1.synth.lab. A".
func (w wirePkt) question() string {
	name := w.head.Name()
	if name == "" {
		name = "?"
	}
	q := fmt.Sprintf("id=%#04x %s %s", w.head.ID, name, dns.TypeToString[w.head.QType])
	if w.head.QClass != dns.ClassINET && w.head.HasQuestion {
		// A class other than IN is the point of a forgery: say it.
		class, ok := dns.ClassToString[w.head.QClass]
		if !ok {
			class = fmt.Sprintf("CLASS%d", w.head.QClass)
		}
		q += " QCLASS=" + class
	}
	return q
}

// answer renders the answer section briefly: "A 127.129.2.3" or the rcode.
func (w wirePkt) answer() string {
	if w.msg == nil {
		return "(malformed)"
	}
	var parts []string
	for _, rr := range w.msg.Answer {
		switch v := rr.(type) {
		case *dns.A:
			parts = append(parts, "A "+v.A.String())
		case *dns.AAAA:
			parts = append(parts, "AAAA "+v.AAAA.String())
		default:
			parts = append(parts, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if len(parts) == 0 {
		return dns.RcodeToString[w.msg.Rcode]
	}
	return strings.Join(parts, ", ")
}

// icmpUnreach is an ICMPv4 destination-unreachable message read back from
// a capture: its code and the UDP datagram it quotes.
type icmpUnreach struct {
	code     uint8
	src, dst netip.AddrPort // of the quoted datagram
	quoted   udpdns.Head    // its DNS header, as far as it was quoted
}

// icmpUnreachable decodes an ICMPv4 destination-unreachable message.
func icmpUnreachable(p *capture.Packet) (icmpUnreach, bool) {
	m, ok := p.Decode()
	if !ok || m.Proto != capture.ProtoICMP || len(m.Payload) < 8+20+8 || m.Payload[0] != 3 {
		return icmpUnreach{}, false
	}
	ip := m.Payload[8:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != capture.ProtoUDP {
		return icmpUnreach{}, false
	}
	udp := ip[ihl:]
	u := icmpUnreach{code: m.Payload[1],
		src: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp[0:2])),
		dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:4]))}
	u.quoted, _ = udpdns.ParseHead(udp[8:])
	return u, true
}

// portUnreachable is ICMP code 3.
const portUnreachable = 3

// answerA returns the first A record of a reply, or the zero Addr.
func answerA(m *dns.Msg) netip.Addr {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			return ip
		}
	}
	return netip.Addr{}
}

// percentileMS of sorted durations in ms.
func percentileMS(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}

// commentRest comments every packet that has none yet, so that every
// packet of a DNS capture says what it is.
func commentRest(pkts []*capture.Packet) {
	for _, p := range pkts {
		if len(p.Comments) == 0 {
			p.Comment(annotate.Append(describePacket(p), restBlock(p)))
		}
	}
}

// describePacket says what a packet the experiment did not draw is.
func describePacket(p *capture.Packet) string {
	if u, ok := icmpUnreachable(p); ok {
		return fmt.Sprintf("ICMP destination unreachable (code %d) from the kernel: nothing listens on %v; quotes the datagram %v → %v id=%#04x",
			u.code, u.dst, u.src, u.dst, u.quoted.ID)
	}
	m, ok := p.Decode()
	if !ok {
		return "not decoded"
	}
	if (m.Proto == capture.ProtoICMP || m.Proto == capture.ProtoICMPv6) && len(m.Payload) > 0 {
		return fmt.Sprintf("ICMP type %d from %v to %v", m.Payload[0], m.Src.Addr(), m.Dst.Addr())
	}
	w, ok := dnsPacket(p)
	if !ok {
		return fmt.Sprintf("%v → %v: not DNS", m.Src, m.Dst)
	}
	kind := "query"
	if w.head.Response() {
		kind = "reply"
	}
	return fmt.Sprintf("%s %s from %v to %v (not part of the exchange the experiment drew)", kind, w.question(), m.Src, m.Dst)
}
