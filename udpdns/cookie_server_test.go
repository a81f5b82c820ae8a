package udpdns

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// The client learns the server's cookie from its first answer and sends
// all 24 bytes from then on; the server answers each query and counts the
// cookies by verdict, keeping nothing per client.
func TestCookiesLearnedAndSent(t *testing.T) {
	srv := startServer(t, ServerConfig{Cookies: &CookieConfig{}})
	c := newClient(t, Config{Server: srv.Addr(), Cookies: true})
	if got := c.Cookie(); len(got) != ClientCookieLen {
		t.Fatalf("before any answer the client sends %d bytes of cookie, want 8", len(got))
	}
	for i := range 3 {
		r, err := c.Query(ctxFor(t, 5*time.Second), synthName(i), dns.TypeA)
		if err != nil || answerA(r) != SynthA(synthName(i)) {
			t.Fatalf("query %d: %v %v", i, r, err)
		}
	}
	if got := c.Cookie(); len(got) != CookieLen {
		t.Errorf("after answers the client sends %d bytes of cookie, want 24", len(got))
	}
	st := srv.Stats()
	if st.Cookies[CookieClientOnly] != 1 || st.Cookies[CookieValid] != 2 {
		t.Errorf("server verdicts %v, want 1 client-only, 2 valid", st.Cookies)
	}
}

func synthName(i int) string { return string(rune('a'+i)) + "." + SynthSuffix }

// A new server with the same secret takes the old cookie (answers, and
// hands it back unchanged); one with a new secret answers BADCOOKIE once,
// with a fresh cookie, and the client's retry with it is answered.
func TestCookiesAcrossServerRestart(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 16)
	srv := startServer(t, ServerConfig{Cookies: &CookieConfig{Secret: secret}})
	addr := srv.Addr()
	c := newClient(t, Config{Server: addr, Cookies: true})
	ask := func() *dns.Msg {
		t.Helper()
		r, err := c.Query(ctxFor(t, 5*time.Second), "x."+SynthSuffix, dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ask()
	held := c.Cookie()
	restart := func(sec []byte) *Server {
		srv.Close()
		srv = startServer(t, ServerConfig{Addr: addr.String(), Cookies: &CookieConfig{Secret: sec}})
		return srv
	}
	same := restart(secret)
	ask()
	if st := c.Stats(); st.BadCookie != 0 || !bytes.Equal(c.Cookie(), held) || same.Stats().Cookies[CookieValid] != 1 {
		t.Errorf("same secret: %d BADCOOKIE, cookie %x (held %x), server verdicts %v", st.BadCookie, c.Cookie(), held, same.Stats().Cookies)
	}
	fresh := restart(nil)
	if r := ask(); r.Rcode != dns.RcodeSuccess {
		t.Errorf("after a new secret: rcode %s", dns.RcodeToString[r.Rcode])
	}
	st := c.Stats()
	if st.BadCookie != 1 || bytes.Equal(c.Cookie(), held) || fresh.Stats().Cookies[CookieBadHash] != 1 || fresh.Stats().Cookies[CookieValid] != 1 {
		t.Errorf("new secret: %d BADCOOKIE (want 1), cookie renewed %v, server verdicts %v", st.BadCookie, !bytes.Equal(c.Cookie(), held), fresh.Stats().Cookies)
	}
}

// rawQuery sends one query with the cookie given from local and returns
// the answer.
func rawQuery(t *testing.T, local netip.Addr, server netip.AddrPort, cookie []byte) *dns.Msg {
	t.Helper()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), net.UDPAddrFromAddrPort(server))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion("x."+SynthSuffix, dns.TypeA)
	setCookie(q, cookie, 1232)
	if _, err := conn.Write(mustPack(q)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b[:n]); err != nil {
		t.Fatal(err)
	}
	return r
}

// The server refuses cookies that are not its own for this client:
// forged, transplanted to another address, expired, from the future —
// BADCOOKIE with a fresh cookie — and a malformed one with FORMERR.
func TestServerRefusesBadCookies(t *testing.T) {
	secret := bytes.Repeat([]byte{9}, 16)
	srv := startServer(t, ServerConfig{Cookies: &CookieConfig{Secret: secret}})
	lo, other := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	client := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	cookieAt := func(ip netip.Addr, age time.Duration) []byte {
		sc, _ := ServerCookie(secret, client, ip, uint32(time.Now().Add(-age).Unix()))
		return append(client[:], sc[:]...)
	}
	forged := append(client[:], 1, 0, 0, 0, 0x5c, 0xf7, 0x9f, 0x11, 1, 2, 3, 4, 5, 6, 7, 8)
	tests := []struct {
		name    string
		from    netip.Addr
		cookie  []byte
		rcode   int
		verdict CookieVerdict
	}{
		{"its own, from its address", lo, cookieAt(lo, 0), dns.RcodeSuccess, CookieValid},
		{"forged", lo, forged, dns.RcodeBadCookie, CookieBadHash},
		{"transplanted from 127.0.0.1 to 127.0.0.2", other, cookieAt(lo, 0), dns.RcodeBadCookie, CookieBadHash},
		{"expired", lo, cookieAt(lo, DefaultCookieMaxAge+time.Minute), dns.RcodeBadCookie, CookieExpired},
		{"from the future", lo, cookieAt(lo, -DefaultCookieMaxFuture-time.Minute), dns.RcodeBadCookie, CookieFuture},
		{"malformed (12 bytes)", lo, client[:] /* padded below */, dns.RcodeFormatError, CookieMalformed},
	}
	tests[5].cookie = append(append([]byte(nil), client[:]...), 1, 2, 3, 4)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Stats().Cookies[tt.verdict]
			r := rawQuery(t, tt.from, srv.Addr(), tt.cookie)
			if r.Rcode != tt.rcode || srv.Stats().Cookies[tt.verdict] != before+1 {
				t.Fatalf("rcode %s, verdicts %v; want %s, one more %v", dns.RcodeToString[r.Rcode], srv.Stats().Cookies, dns.RcodeToString[tt.rcode], tt.verdict)
			}
			if tt.rcode == dns.RcodeBadCookie {
				raw, _, _ := MsgCookie(r)
				c, s, err := ParseCookie(raw)
				if err != nil || c != client || len(r.Answer) != 0 {
					t.Fatalf("BADCOOKIE carries %x (%v), %d answers", raw, err, len(r.Answer))
				}
				v := srv.Cookies().Check(c, s, tt.from)
				if v != CookieValid {
					t.Errorf("the fresh cookie in BADCOOKIE is %v", v)
				}
			}
		})
	}
}

// Once the client holds the server's cookie, an answer that matches ID,
// source and question but carries no cookie, or another client cookie,
// is rejected and counted; the genuine answer still completes the query.
func TestClientRefusesAnswersWithoutItsCookie(t *testing.T) {
	var armed atomic.Bool
	srv := startServer(t, ServerConfig{Cookies: &CookieConfig{}, Handler: dnsfault.Chain(BuiltinZone(), func(next dns.Handler) dns.Handler {
		return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			if armed.Load() { // from the server's own socket (the right source), before the answer
				qq := q.Question[0]
				bare := poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass)
				_, _ = w.Write(mustPack(bare))
				wrong := poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass)
				setCookie(wrong, bytes.Repeat([]byte{0xee}, CookieLen), 1232)
				_, _ = w.Write(mustPack(wrong))
			}
			next.ServeDNS(w, q)
		})
	})})
	c := newClient(t, Config{Server: srv.Addr(), Cookies: true})
	if _, err := c.Query(ctxFor(t, 5*time.Second), "first."+SynthSuffix, dns.TypeA); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	r, err := c.Query(ctxFor(t, 5*time.Second), "second."+SynthSuffix, dns.TypeA)
	if err != nil || answerA(r) != SynthA("second."+SynthSuffix) {
		t.Fatalf("answer %v %v, want the genuine one", r, err)
	}
	st := c.Stats()
	if st.Rejected[MissingCookie] != 1 || st.Rejected[WrongCookie] != 1 || st.Matched != 2 {
		t.Errorf("stats %s; want one missing-cookie and one wrong-cookie rejection, 2 matched", st)
	}
}
