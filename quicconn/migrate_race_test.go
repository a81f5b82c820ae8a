package quicconn

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// TestMigrateMidBurstLeaksOldCID measures the race the quic/migrate
// experiment (experiments/quicexp) avoids by migrating at a quiescent
// moment: quic-go v0.65 reads
// the peer address when it writes a queued packet (send_conn.go:72-73), so
// when the server switches paths (connection.go:1332) during a download
// burst, packets it built for the old path — with the old path's
// connection ID — go to the new address. It records what the server's
// socket really writes and logs how many datagrams carried a connection ID
// already sent to another client address. It is probabilistic and never
// fails on the count.
func TestMigrateMidBurstLeaksOldCID(t *testing.T) {
	if testing.Short() {
		t.Skip("probabilistic demonstration; skipped in -short")
	}
	type write struct {
		to   netip.AddrPort
		dcid string
	}
	var mu sync.Mutex
	var writes []write
	srv, err := NewServer(ServerConfig{IdleTimeout: testTimeout, onWrite: func(b []byte, to net.Addr) {
		if len(b) < 9 || b[0]&0x80 != 0 { // 1-RTT packets only
			return
		}
		ua, ok := to.(*net.UDPAddr)
		if !ok {
			return
		}
		mu.Lock()
		writes = append(writes, write{ua.AddrPort(), hex.EncodeToString(b[1:9])})
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	const conns, size = 8, 4 << 20
	hops := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.1")}
	migrations, leaky, leakedDatagrams := 0, 0, 0
	for i := range conns {
		mu.Lock()
		writes = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert, IdleTimeout: testTimeout})
		if err != nil {
			cancel()
			t.Logf("connection %d: %v", i, err)
			continue
		}
		next := 0
		_, _, err = cl.Download(ctx, size, func(n int64) {
			if next < len(hops) && n >= int64(size*(next+1)/(len(hops)+1)) {
				if migrateNow(ctx, cl, hops[next]) == nil { // mid-burst: no quiescence
					migrations++
				}
				next++
			}
		})
		cl.Close()
		cancel()
		if err != nil {
			t.Logf("connection %d: download: %v", i, err)
		}
		mu.Lock()
		dst := map[string]netip.AddrPort{}
		leaks := 0
		for _, w := range writes {
			if d, ok := dst[w.dcid]; ok && d != w.to {
				leaks++
			}
			if _, ok := dst[w.dcid]; !ok {
				dst[w.dcid] = w.to
			}
		}
		mu.Unlock()
		if leaks > 0 {
			leaky++
			leakedDatagrams += leaks
		}
	}
	t.Logf("mid-burst migrations: %d connections × %d hops (%d switched); %d connection(s) sent %d datagram(s) with a connection ID already used towards another client address",
		conns, len(hops), migrations, leaky, leakedDatagrams)
}

// migrateNow moves cl to a new path on addr at once: AddPath, Probe,
// Switch.
func migrateNow(ctx context.Context, cl *Client, addr netip.Addr) error {
	p, err := cl.NewPath(netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return err
	}
	if err := p.Probe(ctx); err != nil {
		return err
	}
	return p.Switch()
}
