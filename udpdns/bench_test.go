package udpdns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// The reply path's judgement (parse header+question, table lookup, RFC 5452
// checks) against the baseline of unpacking every datagram with miekg/dns
// and comparing its fields — both rejecting a forged reply, which is what a
// flood costs.
func BenchmarkReplyJudgement(b *testing.B) {
	server := netip.MustParseAddrPort("127.0.0.1:53")
	c := &Client{cfg: Config{Server: server, Quarantine: 1e9, Linger: 1e9}}
	s := &sock{c: c}
	s.initIDs()
	m := new(dns.Msg)
	m.SetQuestion("bench.synth.lab.", dns.TypeA)
	call, _ := c.prepare(m, 0, nil)
	call.s, call.id, call.state = s, 0x1234, EventSent
	s.inflight[0x1234], s.n, s.st.Sent = call, 1, 1
	forged := mustPack(poisonReply(m, 0x1234, "evil.synth.lab.", dns.TypeA, dns.ClassINET))
	b.Run("udpdns/ParseHead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.handle(server, forged)
		}
	})
	b.Run("baseline/miekg-Unpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := new(dns.Msg)
			if r.Unpack(forged) != nil || r.Id != 0x1234 || len(r.Question) != 1 ||
				dns.CanonicalName(r.Question[0].Name) == "bench.synth.lab." {
				b.Fatal("unexpected")
			}
		}
	})
}

// One exchange over loopback: the multiplexing client against miekg/dns's
// Client.Exchange, which opens a socket per query.
func BenchmarkExchange(b *testing.B) {
	srv := startServer(b, ServerConfig{})
	m := new(dns.Msg)
	m.SetQuestion("x.synth.lab.", dns.TypeA)
	// Batched reads (recvmmsg, ReadBatch 32) against one recvfrom per
	// datagram (the default), in the same run, with 16 goroutines per core
	// in flight.
	for _, tc := range []struct {
		name  string
		batch int
	}{{"udpdns/ReadBatch=32", 32}, {"udpdns/ReadBatch=1(default)", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newClient(b, Config{Server: srv.Addr(), ReadBatch: tc.batch})
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Exchange(b.Context(), m); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
	b.Run("miekg-Client.Exchange", func(b *testing.B) {
		mc := new(dns.Client)
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := mc.Exchange(m.Copy(), srv.Addr().String()); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// Sending a burst of queries from many goroutines over one socket: batched
// writes (a queue drained with sendmmsg, x/net WriteBatch) against one
// sendto per query. The sink never reads, so only the sending side is
// measured; each query is cancelled once sent, its ID free at once.
func BenchmarkSend(b *testing.B) {
	sink := newFakeServer(b, "127.0.0.1:0")
	m := new(dns.Msg)
	m.SetQuestion("burst.synth.lab.", dns.TypeA)
	for _, tc := range []struct {
		name  string
		batch int
	}{{"batched", 32}, {"single", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			c := newClient(b, Config{Server: sink.addr(), WriteBatch: tc.batch, Quarantine: 1, Linger: 1})
			b.SetParallelism(16) // 16 goroutines per core send at once
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					call, err := c.Send(b.Context(), m)
					if err != nil {
						b.Fatal(err)
					}
					call.Cancel()
				}
			})
			if sys, n := c.socks[0].writeStats(); sys > 0 {
				b.ReportMetric(float64(n)/float64(sys), "datagrams/syscall")
			}
		})
	}
}
