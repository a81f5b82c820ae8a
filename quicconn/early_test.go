package quicconn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Request
		ok   bool
	}{
		{"GET k", Request{Method: "GET", Key: "k"}, true},
		{"GET k\n", Request{Method: "GET", Key: "k"}, true},
		{"PUT balance 10\n", Request{Method: "PUT", Key: "balance", Value: "10"}, true},
		{"PUT k", Request{}, false},
		{"GET k v", Request{}, false},
		{"DELETE k", Request{}, false},
		{"GET  k", Request{}, false},
		{"GET k\x00", Request{}, false},
		{"GET " + strings.Repeat("k", 65), Request{}, false},
		{"", Request{}, false},
		{strings.Repeat("x", MaxRequest+1), Request{}, false},
	} {
		t.Run(fmt.Sprintf("%.20q", tc.in), func(t *testing.T) {
			got, err := ParseRequest([]byte(tc.in))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseRequest(%q) = %+v, %v; want %+v, ok %t", tc.in, got, err, tc.want, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrRequest) {
				t.Errorf("error %v is not ErrRequest", err)
			}
		})
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"GET k", "PUT k v\n", "PUT", "GET \xff", " ", "\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrRequest) {
				t.Fatalf("error %v is not ErrRequest", err)
			}
			return
		}
		again := r.Method + " " + r.Key
		if r.Method == "PUT" {
			again += " " + r.Value
		}
		if r2, err := ParseRequest([]byte(again)); err != nil || r2 != r {
			t.Fatalf("%q parsed as %+v, which reads back as %+v, %v", b, r, r2, err)
		}
	})
}

// ClientHello never panics on arbitrary datagrams, and says why it
// found none.
func FuzzClientHello(f *testing.F) {
	f.Add([]byte{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x41, 0x00})
	f.Add([]byte{0xc0, 0, 0, 0, 1, 0, 0, 0, 0x20})
	f.Add([]byte{0x40, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := ClientHello([][]byte{b})
		if err == nil && (len(ch) < 38 || ch[0] != 1) {
			t.Fatalf("a ClientHello of %d bytes", len(ch))
		}
		if err != nil && !errors.Is(err, ErrEarlySecret) {
			t.Fatalf("error %v is not ErrEarlySecret", err)
		}
	})
}

// A resumed connection sends its requests in 0-RTT: the server answers
// the GET at once and applies the PUT only once the handshake completed;
// the 0-RTT secret derived from the first flight opens its 0-RTT packets.
func TestEarlyServerResumesWithZeroRTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv, err := NewEarlyServer(EarlyServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cache := NewTicketCache()
	dial := func() *Client {
		c, err := DialEarly(ctx, EarlyClientConfig{Server: srv.Addr, Trust: srv.Cert, Sessions: cache, KeepFirst: 8,
			Tracer: &Tracer{}, HoldReplies: testTimeout / 2, ReleaseWhen: func(ctx context.Context, local netip.AddrPort) error {
				return srv.WaitRead(ctx, local, 2)
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	first := dial()
	if got, err := first.Request(ctx, "PUT k 1"); err != nil || got != "APPLIED\n" {
		t.Fatalf("PUT: %q, %v", got, err)
	}
	if err := cache.WaitTickets(ctx, 1); err != nil {
		t.Fatal(err)
	}
	first.Close()
	second := dial()
	if got, err := second.Requests(ctx, "GET k", "PUT k 2"); err != nil || !slices.Equal(got, []string{"OK 1\n", "APPLIED\n"}) {
		t.Fatalf("GET and PUT in 0-RTT: %q, %v", got, err)
	}
	if !second.Conn.ConnectionState().Used0RTT {
		t.Fatal("the second connection did not use 0-RTT")
	}
	for _, r := range srv.Requests() {
		if r.Remote == second.LocalAddr() && !r.Early {
			t.Errorf("the resumed connection's %s was not read in 0-RTT", r.Method)
		}
	}
	for _, r := range srv.Requests() {
		if r.Method == "PUT" && (!r.Confirmed || !r.Done) {
			t.Errorf("PUT applied before its connection's handshake completed: %+v", r)
		}
	}
	if v, _ := srv.Value("k"); v != "2" {
		t.Errorf("store holds %q, want 2", v)
	}
	// A replay of the first flight to a server with the same ticket key
	// gets its GET processed again; its PUT is never applied.
	other, err := NewEarlyServer(EarlyServerConfig{Cert: &srv.Certificate, TicketKey: &srv.TicketKey, HandshakeTimeout: testTimeout / 16})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	replay := second.FirstFlight()
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	for _, d := range replay {
		sock.WriteToUDPAddrPort(d, other.Addr)
	}
	if err := other.WaitRequests(ctx, func(r []Request) bool { return len(r) == 2 }); err != nil {
		t.Fatalf("%v (replayed %d datagrams)", err, len(replay))
	}
	for _, r := range other.Requests() {
		if r.Done != (r.Method == "GET") || !r.Early {
			t.Errorf("replayed %s: early %t, done %t", r.Method, r.Early, r.Done)
		}
	}
	line, err := EarlySecretLog(second.InitialFlight(), cache.Offered())
	if err != nil {
		t.Fatal(err)
	}
	opened := openZeroRTT(t, second.InitialFlight(), line)
	if opened == 0 {
		t.Fatalf("no 0-RTT packet in the first flight opened with %q", line)
	}
}

// openZeroRTT opens the 0-RTT packets of datagrams with the key log
// line's secret and returns how many it opened.
func openZeroRTT(t *testing.T, datagrams [][]byte, line string) int {
	t.Helper()
	var random, secret []byte
	if _, err := fmt.Sscanf(line, "CLIENT_EARLY_TRAFFIC_SECRET %x %x\n", &random, &secret); err != nil {
		t.Fatalf("key log line %q: %v", line, err)
	}
	h, keyLen, _ := suiteHash(0x1301)
	if len(secret) == 48 {
		h, keyLen, _ = suiteHash(0x1302)
	}
	keys, err := keysFrom(h, secret, keyLen)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range datagrams {
		ps, _ := splitLong(d)
		for _, p := range ps {
			if p.typ != 1 {
				continue
			}
			if _, _, err := keys.open(d, p); err != nil {
				t.Errorf("0-RTT packet: %v", err)
				continue
			}
			n++
		}
	}
	return n
}
