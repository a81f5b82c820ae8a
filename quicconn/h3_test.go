package quicconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func TestHTTP3IndexAndBytes(t *testing.T) {
	srv, err := NewServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Cert)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx := context.Background()
	for _, tc := range []struct{ path, want string }{
		{"/", "statelab quic server"},
		{"/bytes/1000", ""},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+srv.Addr.String()+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) || tc.path == "/bytes/1000" && len(b) != 1000 {
			t.Errorf("GET %s: %d, %d bytes", tc.path, resp.StatusCode, len(b))
		}
	}
}

// An HTTP/3 download survives a NAT rebinding and an active migration made
// while it is in flight: every byte arrives, the path change is seen, and the
// one connection (one handshake) carries on to serve a second request.
func TestHTTP3PathChangeMidTransfer(t *testing.T) {
	const size = 200000
	for _, tc := range []struct {
		name string
		nat  bool // rebind through a NAT; else migrate with AddPath/Probe/Switch
	}{
		{"rebinding", true},
		{"migration", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			type change struct {
				role string
				ev   TupleEvent
			}
			changes := make(chan change, 64)
			onTuple := func(c *ConnTrace, e TupleEvent) {
				select {
				case changes <- change{c.Role, e}:
				default:
				}
			}
			srvTr, cliTr := &Tracer{OnTuple: onTuple}, &Tracer{OnTuple: onTuple}
			srv, err := NewServer(ServerConfig{Tracer: srvTr})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cfg := H3Config{Trust: srv.Cert, Tracer: cliTr}
			var nat *Middlebox
			if tc.nat {
				nat, err = NewMiddlebox("127.0.0.1:0", srv.Addr, netip.MustParseAddr("127.0.0.1"))
				if err != nil {
					t.Fatal(err)
				}
				defer nat.Close()
				cfg.Server = nat.Front
			}
			h := NewH3Client(cfg)
			defer h.Close()

			var once sync.Once
			rebound := make(chan Rebinding, 1)
			migrated := make(chan netip.AddrPort, 1)
			migErr := make(chan error, 1)
			progress := func(n int64) {
				if n < size/4 {
					return
				}
				once.Do(func() {
					if tc.nat {
						go func() {
							select {
							case rb := <-nat.Rebind(netip.MustParseAddr("127.0.0.1"), 0):
								rebound <- rb
							case <-ctx.Done():
							}
						}()
						return
					}
					go func() {
						p, err := h.Conns()[0].NewPath("127.0.0.1:0")
						if err == nil {
							err = p.Probe(ctx)
						}
						if err == nil {
							err = p.Switch()
						}
						if err != nil {
							migErr <- err
							return
						}
						migrated <- p.Local
					}()
				})
			}
			url := "https://" + srv.Addr.String()
			r, err := h.Get(ctx, url+"/bytes/200000", progress)
			if err != nil || r.StatusCode != 200 || r.Bytes != size || r.Sum != PatternSum(size) {
				t.Fatalf("GET /bytes/%d: %+v, sha256 ok %t, %v", size, r, r.Sum == PatternSum(size), err)
			}

			// The path change, as the endpoint that sees it reports it: the
			// server's active path moves to the new NAT binding, or the
			// client's to its new socket.
			var role string
			var want func(TupleEvent) bool
			if tc.nat {
				// A second request makes sure the client sends through the
				// NAT after the rebinding was armed.
				if r2, err := h.Get(ctx, url+"/bytes/1000", nil); err != nil || r2.Bytes != 1000 {
					t.Fatalf("second GET: %+v, %v", r2, err)
				}
				var rb Rebinding
				select {
				case rb = <-rebound:
				case <-ctx.Done():
					t.Fatal("the NAT never rebound the flow")
				}
				t.Logf("NAT binding %s → %s", rb.Old, rb.New)
				role, want = "server", func(e TupleEvent) bool { return e.ID == "" && e.Remote == rb.New }
			} else {
				var local netip.AddrPort
				select {
				case local = <-migrated:
				case err := <-migErr:
					t.Fatalf("migration: %v", err)
				case <-ctx.Done():
					t.Fatal("the migration never finished")
				}
				t.Logf("migrated to %s", local)
				role, want = "client", func(e TupleEvent) bool { return e.ID == "" && e.Local == local }
			}
			for seen := false; !seen; {
				select {
				case c := <-changes:
					t.Logf("%s path %q: %s → %s", c.role, c.ev.ID, c.ev.Local, c.ev.Remote)
					seen = c.role == role && want(c.ev)
				case <-ctx.Done():
					t.Fatalf("no %s path change observed", role)
				}
			}

			// The same connection serves another request afterwards.
			if r2, err := h.Get(ctx, url+"/", nil); err != nil || r2.StatusCode != 200 {
				t.Fatalf("GET / after the path change: %+v, %v", r2, err)
			}
			if n, c, s := len(h.Conns()), len(cliTr.Conns()), len(srvTr.Conns()); n != 1 || c != 1 || s != 1 {
				t.Errorf("%d connection(s) dialled, %d client and %d server trace(s); want one handshake", n, c, s)
			}
		})
	}
}
