package udpdns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/internal/capture"
)

// labServerAddr is where the experiments' DNS server listens: port 53 of
// the lab's own namespace (root there, so no privilege is needed), so that
// Wireshark dissects the captures as DNS with no "Decode As".
const labServerAddr = "127.0.0.1:53"

// wirePkt is a DNS datagram read back from a capture.
type wirePkt struct {
	p    *capture.Packet
	meta capture.Meta
	head Head
	msg  *dns.Msg // nil when it does not unpack
}

// dnsPackets returns the UDP datagrams of pkts that carry at least a DNS
// header, in capture order.
func dnsPackets(pkts []*capture.Packet) []wirePkt {
	var out []wirePkt
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoUDP || len(m.Payload) < headerLen {
			continue
		}
		h, _ := ParseHead(m.Payload)
		w := wirePkt{p: p, meta: m, head: h}
		msg := new(dns.Msg)
		if msg.Unpack(m.Payload) == nil {
			w.msg = msg
		}
		out = append(out, w)
	}
	return out
}

// keepPorts keeps UDP datagrams to or from any of ports, and every ICMP
// message (the lab's namespace has no other traffic).
func keepPorts(ports ...uint16) func(*capture.Packet) bool {
	return func(p *capture.Packet) bool {
		m, ok := p.Decode()
		if !ok {
			return false
		}
		if m.Proto == capture.ProtoICMP || m.Proto == capture.ProtoICMPv6 {
			return true
		}
		for _, port := range ports {
			if m.Involves(port) {
				return true
			}
		}
		return false
	}
}

// question renders "id=0x3a2f q1.synth.lab. A".
func (w wirePkt) question() string {
	name := "?"
	if w.head.HasQuestion {
		name = wireName(w.head.QName)
	}
	return fmt.Sprintf("id=%#04x %s %s", w.head.ID, name, dns.TypeToString[w.head.QType])
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

// icmpUnreachable decodes an ICMPv4 destination-unreachable message: its
// code and the UDP datagram it quotes (addresses, ports and whatever of the
// payload was quoted).
func icmpUnreachable(p *capture.Packet) (code uint8, src, dst netip.AddrPort, quoted []byte, ok bool) {
	m, ok := p.Decode()
	if !ok || m.Proto != capture.ProtoICMP || len(m.Payload) < 8+20+8 || m.Payload[0] != 3 {
		return 0, src, dst, nil, false
	}
	code = m.Payload[1]
	ip := m.Payload[8:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != capture.ProtoUDP {
		return 0, src, dst, nil, false
	}
	udp := ip[ihl:]
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp[0:2]))
	dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:4]))
	return code, src, dst, udp[8:], true
}

// percentile of sorted durations in ms.
func percentileMS(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

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
