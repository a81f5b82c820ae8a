package lb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/lb"
)

// Three real QUIC backends behind a balancer routing by connection ID:
// an upload completes, and every client datagram went to the backend
// whose server ID its connection IDs carry (the Initials by a hash of the
// client-chosen DCID, which picked that backend).
func TestBalancerByCIDKeepsAConnectionOnItsBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	cfg := lb.Config{ServerIDLen: 2, NonceLen: 5}
	cert, leaf, err := quicconn.SharedCert()
	if err != nil {
		t.Fatal(err)
	}
	var udps []*net.UDPConn
	var addrs []netip.AddrPort
	for range 3 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		udps = append(udps, u)
		addrs = append(addrs, u.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	bal, err := lb.New("127.0.0.1:0", addrs, lb.ByCID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bal.Close()
	for i, u := range udps {
		b, err := quicconn.NewBackend(quicconn.BackendConfig{Conn: lb.NewBackendConn(u, bal.Front), Cert: cert,
			CIDs: &lb.Generator{Config: cfg, ServerID: cfg.ServerID(i), R: rand.Reader}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
	}
	cl, err := quicconn.Dial(ctx, quicconn.ClientConfig{Server: bal.Front, Trust: leaf})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	data := bytes.Repeat([]byte("statelab"), 8<<10)
	res, err := cl.Upload(ctx, data, 16<<10, nil)
	if err != nil || !res.Match {
		t.Fatalf("upload: %+v, %v", res, err)
	}
	st := bal.Stats()
	used := 0
	for _, n := range st.ToBackend {
		if n > 0 {
			used++
		}
	}
	if used != 1 || st.ServerID == 0 || st.DCIDHash == 0 || st.TupleHash != 0 || st.ToClient == 0 {
		t.Errorf("stats %+v: want every datagram on one backend, by server ID after the Initials", st)
	}
}
