package dnsexp

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// Small captures for the analysis steps' tests, built packet by packet as
// the kernel puts them on lo (Ethernet framing, IPv4; no checksums: the
// analysis does not read them).

var (
	srvAP = netip.MustParseAddrPort("127.0.0.1:53")
	cliAP = netip.MustParseAddrPort("127.0.0.1:40000")
)

// ipv4 is an IPv4 packet from src to dst carrying l4 as proto.
func ipv4(src, dst netip.Addr, proto byte, l4 []byte) []byte {
	b := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(20+len(l4)))
	s4, d4 := src.As4(), dst.As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	return append(b, l4...)
}

// udp4 is an IPv4/UDP packet.
func udp4(src, dst netip.AddrPort, payload []byte) []byte {
	u := binary.BigEndian.AppendUint16(nil, src.Port())
	u = binary.BigEndian.AppendUint16(u, dst.Port())
	u = binary.BigEndian.AppendUint16(u, uint16(8+len(payload)))
	u = append(u, 0, 0)
	return ipv4(src.Addr(), dst.Addr(), capture.ProtoUDP, append(u, payload...))
}

// frame puts an IPv4 packet in an Ethernet frame, as a captured packet.
func frame(ip []byte) *capture.Packet {
	return &capture.Packet{Data: append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00}, ip...)}
}

// udpPkt is a captured UDP datagram.
func udpPkt(src, dst netip.AddrPort, payload []byte) *capture.Packet {
	return frame(udp4(src, dst, payload))
}

// icmpPkt is a captured ICMP port unreachable from the kernel at from,
// quoting the IPv4 packet quoted (its header and first 8 bytes of UDP and
// whatever of the payload follows).
func icmpPkt(from, to netip.Addr, quoted []byte) *capture.Packet {
	return frame(ipv4(from, to, capture.ProtoICMP, append([]byte{3, portUnreachable, 0, 0, 0, 0, 0, 0}, quoted...)))
}

// dnsQuery is a query for name with ID id.
func dnsQuery(t testing.TB, id uint16, name string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Id = id
	return pack(t, m)
}

// dnsAnswer is the built-in zone's answer to that query: A SynthA(name).
func dnsAnswer(t testing.TB, id uint16, name string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Id = id
	return pack(t, udpdns.BuiltinZone().Answer(m))
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// q and a are a query from the client and an answer from the server.
func q(t testing.TB, id uint16, name string) *capture.Packet {
	return udpPkt(cliAP, srvAP, dnsQuery(t, id, name))
}

func a(t testing.TB, id uint16, name string) *capture.Packet {
	return udpPkt(srvAP, cliAP, dnsAnswer(t, id, name))
}

// saidOf is a verdicts holding the client's events given.
func saidOf(events ...udpdns.Event) *verdicts {
	var v verdicts
	for _, e := range events {
		v.trace(e)
	}
	return &v
}

// allCommented fails the test for each packet without a comment.
func allCommented(t *testing.T, pkts []*capture.Packet) {
	t.Helper()
	commentRest(pkts)
	for i, p := range pkts {
		if len(p.Comments) == 0 {
			t.Errorf("packet %d has no comment", i+1)
		}
	}
}

// comments joins every packet's comments, one line per packet.
func comments(pkts []*capture.Packet) string {
	var b strings.Builder
	for _, p := range pkts {
		b.WriteString(strings.Join(p.Comments, " | "))
		b.WriteByte('\n')
	}
	return b.String()
}

// ip4 is a shorthand for a loopback address.
func ip4(s string) netip.Addr { return netip.MustParseAddr(s) }

func netipAP(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
