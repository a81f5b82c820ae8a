package dnsexp

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns"
)

// Ten thousand forgeries of every kind against one query in flight: the
// client rejects each for its kind's reason, and the genuine answer
// completes the query.
func TestTenThousandForgedRepliesNoneAccepted(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	f, err := newForger()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events := make(chan udpdns.Event, 20000)
	c, err := udpdns.NewClient(udpdns.Config{Server: server, Timeout: 30 * time.Second, Trace: func(e udpdns.Event) {
		if e.Kind != udpdns.EventSent {
			events <- e
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := "target." + udpdns.SynthSuffix
	done := make(chan *dns.Msg, 1)
	go func() {
		r, err := c.Query(context.Background(), name, dns.TypeA)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	q, from := readQuery(t, conn)
	rid := func() uint16 { return q.Id ^ 0x8000 }
	const total = 10000
	byKind := map[udpdns.Reason]int{}
	for sent := 0; sent < total; {
		// Bursts small enough for the socket buffer; wait for each to be judged.
		for range 10 {
			k := forgeryKinds[sent%len(forgeryKinds)]
			src, payload := k.make(q, server, rid)
			if err := f.Send(src, from, payload); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		for range 10 {
			select {
			case e := <-events:
				if e.Kind != udpdns.EventRejected {
					t.Fatalf("forgery produced %v", e.Kind)
				}
				byKind[e.Reason]++
			case <-time.After(5 * time.Second):
				t.Fatal("a forgery was never judged")
			}
		}
	}
	r := udpdns.BuiltinZone().Answer(q)
	if _, err := conn.WriteToUDPAddrPort(mustPack(r), from); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got == nil || answerA(got) != udpdns.SynthA(name) {
		t.Fatalf("answer %v, want %v", got, udpdns.SynthA(name))
	}
	st := c.Stats()
	if st.RejectedTotal() != total || st.Matched != 1 || !st.Consistent() {
		t.Errorf("stats %v", st)
	}
	for _, k := range forgeryKinds {
		if byKind[k.want] == 0 {
			t.Errorf("no rejection counted as %v", k.want)
		}
	}
}

// readQuery reads one query from conn.
func readQuery(t *testing.T, conn *net.UDPConn) (*dns.Msg, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return m, from
}
