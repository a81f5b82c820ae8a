package udpdns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// The faults of udpdns/dnsfault around the zone, seen from a client
// through the server: what arrives, from where, how often and when, and
// what the server counted.
func TestServerWithFaults(t *testing.T) {
	release := make(chan struct{}) // holds the first answer of the reorder case
	alt, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alt.Close() })
	altAddr := alt.LocalAddr().(*net.UDPAddr).AddrPort()
	tests := []struct {
		name  string
		srv   ServerConfig
		check func(t *testing.T, srv *Server, c *Client, ev chan Event)
	}{
		{"no faults: one answer, at once", ServerConfig{}, func(t *testing.T, srv *Server, c *Client, _ chan Event) {
			mustAnswer(t, c, "plain."+SynthSuffix)
			_ = srv.Stop() // waits for the handlers: the counters are final
			if st := srv.Stats(); st.Received != 1 || st.Answered != 1 || st.Written != 1 || st.Unanswered+st.Copies+st.WriteErrors != 0 {
				t.Errorf("server stats %+v", st)
			}
		}},
		{"delay holds every answer", faulty(dnsfault.Delay(40 * time.Millisecond)), func(t *testing.T, _ *Server, c *Client, _ chan Event) {
			call := mustSend(t, c, "slow."+SynthSuffix)
			if _, err := call.Wait(ctxFor(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if call.RTT() < 40*time.Millisecond {
				t.Errorf("answered after %v, want at least the 40ms delay", call.RTT())
			}
		}},
		{"drop fraction 1: never answered", faulty(dnsfault.Drop(1, nil)), func(t *testing.T, srv *Server, c *Client, _ chan Event) {
			_, err := c.Query(ctxFor(t, 5*time.Second), "dropped."+SynthSuffix, dns.TypeA)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("err = %v, want a timeout", err)
			}
			_ = srv.Stop()
			if st := srv.Stats(); st.Received != 1 || st.Unanswered != 1 || st.Written != 0 {
				t.Errorf("server stats %+v, want 1 received, unanswered", st)
			}
		}},
		{"duplicate fraction 1: the copy is counted, completes nothing", faulty(dnsfault.Duplicate(1, nil)), func(t *testing.T, srv *Server, c *Client, ev chan Event) {
			mustAnswer(t, c, "twice."+SynthSuffix)
			waitFor(t, ev, func(e Event) bool { return e.Kind == EventDuplicate })
			if st := c.Stats(); st.Matched != 1 || st.Duplicate != 1 {
				t.Errorf("client %s, want 1 matched, 1 duplicate", st)
			}
			_ = srv.Stop()
			if st := srv.Stats(); st.Copies != 1 || st.Written != 2 {
				t.Errorf("server stats %+v, want 2 written, 1 copy", st)
			}
		}},
		{"answer from a different address: rejected as wrong source", faulty(dnsfault.AnswerFrom(alt)), func(t *testing.T, srv *Server, c *Client, ev chan Event) {
			_, err := c.Query(ctxFor(t, 5*time.Second), "spoofed."+SynthSuffix, dns.TypeA)
			if !errors.Is(err, ErrTimeout) {
				t.Errorf("err = %v, want a timeout", err)
			}
			e := waitFor(t, ev, func(e Event) bool { return e.Kind == EventRejected })
			if e.Reason != WrongSource || e.Peer != altAddr || e.Peer.Addr() != netip.MustParseAddr("127.0.0.2") {
				t.Errorf("rejected %v from %v, want %v from the other socket %v", e.Reason, e.Peer, WrongSource, altAddr)
			}
		}},
		{"reorder: a held answer leaves after a later one", faulty(dnsfault.Hold(func(q *dns.Msg) <-chan struct{} {
			if strings.HasPrefix(strings.ToLower(q.Question[0].Name), "first.") {
				return release
			}
			return nil
		})), func(t *testing.T, _ *Server, c *Client, ev chan Event) {
			first := mustSend(t, c, "first."+SynthSuffix)
			second := mustSend(t, c, "second."+SynthSuffix)
			e := waitFor(t, ev, func(e Event) bool { return e.Kind == EventMatched })
			close(release)
			if e.ID != second.ID() {
				t.Errorf("first answer matched id %#04x, want the second query's %#04x", e.ID, second.ID())
			}
			for _, call := range []*Call{first, second} {
				if _, err := call.Wait(ctxFor(t, 5*time.Second)); err != nil {
					t.Error(err)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.srv)
			ev, trace := events(64)
			c := newClient(t, Config{Server: srv.Addr(), Timeout: 150 * time.Millisecond, Retries: -1, Trace: trace})
			tt.check(t, srv, c, ev)
			if st := c.Stats(); !st.Consistent() {
				t.Errorf("counters do not balance: %s", st)
			}
		})
	}
}

// The server serves any handler, not only a zone: here one that answers
// every query with REFUSED, and one that writes nothing.
func TestServerServesAnyHandler(t *testing.T) {
	tests := []struct {
		name    string
		handler dns.HandlerFunc
		rcode   int // -1: no answer
	}{
		{"refuses", func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeRefused)
			_ = w.WriteMsg(m)
		}, dns.RcodeRefused},
		{"silent", func(dns.ResponseWriter, *dns.Msg) {}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, ServerConfig{Handler: tt.handler})
			if p := srv.Addr().Port(); p == 0 {
				t.Fatalf("listening on port %d", p)
			}
			c := newClient(t, Config{Server: srv.Addr(), Timeout: 200 * time.Millisecond, Retries: -1})
			r, err := c.Query(ctxFor(t, 5*time.Second), "any.example.", dns.TypeA)
			switch {
			case tt.rcode < 0 && !errors.Is(err, ErrTimeout):
				t.Errorf("err = %v, want a timeout", err)
			case tt.rcode >= 0 && (err != nil || r.Rcode != tt.rcode):
				t.Errorf("reply %v, %v; want rcode %s", r, err, dns.RcodeToString[tt.rcode])
			}
		})
	}
}

func TestServerStopStart(t *testing.T) {
	hold := make(chan struct{}) // never closed: the answer is held until Stop
	held := make(chan struct{})
	srv := startServer(t, faulty(dnsfault.Hold(func(q *dns.Msg) <-chan struct{} {
		if strings.HasPrefix(strings.ToLower(q.Question[0].Name), "held.") {
			close(held)
			return hold
		}
		return nil
	})))
	addr := srv.Addr()
	c := newClient(t, Config{Server: addr, Timeout: 5 * time.Second})
	mustAnswer(t, c, "up."+SynthSuffix)
	call := mustSend(t, c, "held."+SynthSuffix)
	<-held
	steps := []struct {
		name    string
		op      func() error
		want    error
		running bool
	}{
		{"stop", srv.Stop, nil, false},
		{"stop again", srv.Stop, ErrServerStopped, false},
		{"start", srv.Start, nil, true},
		{"start again", srv.Start, ErrServerRunning, true},
	}
	for _, s := range steps {
		if err := s.op(); !errors.Is(err, s.want) {
			t.Errorf("%s: err = %v, want %v", s.name, err, s.want)
		}
		if srv.Running() != s.running {
			t.Errorf("after %s: running = %v", s.name, srv.Running())
		}
	}
	if st := srv.Stats(); st.Unanswered != 1 || st.Answered != 1 {
		t.Errorf("server stats %+v: the held answer should be abandoned by Stop", st)
	}
	call.Cancel()
	if srv.Addr() != addr {
		t.Errorf("restarted on %v, want the same address %v", srv.Addr(), addr)
	}
	mustAnswer(t, c, "again."+SynthSuffix)
}

const testZone = `$ORIGIN example.test.
$TTL 300
@     IN SOA ns hostmaster 1 3600 600 86400 60
@     IN NS  ns
ns    IN A   192.0.2.53
www   IN A   198.51.100.7
www   IN A   203.0.113.7
alias IN CNAME www
`

func TestZoneFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.zone", testZone)
	tests := []struct {
		name    string
		path    string
		wantErr []string // substrings of the error; nil for success
	}{
		{"valid file", good, nil},
		{"missing file", filepath.Join(dir, "nope.zone"), []string{"zone file", "no such file"}},
		{"syntax error names file and line", write("bad.zone", "$ORIGIN x.test.\n@ IN SOA ns h 1 2 3 4 5\nwww IN A not-an-address\n"),
			[]string{"bad.zone", "line: 3"}},
		{"no SOA", write("nosoa.zone", "$ORIGIN x.test.\nwww IN A 192.0.2.1\n"), []string{"nosoa.zone", "no SOA record"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := LoadZoneFile(tt.path)
			if tt.wantErr == nil {
				if err != nil || z.Origin != "example.test." || z.Records() != 6 {
					t.Fatalf("LoadZoneFile = %v, %v (want origin example.test., 6 records)", z, err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// A server answering from a zone file, queried over the wire.
func TestZoneFileAnswers(t *testing.T) {
	z, err := ParseZone(strings.NewReader(testZone), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, ServerConfig{Handler: z})
	c := newClient(t, Config{Server: srv.Addr(), Timeout: 5 * time.Second})
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers []string // A records, in zone order
	}{
		{"www.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"198.51.100.7", "203.0.113.7"}},
		{"WWW.Example.TEST.", dns.TypeA, dns.RcodeSuccess, []string{"198.51.100.7", "203.0.113.7"}},
		{"alias.example.test.", dns.TypeA, dns.RcodeSuccess, []string{"198.51.100.7", "203.0.113.7"}},
		{"www.example.test.", dns.TypeAAAA, dns.RcodeSuccess, nil}, // the name exists: NODATA
		{"missing.example.test.", dns.TypeA, dns.RcodeNameError, nil},
		{"x.synth.lab.", dns.TypeA, dns.RcodeRefused, nil}, // not this zone, no synthetic names
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+dns.TypeToString[tt.qtype], func(t *testing.T) {
			r, err := c.Query(ctxFor(t, 5*time.Second), tt.name, tt.qtype)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rr := range r.Answer {
				if a, ok := rr.(*dns.A); ok {
					got = append(got, a.A.String())
				}
			}
			if r.Rcode != tt.rcode || strings.Join(got, ",") != strings.Join(tt.answers, ",") || !r.Authoritative {
				t.Errorf("%s %s: rcode %s answers %v (AA=%v), want %s %v", tt.name, dns.TypeToString[tt.qtype],
					dns.RcodeToString[r.Rcode], got, r.Authoritative, dns.RcodeToString[tt.rcode], tt.answers)
			}
			if tt.rcode == dns.RcodeNameError && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("NXDOMAIN without the SOA in authority: %v", r.Ns)
			}
		})
	}
}

// Synthetic answers are loopback data in 127.128.0.0/9, never a private
// range, and stable per name.
func TestSynthAIsLoopbackData(t *testing.T) {
	pfx := netip.MustParsePrefix("127.128.0.0/9")
	seen := map[netip.Addr]bool{}
	for i := range 500 {
		name := "n" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "." + SynthSuffix
		a := SynthA(name)
		if !pfx.Contains(a) || a.IsPrivate() || SynthA(strings.ToUpper(name)) != a {
			t.Fatalf("SynthA(%s) = %v", name, a)
		}
		seen[a] = true
	}
	if len(seen) < 495 {
		t.Errorf("500 names got %d distinct answers", len(seen))
	}
}

// The client binds the loopback address of a loopback server's family, so
// captures and reports show real addresses.
func TestClientBindsMatchingLoopback(t *testing.T) {
	tests := []struct {
		server string
		want   netip.Addr
	}{
		{"127.0.0.1:53", netip.MustParseAddr("127.0.0.1")},
		{"127.0.0.9:53", netip.MustParseAddr("127.0.0.1")},
		{"[::1]:53", netip.IPv6Loopback()},
		{"192.0.2.1:53", netip.IPv4Unspecified()},
		{"[2001:db8::1]:53", netip.IPv6Unspecified()},
	}
	for _, tt := range tests {
		t.Run(tt.server, func(t *testing.T) {
			server := netip.MustParseAddrPort(tt.server)
			if got := localFor(server.Addr()); got != tt.want {
				t.Errorf("localFor(%v) = %v, want %v", server.Addr(), got, tt.want)
			}
			if !server.Addr().IsLoopback() {
				return // no socket opened towards a non-loopback address
			}
			c, err := NewClient(Config{Server: server})
			if err != nil {
				var oe *net.OpError
				if errors.As(err, &oe) && server.Addr().Is6() {
					t.Skipf("no IPv6 loopback here: %v", err)
				}
				t.Fatal(err)
			}
			defer c.Close()
			if got := c.LocalAddrs()[0].Addr(); got != tt.want {
				t.Errorf("client bound %v, want %v", got, tt.want)
			}
		})
	}
}

func mustSend(t *testing.T, c *Client, name string) *Call {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	call, err := c.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	return call
}

func mustAnswer(t *testing.T, c *Client, name string) {
	t.Helper()
	r, err := c.Query(ctxFor(t, 5*time.Second), name, dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if a := answerA(r); a != SynthA(name) {
		t.Fatalf("%s: A %v, want %v", name, a, SynthA(name))
	}
}
