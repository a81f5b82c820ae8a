package udpdns

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeServer is a UDP socket the test drives by hand: it reads queries and
// writes whatever bytes the test wants.
type fakeServer struct {
	t    testing.TB
	conn *net.UDPConn
}

func newFakeServer(t testing.TB, addr string) *fakeServer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fakeServer{t: t, conn: conn}
}

func (f *fakeServer) addr() netip.AddrPort { return f.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// recv reads one query, failing the test after a deadline.
func (f *fakeServer) recv() (*dns.Msg, netip.AddrPort) {
	f.t.Helper()
	buf := make([]byte, 4096)
	_ = f.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := f.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		f.t.Fatalf("fake server: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		f.t.Fatalf("fake server: unpack: %v", err)
	}
	return m, from
}

// answer writes the zone's reply to q with ID id.
func (f *fakeServer) answer(q *dns.Msg, id uint16, to netip.AddrPort) {
	f.t.Helper()
	r := BuiltinZone().Answer(q)
	r.Id = id
	f.send(mustPack(r), to)
}

func (f *fakeServer) send(b []byte, to netip.AddrPort) {
	f.t.Helper()
	if _, err := f.conn.WriteToUDPAddrPort(b, to); err != nil {
		f.t.Fatal(err)
	}
}

// events collects trace events on a channel.
func events(n int) (chan Event, func(Event)) {
	ch := make(chan Event, n)
	return ch, func(e Event) {
		select {
		case ch <- e:
		default:
		}
	}
}

// waitFor reads events until one satisfies ok, or fails after a deadline.
func waitFor(t testing.TB, ch chan Event, ok func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case e := <-ch:
			if ok(e) {
				return e
			}
		case <-deadline.C:
			t.Fatal("event never came")
		}
	}
}
