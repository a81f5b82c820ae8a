package udpdns

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// DNS cookies (RFC 7873) with the interoperable server cookie of RFC 9018:
// the client sends 8 random bytes; the server answers with 16 of its own —
// version 1, three reserved bytes, a timestamp and SipHash-2-4 over the
// client cookie, those 8 bytes and the client's address, keyed by a secret.
// The server keeps no table: it recomputes the hash to check a cookie.
const (
	// ClientCookieLen is the client cookie's length.
	ClientCookieLen = 8
	// ServerCookieLen is the length of an RFC 9018 server cookie.
	ServerCookieLen = 16
	// CookieLen is a client and an RFC 9018 server cookie together.
	CookieLen = ClientCookieLen + ServerCookieLen
	// CookieSecretLen is the length of the server's secret (SipHash's key).
	CookieSecretLen = 16
	// CookieVersion is the RFC 9018 server cookie version made and checked.
	CookieVersion = 1
	// MinServerCookieLen and MaxServerCookieLen bound any server cookie
	// (RFC 7873 §4.2): other lengths are malformed.
	MinServerCookieLen = 8
	MaxServerCookieLen = 32
)

// Defaults of the cookie window (RFC 9018 §4.3): a server cookie older
// than an hour or more than five minutes ahead is invalid; one older than
// half an hour is replaced by a fresh one in the answer.
const (
	DefaultCookieMaxAge    = time.Hour
	DefaultCookieMaxFuture = 5 * time.Minute
	DefaultCookieRenewAge  = 30 * time.Minute
)

// ErrCookie: a COOKIE option of a length RFC 7873 §5.2.2 calls malformed,
// or a secret of the wrong length.
var ErrCookie = errors.New("udpdns: malformed DNS cookie")

// Preallocated so the parser never allocates.
var (
	errCookieShort  = fmt.Errorf("%w: shorter than the 8-byte client cookie", ErrCookie)
	errCookieServer = fmt.Errorf("%w: a server cookie must be 8 to 32 bytes", ErrCookie)
)

// ParseCookie splits a COOKIE option's data into the client cookie and the
// server cookie (empty when the option holds only a client cookie). Any
// length other than 8, or 16 to 40, is ErrCookie. server aliases b.
func ParseCookie(b []byte) (client [ClientCookieLen]byte, server []byte, err error) {
	if len(b) < ClientCookieLen {
		return client, nil, errCookieShort
	}
	copy(client[:], b)
	server = b[ClientCookieLen:]
	if n := len(server); n != 0 && (n < MinServerCookieLen || n > MaxServerCookieLen) {
		return client, nil, errCookieServer
	}
	return client, server, nil
}

// MsgCookie returns the data of m's first COOKIE option (RFC 7873 §5.2:
// later ones are ignored) and whether there was one. An option whose data
// is not hex (miekg keeps it as hex) is ErrCookie.
func MsgCookie(m *dns.Msg) ([]byte, bool, error) {
	o := m.IsEdns0()
	if o == nil {
		return nil, false, nil
	}
	for _, e := range o.Option {
		if c, ok := e.(*dns.EDNS0_COOKIE); ok {
			b, err := hex.DecodeString(c.Cookie)
			if err != nil {
				return nil, true, fmt.Errorf("%w: %w", ErrCookie, err)
			}
			return b, true, nil
		}
	}
	return nil, false, nil
}

// setCookie puts cookie as m's one COOKIE option, adding an OPT record
// advertising udpSize when m has none.
func setCookie(m *dns.Msg, cookie []byte, udpSize uint16) {
	o := m.IsEdns0()
	if o == nil {
		m.SetEdns0(udpSize, false)
		o = m.IsEdns0()
	}
	opts := o.Option[:0:0]
	for _, e := range o.Option {
		if e.Option() != dns.EDNS0COOKIE {
			opts = append(opts, e)
		}
	}
	o.Option = append(opts, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(cookie)})
}

// CookieVerdict is what a server made of a query's cookie.
type CookieVerdict uint8

// Cookie verdicts.
const (
	// CookieNone: the query carried no COOKIE option (answered as usual).
	CookieNone CookieVerdict = iota
	// CookieMalformed: the option's length is not one RFC 7873 allows
	// (answered FORMERR).
	CookieMalformed
	// CookieClientOnly: a client cookie alone, a client's first query
	// (answered, with a server cookie).
	CookieClientOnly
	// CookieValid: the server cookie is this server's for this client
	// cookie and address, within the window (answered).
	CookieValid
	// CookieBadHash: the hash does not match — forged, made with another
	// secret, or sent from another address than it was made for
	// (BADCOOKIE).
	CookieBadHash
	// CookieExpired: older than the window allows (BADCOOKIE).
	CookieExpired
	// CookieFuture: stamped further ahead than the window allows
	// (BADCOOKIE).
	CookieFuture
	// CookieBadVersion: not a 16-byte version 1 server cookie (BADCOOKIE).
	CookieBadVersion
	numCookieVerdicts
)

var cookieVerdictNames = [numCookieVerdicts]string{"no cookie", "malformed", "client cookie only", "valid",
	"wrong hash", "expired", "from the future", "not an RFC 9018 cookie"}

func (v CookieVerdict) String() string {
	if v < numCookieVerdicts {
		return cookieVerdictNames[v]
	}
	return fmt.Sprintf("cookie verdict(%d)", uint8(v))
}

// Bad reports whether the verdict earns BADCOOKIE.
func (v CookieVerdict) Bad() bool { return v >= CookieBadHash && v < numCookieVerdicts }

// CookieConfig configures a server's cookies. Zero durations pick the
// RFC 9018 defaults.
type CookieConfig struct {
	// Secret keys the hash; nil: 16 random bytes when the server is built
	// (then a new server instance has a new secret, and every client
	// pays one BADCOOKIE round trip).
	Secret []byte
	// MaxAge and MaxFuture are the window: a cookie stamped more than
	// MaxAge ago, or more than MaxFuture ahead, is invalid.
	MaxAge, MaxFuture time.Duration
	// RenewAge: a valid cookie older than this is answered with a fresh
	// one; a younger one comes back unchanged.
	RenewAge time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Cookies makes and checks RFC 9018 server cookies with one secret. It
// keeps nothing per client. Safe for concurrent use (it is read-only).
type Cookies struct {
	secret                   [CookieSecretLen]byte
	maxAge, maxFuture, renew time.Duration
	now                      func() time.Time
}

// NewCookies checks cfg and draws a secret when none is given.
func NewCookies(cfg CookieConfig) (*Cookies, error) {
	c := &Cookies{maxAge: cfg.MaxAge, maxFuture: cfg.MaxFuture, renew: cfg.RenewAge, now: cfg.Now}
	switch len(cfg.Secret) {
	case 0:
		_, _ = rand.Read(c.secret[:]) // never fails (Go ≥ 1.24)
	case CookieSecretLen:
		copy(c.secret[:], cfg.Secret)
	default:
		return nil, fmt.Errorf("%w: the secret is %d bytes, want %d", ErrCookie, len(cfg.Secret), CookieSecretLen)
	}
	if c.maxAge <= 0 {
		c.maxAge = DefaultCookieMaxAge
	}
	if c.maxFuture <= 0 {
		c.maxFuture = DefaultCookieMaxFuture
	}
	if c.renew <= 0 {
		c.renew = min(DefaultCookieRenewAge, c.maxAge/2)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Secret is the key in use (the lab shows its length and reuses it for a
// restart).
func (c *Cookies) Secret() []byte { return append([]byte(nil), c.secret[:]...) }

// Window is how old and how far ahead a cookie may be.
func (c *Cookies) Window() (maxAge, maxFuture time.Duration) { return c.maxAge, c.maxFuture }

// ServerCookie computes the RFC 9018 server cookie for a client cookie and
// address at Unix time ts, with reserved bytes zero.
func ServerCookie(secret []byte, client [ClientCookieLen]byte, ip netip.Addr, ts uint32) ([ServerCookieLen]byte, error) {
	var key [CookieSecretLen]byte
	if len(secret) != CookieSecretLen {
		return [ServerCookieLen]byte{}, fmt.Errorf("%w: the secret is %d bytes, want %d", ErrCookie, len(secret), CookieSecretLen)
	}
	copy(key[:], secret)
	var sc [ServerCookieLen]byte
	sc[0] = CookieVersion
	binary.BigEndian.PutUint32(sc[4:8], ts)
	binary.LittleEndian.PutUint64(sc[8:], cookieHash(&key, client, sc[:8], ip))
	return sc, nil
}

// cookieHash is SipHash-2-4 over client cookie | version | reserved |
// timestamp | client IP (4 or 16 bytes), as RFC 9018 §4.4 puts them.
func cookieHash(key *[CookieSecretLen]byte, client [ClientCookieLen]byte, head []byte, ip netip.Addr) uint64 {
	var buf [ClientCookieLen + 8 + 16]byte
	n := copy(buf[:], client[:])
	n += copy(buf[n:], head[:8])
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		n += copy(buf[n:], a[:])
	} else {
		a := ip.As16()
		n += copy(buf[n:], a[:])
	}
	return sipHash24(key, buf[:n])
}

// Make is a fresh server cookie for client at ip, stamped now.
func (c *Cookies) Make(client [ClientCookieLen]byte, ip netip.Addr) [ServerCookieLen]byte {
	sc, _ := ServerCookie(c.secret[:], client, ip, uint32(c.now().Unix()))
	return sc
}

// Check judges a server cookie sent with client from ip. server is the
// part after the client cookie (may be empty).
func (c *Cookies) Check(client [ClientCookieLen]byte, server []byte, ip netip.Addr) CookieVerdict {
	if len(server) == 0 {
		return CookieClientOnly
	}
	if len(server) != ServerCookieLen || server[0] != CookieVersion {
		return CookieBadVersion
	}
	if binary.LittleEndian.Uint64(server[8:]) != cookieHash(&c.secret, client, server[:8], ip) {
		return CookieBadHash
	}
	// Serial-number arithmetic (RFC 1982) on the 32-bit timestamp: a
	// cookie stamped just before the counter wrapped is seconds old.
	age := int32(uint32(c.now().Unix()) - binary.BigEndian.Uint32(server[4:8]))
	switch {
	case time.Duration(age)*time.Second > c.maxAge:
		return CookieExpired
	case time.Duration(-age)*time.Second > c.maxFuture:
		return CookieFuture
	}
	return CookieValid
}

// fresh reports whether a valid server cookie is young enough to come
// back unchanged.
func (c *Cookies) fresh(server []byte) bool {
	age := int32(uint32(c.now().Unix()) - binary.BigEndian.Uint32(server[4:8]))
	return time.Duration(age)*time.Second < c.renew
}

// Judge reads req's cookie from ip: the verdict and, unless the query
// carried none or a malformed one, the full cookie to answer with (the
// client cookie and this server's cookie: the one sent when valid and
// fresh, else a new one).
func (c *Cookies) Judge(req *dns.Msg, ip netip.Addr) (CookieVerdict, []byte) {
	raw, ok, err := MsgCookie(req)
	if !ok {
		return CookieNone, nil
	}
	if err != nil {
		return CookieMalformed, nil
	}
	client, server, err := ParseCookie(raw)
	if err != nil {
		return CookieMalformed, nil
	}
	v := c.Check(client, server, ip)
	out := make([]byte, 0, CookieLen)
	out = append(out, client[:]...)
	if v == CookieValid && c.fresh(server) {
		return v, append(out, server...)
	}
	sc := c.Make(client, ip)
	return v, append(out, sc[:]...)
}
