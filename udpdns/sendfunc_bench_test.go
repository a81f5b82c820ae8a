package udpdns

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// Queries kept in flight with SendFunc, each completion sending the next
// from the reader (the bench's driver): allocations and time per query.
func BenchmarkSendFuncChain(b *testing.B) {
	srv := startServer(b, ServerConfig{})
	c := newClient(b, Config{Server: srv.Addr(), FailWhenFull: true, ReadBatch: 64, WriteBatch: 64})
	m := new(dns.Msg)
	m.SetQuestion("x.synth.lab.", dns.TypeA)
	const inFlight = 64
	done := make(chan struct{}, inFlight)
	left := make(chan struct{}, b.N)
	for range b.N {
		left <- struct{}{}
	}
	var next func(*Call)
	next = func(*Call) {
		select {
		case <-left:
			if _, err := c.SendFunc(context.Background(), m, next); err != nil {
				b.Error(err)
				done <- struct{}{}
			}
		default:
			done <- struct{}{}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range inFlight {
		next(nil)
	}
	for range inFlight {
		<-done
	}
}
