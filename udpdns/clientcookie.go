package udpdns

import (
	"bytes"

	"github.com/miekg/dns"
)

// addEDNS gives q (a shallow copy of the caller's message) an OPT record
// of its own advertising Config.UDPSize and, with Config.Cookies, the
// client's cookie: the client cookie, then the server's once learned. The
// caller's OPT record, if any, is copied, never changed.
func (c *Client) addEDNS(q *dns.Msg) {
	if c.cfg.UDPSize == 0 && !c.cfg.Cookies {
		return
	}
	extra := make([]dns.RR, 0, len(q.Extra)+1)
	for _, rr := range q.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			rr = dns.Copy(rr)
			rr.(*dns.OPT).SetUDPSize(c.cfg.UDPSize)
		}
		extra = append(extra, rr)
	}
	q.Extra = extra
	if q.IsEdns0() == nil {
		q.SetEdns0(c.cfg.UDPSize, false)
	}
	if c.cfg.Cookies {
		setCookie(q, c.Cookie(), c.cfg.UDPSize)
	}
}

// Cookie is the cookie the client sends now: its client cookie, followed
// by the server cookie once one was learned (nil without Config.Cookies).
func (c *Client) Cookie() []byte {
	if !c.cfg.Cookies {
		return nil
	}
	c.cookieMu.Lock()
	defer c.cookieMu.Unlock()
	out := make([]byte, 0, ClientCookieLen+len(c.serverCookie))
	out = append(out, c.clientCookie[:]...)
	return append(out, c.serverCookie...)
}

// checkCookie judges the cookie of an answer that matched its query in
// everything else (Config.Cookies): the client cookie must be the
// client's own; once a server cookie has been learned, an answer must
// carry a cookie at all. An answer that passes teaches the client the
// server cookie it carries.
func (c *Client) checkCookie(m *dns.Msg) (Reason, bool) {
	if !c.cfg.Cookies {
		return 0, true
	}
	raw, present, err := MsgCookie(m)
	c.cookieMu.Lock()
	defer c.cookieMu.Unlock()
	if !present {
		if c.serverCookie != nil {
			return MissingCookie, false
		}
		return 0, true // a server without cookies, as far as the client knows
	}
	if err != nil {
		return WrongCookie, false
	}
	client, server, err := ParseCookie(raw)
	if err != nil || client != c.clientCookie {
		return WrongCookie, false
	}
	if len(server) > 0 && !bytes.Equal(server, c.serverCookie) {
		c.serverCookie = append([]byte(nil), server...)
	}
	return 0, true
}
