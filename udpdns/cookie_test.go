package udpdns

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The server cookie is RFC 9018's, byte for byte: its Appendix A vectors.
func TestServerCookieRFC9018Vectors(t *testing.T) {
	tests := []struct {
		name, secret, client, ip string
		ts                       uint32
		want                     string
	}{
		{"A.1 learning a new server cookie", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559731985, "010000005cf79f111f8130c3eee29480"},
		{"A.2 the same client, a renewed cookie", "e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "198.51.100.100", 1559734385, "010000005cf7a871d4a564a1442aca77"},
		{"A.3 another client, a renewed cookie", "e5e973e5a6b2a43f48e7dc849e37bfcf", "fc93fc62807ddb86", "203.0.113.203", 1559734700, "010000005cf7a9acf73a7810aca2381e"},
		{"A.4 IPv6, a rolled secret", "445536bcd2513298075a5d379663c962", "22681ab97d52c298", "2001:db8:220:1:59de:d0f4:8769:82b8", 1559741961, "010000005cf7c609a6bb79d16625507a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ServerCookie(unhex(t, tt.secret), [8]byte(unhex(t, tt.client)), netip.MustParseAddr(tt.ip), tt.ts)
			if err != nil || hex.EncodeToString(got[:]) != tt.want {
				t.Errorf("server cookie %x (%v), want %s", got, err, tt.want)
			}
		})
	}
}

// Check accepts the appendix's cookies as the client returns them (the
// reserved bytes a client set count in the hash) and refuses them from
// another address, under another secret, too old or too far ahead.
func TestCookieCheckVerdicts(t *testing.T) {
	at := func(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }
	tests := []struct {
		name, secret, ip, cookie string
		now                      int64
		want                     CookieVerdict
	}{
		{"A.3: reserved bytes the client set are hashed as sent", "e5e973e5a6b2a43f48e7dc849e37bfcf", "203.0.113.203",
			"fc93fc62807ddb8601abcdef5cf78f71a314227b6679ebf5", 0x5cf78f71 + 60, CookieValid},
		{"A.4: the old secret's cookie under the old secret", "dd3bdf9344b678b185a6f5cb60fca715", "2001:db8:220:1:59de:d0f4:8769:82b8",
			"22681ab97d52c298010000005cf7c57926556bd0934c72f8", 0x5cf7c579, CookieValid},
		{"A.4: the old secret's cookie after the secret rolled", "445536bcd2513298075a5d379663c962", "2001:db8:220:1:59de:d0f4:8769:82b8",
			"22681ab97d52c298010000005cf7c57926556bd0934c72f8", 0x5cf7c579, CookieBadHash},
		{"transplanted: a valid cookie from another address", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.101",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985, CookieBadHash},
		{"forged: another hash", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29481", 1559731985, CookieBadHash},
		{"an hour old: the last second it holds", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 + 3600, CookieValid},
		{"expired: an hour and a second old", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 + 3601, CookieExpired},
		{"five minutes ahead: within the skew", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 - 300, CookieValid},
		{"from the future: five minutes and a second ahead", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957010000005cf79f111f8130c3eee29480", 1559731985 - 301, CookieFuture},
		{"version 2", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c957020000005cf79f111f8130c3eee29480", 1559731985, CookieBadVersion},
		{"an 8-byte server cookie of another kind", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100",
			"2464c4abcf10c9570100000011223344", 1559731985, CookieBadVersion},
		{"client cookie only", "e5e973e5a6b2a43f48e7dc849e37bfcf", "198.51.100.100", "2464c4abcf10c957", 1559731985, CookieClientOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCookies(CookieConfig{Secret: unhex(t, tt.secret), Now: at(tt.now)})
			if err != nil {
				t.Fatal(err)
			}
			client, server, err := ParseCookie(unhex(t, tt.cookie))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Check(client, server, netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("verdict %v, want %v", got, tt.want)
			}
		})
	}
}

// The window is the lab's to set: a 10-second MaxAge expires a cookie
// 11 seconds old.
func TestCookieWindowConfigurable(t *testing.T) {
	now := time.Unix(1559731985, 0)
	c, err := NewCookies(CookieConfig{Secret: make([]byte, 16), MaxAge: 10 * time.Second, MaxFuture: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("127.0.0.1")
	client := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, tt := range []struct {
		age  int64
		want CookieVerdict
	}{{0, CookieValid}, {10, CookieValid}, {11, CookieExpired}, {-1, CookieValid}, {-2, CookieFuture}} {
		sc, _ := ServerCookie(make([]byte, 16), client, ip, uint32(now.Unix()-tt.age))
		if got := c.Check(client, sc[:], ip); got != tt.want {
			t.Errorf("a cookie %ds old: %v, want %v", tt.age, got, tt.want)
		}
	}
}

// A COOKIE option is 8 bytes, or 16 to 40; anything else is malformed.
func TestParseCookieLengths(t *testing.T) {
	for _, tt := range []struct {
		n      int
		ok     bool
		server int
	}{{0, false, 0}, {7, false, 0}, {8, true, 0}, {9, false, 0}, {15, false, 0}, {16, true, 8}, {24, true, 16}, {40, true, 32}, {41, false, 0}} {
		_, server, err := ParseCookie(make([]byte, tt.n))
		if (err == nil) != tt.ok || len(server) != tt.server {
			t.Errorf("%d bytes: server %d bytes, err %v; want ok=%v, %d", tt.n, len(server), err, tt.ok, tt.server)
		}
		if err != nil && !errors.Is(err, ErrCookie) {
			t.Errorf("%d bytes: error %v is not ErrCookie", tt.n, err)
		}
	}
	if _, err := NewCookies(CookieConfig{Secret: make([]byte, 15)}); !errors.Is(err, ErrCookie) || !strings.Contains(err.Error(), "15 bytes, want 16") {
		t.Errorf("a 15-byte secret: %v", err)
	}
}

// FuzzParseCookie: the parser never panics, accepts exactly the lengths
// RFC 7873 allows, and a cookie it accepts survives a round trip through
// a message; Judge never panics on what a query carries.
func FuzzParseCookie(f *testing.F) {
	for _, s := range []string{"", "2464c4abcf10c957", "2464c4abcf10c957010000005cf79f111f8130c3eee29480", "2464c4abcf10c95701", strings.Repeat("ab", 41)} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	c, err := NewCookies(CookieConfig{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		client, server, err := ParseCookie(b)
		n := len(b)
		valid := n == 8 || (n >= 16 && n <= 40)
		if (err == nil) != valid {
			t.Fatalf("%d bytes: err %v", n, err)
		}
		if err == nil && (!bytes.Equal(client[:], b[:8]) || !bytes.Equal(server, b[8:])) {
			t.Fatalf("split %x into %x | %x", b, client, server)
		}
		q := new(dns.Msg)
		q.SetQuestion("x.lab.", dns.TypeA)
		setCookie(q, b, 1232)
		v, answer := c.Judge(q, netip.MustParseAddr("127.0.0.1"))
		switch {
		case !valid && v != CookieMalformed:
			t.Fatalf("%d bytes judged %v", n, v)
		case valid && (len(answer) != CookieLen || !bytes.Equal(answer[:8], b[:8])):
			t.Fatalf("%d bytes: answered with %x", n, answer)
		case valid && n > 8 && v == CookieValid:
			t.Fatalf("a random cookie %x judged valid", b)
		}
	})
}
