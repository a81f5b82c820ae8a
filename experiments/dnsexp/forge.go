package dnsexp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns"
	"golang.org/x/sys/unix"
)

// forger sends UDP datagrams with any IPv4 source address and port it likes,
// through a raw socket: the off-path attacker of the spoofing experiment.
// It needs CAP_NET_RAW, which the lab's namespace grants.
type forger struct {
	fd   int
	buf  []byte
	sent int
}

// newForger opens the raw socket.
func newForger() (*forger, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("dnsexp: raw socket for forged replies (needs CAP_NET_RAW): %w", err)
	}
	return &forger{fd: fd, buf: make([]byte, 0, 1500)}, nil
}

// Send writes payload as a UDP datagram from src to dst. Only loopback
// destinations are allowed.
func (f *forger) Send(src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Is4() || !dst.Addr().Is4() || !dst.Addr().IsLoopback() {
		return fmt.Errorf("dnsexp: forger sends IPv4 to loopback only, not %v → %v", src, dst)
	}
	total := 20 + 8 + len(payload)
	b := f.buf[:0]
	b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0x40, 0, 64, unix.IPPROTO_UDP, 0, 0)
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[10:], ipChecksum(b[:20]))
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0) // no UDP checksum: allowed over IPv4
	b = append(b, payload...)
	f.buf = b
	if err := unix.Sendto(f.fd, b, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		return fmt.Errorf("dnsexp: forging %v → %v: %w", src, dst, err)
	}
	f.sent++
	return nil
}

// Sent counts datagrams forged.
func (f *forger) Sent() int { return f.sent }

// Close closes the raw socket.
func (f *forger) Close() error { return unix.Close(f.fd) }

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// poisonA is the address every forged answer carries.
var poisonA = netip.AddrFrom4([4]byte{6, 6, 6, 6})

// forgeryKind is one way of forging a reply to an observed query, and the
// reason the client must give for rejecting it.
type forgeryKind struct {
	name string
	want udpdns.Reason
	// make returns the forged datagram's source and payload for query q
	// answered by server.
	make func(q *dns.Msg, server netip.AddrPort, randomID func() uint16) (netip.AddrPort, []byte)
}

// poisonReply is a forged answer to q: ID id, the question given, one A
// record poisonA.
func poisonReply(q *dns.Msg, id uint16, name string, qtype, qclass uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Id = id
	m.Response, m.Authoritative = true, true
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: qclass}}
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 86400},
		A: net.IP(poisonA.AsSlice())}}
	return m
}

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// forgeryKinds are the forgeries of dns/spoofing, one per way a reply can
// fail RFC 5452 §9.1.
var forgeryKinds = []forgeryKind{
	{"random ID, right question and source", udpdns.WrongID, func(q *dns.Msg, srv netip.AddrPort, rid func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, rid(), qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right ID, wrong QNAME", udpdns.WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, "evil."+udpdns.SynthSuffix, qq.Qtype, qq.Qclass))
	}},
	{"right ID, wrong QTYPE", udpdns.WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, qq.Name, dns.TypeAAAA, qq.Qclass))
	}},
	{"right ID, wrong QCLASS", udpdns.WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, dns.ClassCHAOS))
	}},
	{"right everything, from 127.0.0.2", udpdns.WrongSource, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 2}), srv.Port()), mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right everything, from another port", udpdns.WrongSource, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		port := srv.Port() + 1
		if port == 0 {
			port = srv.Port() - 1
		}
		return netip.AddrPortFrom(srv.Addr(), port), mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right everything but QR=0", udpdns.NotResponse, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		m := poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass)
		m.Response = false
		return srv, mustPack(m)
	}},
	{"right ID, question cut short", udpdns.Malformed, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		b := mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
		return srv, b[:udpdns.HeaderLen+3]
	}},
}
