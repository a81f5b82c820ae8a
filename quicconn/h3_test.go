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
	"github.com/statelab/statelab/quicconn/nat"
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
			h := newH3PathTest(t, ctx, tc.nat)
			url := "https://" + h.srv.Addr.String()
			r, err := h.client.Get(ctx, url+"/bytes/200000", h.changeAt(size/4))
			if err != nil || r.StatusCode != 200 || r.Bytes != size || r.Sum != PatternSum(size) {
				t.Fatalf("GET /bytes/%d: %+v, sha256 ok %t, %v", size, r, r.Sum == PatternSum(size), err)
			}
			if tc.nat {
				// A second request makes sure the client sends through the
				// NAT after the rebinding was armed.
				if r2, err := h.client.Get(ctx, url+"/bytes/1000", nil); err != nil || r2.Bytes != 1000 {
					t.Fatalf("second GET: %+v, %v", r2, err)
				}
			}
			h.waitPathChange()
			// The same connection serves another request afterwards.
			if r2, err := h.client.Get(ctx, url+"/", nil); err != nil || r2.StatusCode != 200 {
				t.Fatalf("GET / after the path change: %+v, %v", r2, err)
			}
			if n, c, s := len(h.client.Conns()), len(h.cliTr.Conns()), len(h.srvTr.Conns()); n != 1 || c != 1 || s != 1 {
				t.Errorf("%d connection(s) dialled, %d client and %d server trace(s); want one handshake", n, c, s)
			}
		})
	}
}

// h3PathTest is a traced server, an HTTP/3 client (through a NAT when
// rebinding) and the path changes both endpoints' tracers report.
type h3PathTest struct {
	t            *testing.T
	ctx          context.Context
	srv          *Server
	box          *nat.UDP // nil: the client migrates
	client       *H3Client
	srvTr, cliTr *Tracer
	changes      chan tupleChange
	rebound      chan nat.Rebinding
	migrated     chan netip.AddrPort
	migErr       chan error
}

type tupleChange struct {
	role string
	ev   TupleEvent
}

func newH3PathTest(t *testing.T, ctx context.Context, rebind bool) *h3PathTest {
	h := &h3PathTest{t: t, ctx: ctx, changes: make(chan tupleChange, 64),
		rebound: make(chan nat.Rebinding, 1), migrated: make(chan netip.AddrPort, 1), migErr: make(chan error, 1)}
	onTuple := func(c *ConnTrace, e TupleEvent) {
		select {
		case h.changes <- tupleChange{c.Role, e}:
		default:
		}
	}
	h.srvTr, h.cliTr = &Tracer{OnTuple: onTuple}, &Tracer{OnTuple: onTuple}
	srv, err := NewServer(ServerConfig{Tracer: h.srvTr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h.srv = srv
	cfg := H3Config{Trust: srv.Cert, Tracer: h.cliTr}
	if rebind {
		h.box, err = nat.NewUDP("127.0.0.1:0", srv.Addr, netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.box.Close() })
		cfg.Server = h.box.Front
	}
	h.client = NewH3Client(cfg)
	t.Cleanup(func() { h.client.Close() })
	return h
}

// changeAt returns a progress function that, once n bytes have arrived,
// arms the NAT's rebinding or starts the client's migration.
func (h *h3PathTest) changeAt(n int64) func(int64) {
	var once sync.Once
	return func(got int64) {
		if got < n {
			return
		}
		once.Do(func() {
			if h.box != nil {
				go h.rebind()
			} else {
				go h.migrate()
			}
		})
	}
}

func (h *h3PathTest) rebind() {
	select {
	case rb := <-h.box.Rebind(netip.MustParseAddr("127.0.0.1"), 0):
		h.rebound <- rb
	case <-h.ctx.Done():
	}
}

func (h *h3PathTest) migrate() {
	p, err := h.client.Conns()[0].NewPath("127.0.0.1:0")
	if err == nil {
		err = p.Probe(h.ctx)
	}
	if err == nil {
		err = p.Switch()
	}
	if err != nil {
		h.migErr <- err
		return
	}
	h.migrated <- p.Local
}

// waitPathChange waits for the path change, as the endpoint that sees it
// reports it: the server's active path moves to the new NAT binding, or
// the client's to its new socket.
func (h *h3PathTest) waitPathChange() {
	t := h.t
	var role string
	var want func(TupleEvent) bool
	if h.box != nil {
		var rb nat.Rebinding
		select {
		case rb = <-h.rebound:
		case <-h.ctx.Done():
			t.Fatal("the NAT never rebound the flow")
		}
		t.Logf("NAT binding %s → %s", rb.Old, rb.New)
		role, want = "server", func(e TupleEvent) bool { return e.ID == "" && e.Remote == rb.New }
	} else {
		var local netip.AddrPort
		select {
		case local = <-h.migrated:
		case err := <-h.migErr:
			t.Fatalf("migration: %v", err)
		case <-h.ctx.Done():
			t.Fatal("the migration never finished")
		}
		t.Logf("migrated to %s", local)
		role, want = "client", func(e TupleEvent) bool { return e.ID == "" && e.Local == local }
	}
	for seen := false; !seen; {
		select {
		case c := <-h.changes:
			t.Logf("%s path %q: %s → %s", c.role, c.ev.ID, c.ev.Local, c.ev.Remote)
			seen = c.role == role && want(c.ev)
		case <-h.ctx.Done():
			t.Fatalf("no %s path change observed", role)
		}
	}
}
