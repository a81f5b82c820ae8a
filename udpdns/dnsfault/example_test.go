package dnsfault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// A zone served with one query in three dropped and answers jittered by up
// to 5ms; the client's retries carry each query through. With the draws
// and the client's IDs seeded, the same queries are dropped every run.
func Example() {
	draws := dnsfault.NewDraws(42)
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Handler: dnsfault.Chain(udpdns.BuiltinZone(),
		dnsfault.Drop(1.0/3, draws),
		dnsfault.Jitter(5*time.Millisecond, draws))})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	c, err := udpdns.NewClient(udpdns.Config{Server: srv.Addr(), Timeout: 100 * time.Millisecond, Retries: 5,
		Rand: rand.NewChaCha8([32]byte{42})})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for _, name := range []string{"example.lab.", "www.example.lab."} {
		r, err := c.Query(context.Background(), name, dns.TypeA)
		if err != nil {
			panic(err)
		}
		fmt.Println(r.Answer[len(r.Answer)-1].(*dns.A).A)
	}
	srv.Close()
	st := srv.Stats()
	fmt.Println(st.Received-st.Answered, "dropped")
	// Output:
	// 192.0.2.1
	// 192.0.2.1
	// 1 dropped
}
