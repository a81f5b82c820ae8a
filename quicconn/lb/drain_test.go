package lb_test

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/quicconn/lb"
)

// WaitFromClients returns once the balancer has read as many client
// datagrams as it was told were sent, and names the shortfall when they
// never all arrive (quic/load-balancer waits on it before closing a
// balancer, so a closing client's last CONNECTION_CLOSE is routed, not
// left on the wire unread).
func TestWaitFromClientsAndBackendsReturnOnceTheBalancerReadEveryDatagram(t *testing.T) {
	tests := []struct {
		name        string
		fromBackend bool // the datagrams are a backend's replies, awaited with WaitFromBackends
		sent, want  int
		err         string
	}{
		{"every datagram read", false, 5, 5, ""},
		{"nothing sent, nothing awaited", false, 0, 0, ""},
		{"one more awaited than sent", false, 5, 6, "5 of 6 client datagrams read"},
		{"every backend reply read", true, 5, 5, ""},
		{"one more backend reply awaited than sent", true, 5, 6, "5 of 6 backend datagrams read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			backend, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer backend.Close()
			bal, err := lb.New("127.0.0.1:0", []netip.AddrPort{backend.LocalAddr().(*net.UDPAddr).AddrPort()}, lb.ByTuple, lb.Config{ServerIDLen: 2, NonceLen: 5})
			if err != nil {
				t.Fatal(err)
			}
			defer bal.Close()
			client, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			clientAddr := client.LocalAddr().(*net.UDPAddr).AddrPort()
			for range tc.sent {
				if tc.fromBackend {
					_, err = backend.WriteToUDPAddrPort(lb.Encap(clientAddr, []byte("a backend's reply")), bal.Front)
				} else {
					_, err = client.WriteToUDPAddrPort([]byte("a client datagram"), bal.Front)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			timeout := 5 * time.Second
			if tc.err != "" {
				timeout = 200 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			wait, count := bal.WaitFromClients, func(s lb.Stats) int { return s.FromClients }
			if tc.fromBackend {
				wait, count = bal.WaitFromBackends, func(s lb.Stats) int { return s.FromBackends }
			}
			err = wait(ctx, tc.want)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("waiting for %d after %d sent: %v", tc.want, tc.sent, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("waiting for %d after %d sent: %v, want an error saying %q", tc.want, tc.sent, err, tc.err)
			}
			if got := count(bal.Stats()); got != tc.sent {
				t.Errorf("counted %d, want %d", got, tc.sent)
			}
		})
	}
}
