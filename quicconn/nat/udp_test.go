package nat

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// udpEcho answers every datagram to its sender and reports the senders.
func udpEcho(t *testing.T) (netip.AddrPort, <-chan netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	from := make(chan netip.AddrPort, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, a, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case from <- a:
			default:
			}
			c.WriteToUDPAddrPort(buf[:n], a)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort(), from
}

func TestMiddleboxRebindMovesTheFlowAndForgetsTheOldBinding(t *testing.T) {
	for _, tc := range []struct {
		name string
		to   netip.Addr
	}{
		{"new port", netip.MustParseAddr("127.0.0.1")},
		{"new address", netip.MustParseAddr("127.0.0.2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, from := udpEcho(t)
			mb, err := NewUDP("127.0.0.1:0", server, netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer mb.Close()
			cl, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(mb.Front))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			cl.SetDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2048)
			roundTrip := func(size int) {
				t.Helper()
				if _, err := cl.Write(make([]byte, size)); err != nil {
					t.Fatal(err)
				}
				if _, err := cl.Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			roundTrip(10)
			old := <-from
			ch := mb.Rebind(tc.to, 100)
			roundTrip(10) // too small to create the new binding
			if a := <-from; a != old {
				t.Fatalf("a small datagram moved the flow: %s → %s", old, a)
			}
			roundTrip(200)
			rb := <-ch
			if a := <-from; a != rb.New || a == old || rb.Old != old || a.Addr() != tc.to {
				t.Fatalf("server saw %s; rebinding %+v; want a new binding on %s", a, rb, tc.to)
			}
			// The forgotten binding drops what the server sends to it.
			srv, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(old))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			srv.Write([]byte("late"))
			// The drop is counted on another goroutine: round trips (bounded)
			// until it shows.
			dropped := 0
			for i := 0; i < 100 && dropped == 0; i++ {
				roundTrip(10)
				dropped = mb.Stats().DroppedOld
			}
			if dropped != 1 {
				t.Errorf("dropped at the old binding: %d, want 1", dropped)
			}
		})
	}
}
