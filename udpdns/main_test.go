package udpdns

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// The package's tests need loopback sockets only: no namespace, no lab.

// startServer starts a server for one test.
func startServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	s, err := StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// faulty serves the built-in zone wrapped in mw.
func faulty(mw ...dnsfault.Middleware) ServerConfig {
	return ServerConfig{Handler: dnsfault.Chain(BuiltinZone(), mw...)}
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
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

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

// poisonReply is a forged answer to q: ID id, the question given, one A
// record 6.6.6.6.
func poisonReply(q *dns.Msg, id uint16, name string, qtype, qclass uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Id = id
	m.Response, m.Authoritative = true, true
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: qclass}}
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 86400},
		A: net.IPv4(6, 6, 6, 6)}}
	return m
}
