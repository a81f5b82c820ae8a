package dnsexp

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// cookieWire is what the capture of dns/cookies shows.
type cookieWire struct {
	// clientQueries from the client's socket; firstCookie the length of
	// the first one's cookie; full those carrying a client and a server
	// cookie, with optionBytes their COOKIE options' bytes (4-byte option
	// header included) in total.
	clientQueries, firstCookie, full, optionBytes, fullLen int
	// learnedInFirstAnswer: the first answer brought a cookie with the
	// client's own client cookie and a server cookie.
	learnedInFirstAnswer bool
	forgedSeen           int
	badCookies           int
	probeAnswers         map[string]string // probe name → rcode, as captured
	ladder               []lab.Rung
}

// wireCookie is the COOKIE option's data of a captured message, and
// whether it had one.
func wireCookie(d wirePkt) ([]byte, bool) {
	if d.msg == nil {
		return nil, false
	}
	b, ok, err := udpdns.MsgCookie(d.msg)
	return b, ok && err == nil
}

// describeCookie says what a cookie is: "none", "client cookie only (8
// bytes)", "24 bytes: client 8 + server 16 stamped 10:53:05".
func describeCookie(b []byte, ok bool) string {
	if !ok {
		return "no cookie"
	}
	_, server, err := udpdns.ParseCookie(b)
	switch {
	case err != nil:
		return fmt.Sprintf("a malformed %d-byte cookie", len(b))
	case len(server) == 0:
		return "client cookie only (8 bytes)"
	case len(server) == udpdns.ServerCookieLen:
		ts := time.Unix(int64(uint32(server[4])<<24|uint32(server[5])<<16|uint32(server[6])<<8|uint32(server[7])), 0).UTC()
		return fmt.Sprintf("%d bytes: client 8 + server 16 (version %d, stamped %s)", len(b), server[0], ts.Format("15:04:05"))
	}
	return fmt.Sprintf("%d bytes: client 8 + server %d", len(b), len(server))
}

// readCookies comments every datagram with what it carries and what the
// client or the server made of it, measures the cookies carried, and
// draws the learning, a forgery and the BADCOOKIE round trip.
func readCookies(pkts []*capture.Packet, server, client netip.AddrPort, probes []*cookieProbe, said *verdicts) cookieWire {
	w := cookieWire{probeAnswers: map[string]string{}}
	byPort := map[netip.AddrPort]*cookieProbe{}
	for _, p := range probes {
		byPort[p.local] = p
	}
	var lad lab.Ladder
	forgedDrawn, answers := 0, 0
	drawBad := false
	for _, d := range dnsPackets(pkts) {
		c, has := wireCookie(d)
		switch {
		case d.meta.Dst == server && d.meta.Src == client:
			w.clientQueries++
			if w.clientQueries == 1 {
				w.firstCookie = len(c)
			}
			if _, s, err := udpdns.ParseCookie(c); has && err == nil && len(s) > 0 {
				w.full++
				w.optionBytes += 4 + len(c)
				w.fullLen = len(c)
			}
			phase := ""
			switch {
			case strings.HasPrefix(d.name(), "restart-same-secret"):
				phase = " — to a new server with the same secret"
			case strings.HasPrefix(d.name(), "restart-new-secret"):
				phase = " — to a new server with a new secret"
			}
			p := d.p
			p.Comment(annotate.Append(fmt.Sprintf("query %s; cookie: %s%s", d.question(), describeCookie(c, has), phase), dnsBlock("client", "query", d.head.ID)))
			if w.clientQueries == 1 || (strings.HasPrefix(d.name(), "restart-new-secret") && len(lad.Rows) < 12) {
				lad.Send(fmt.Sprintf("%s %s", d.question(), shortCookie(c, has)), "", "")
				lad.When(d.p.Time)
				drawBad = w.clientQueries > 1
			}
		case d.meta.Dst == server:
			pr := byPort[d.meta.Src]
			name := "an unknown sender"
			if pr != nil {
				name = pr.name
			}
			d.p.Comment(annotate.Append(fmt.Sprintf("probe from %v, %s: %s; cookie: %s", d.meta.Src, name, d.question(), describeCookie(c, has)),
				dnsBlock("prober", "probe", d.head.ID).Str(annotate.Note, name)))
		case d.meta.Src == server && d.meta.Dst == client && d.msg != nil && answerA(d.msg) == poisonA:
			w.forgedSeen++
			want, kind := udpdns.MissingCookie, "no cookie"
			if has {
				want, kind = udpdns.WrongCookie, "a guessed cookie"
			}
			verdict, short := said.saidWhere(d, func(e udpdns.Event) bool { return e.Kind == udpdns.EventRejected && e.Reason == want })
			d.p.Comment(annotate.Append(fmt.Sprintf("forged answer #%d from %v (raw socket) with %s: ID, question and source right, → %v; client: %s",
				w.forgedSeen, d.meta.Src, kind, poisonA, verdict), judged(dnsBlock("forger", "forged", d.head.ID), verdict)))
			if forgedDrawn < 2 {
				forgedDrawn++
				lad.Reply(fmt.Sprintf("forged, %s: A %v", kind, poisonA), short, "attacker")
				lad.When(d.p.Time)
				lad.Tag(lab.FateForged)
			}
		case d.meta.Src == server && d.meta.Dst == client:
			answers++
			verdict, short := said.said(d)
			if d.msg.Rcode == dns.RcodeBadCookie {
				w.badCookies++
				d.p.Comment(annotate.Append(fmt.Sprintf("BADCOOKIE (extended RCODE 23) to %s with a fresh server cookie (%s): the cookie was made with another secret; the server kept nothing to look up — the hash did not match; client: %s, asks again with the new cookie",
					d.question(), describeCookie(c, has), verdict), judged(dnsBlock("server", "answer", d.head.ID), verdict).Str(annotate.Note, "BADCOOKIE")))
			} else {
				d.p.Comment(annotate.Append(fmt.Sprintf("answer %s → %s; cookie: %s; client: %s", d.question(), d.answer(), describeCookie(c, has), verdict),
					judged(dnsBlock("server", "answer", d.head.ID), verdict)))
			}
			if answers == 1 {
				cl, s, err := udpdns.ParseCookie(c)
				w.learnedInFirstAnswer = has && err == nil && len(s) == udpdns.ServerCookieLen && d.msg.Rcode == dns.RcodeSuccess && cl == firstClient(pkts, server, client)
				lad.Reply(d.answer()+" "+shortCookie(c, has), "learns the server cookie", "keeps nothing")
				lad.When(d.p.Time)
			} else if drawBad && len(lad.Rows) < 12 {
				if d.msg.Rcode == dns.RcodeBadCookie {
					short = "BADCOOKIE: asks again"
				}
				lad.Reply(dns.RcodeToString[d.msg.Rcode]+" "+shortCookie(c, has), short, "new secret: kept nothing")
				lad.When(d.p.Time)
			}
		case d.meta.Src == server:
			pr := byPort[d.meta.Dst]
			name := "?"
			if pr != nil {
				name = pr.name
				w.probeAnswers[pr.name] = rcodeOf(d)
			}
			d.p.Comment(annotate.Append(fmt.Sprintf("the server's answer to the probe (%s): %s, cookie: %s — judged by recomputing the hash, no table", name, rcodeOf(d), describeCookie(c, has)),
				dnsBlock("server", "answer", d.head.ID).Str(annotate.Note, name+": "+rcodeOf(d))))
		}
	}
	w.ladder = lad.Rows
	return w
}

// firstClient is the client cookie of the client's first captured query.
func firstClient(pkts []*capture.Packet, server, client netip.AddrPort) [udpdns.ClientCookieLen]byte {
	for _, d := range dnsPackets(pkts) {
		if d.meta.Src == client && d.meta.Dst == server {
			c, _ := wireCookie(d)
			cl, _, _ := udpdns.ParseCookie(c)
			return cl
		}
	}
	return [udpdns.ClientCookieLen]byte{}
}

func rcodeOf(d wirePkt) string {
	if d.msg == nil {
		return "(malformed)"
	}
	return dns.RcodeToString[d.msg.Rcode]
}

// shortCookie is a cookie in a few characters, for a ladder.
func shortCookie(b []byte, ok bool) string {
	if !ok {
		return "(no cookie)"
	}
	return fmt.Sprintf("COOKIE %dB", len(b))
}

// report records the wire's checks, ladder, metrics and holding row.
func (x *cookieRun) report(w cookieWire, st udpdns.Stats) {
	env := x.env
	lad := capturedLadder(env, "learning the cookie, two forgeries, and a new secret's BADCOOKIE round trip, as captured", "client", "server")
	lad.Rows = w.ladder
	env.Check("the client learned the server's cookie from its first answer and sent it in every query after",
		w.firstCookie == udpdns.ClientCookieLen && w.learnedInFirstAnswer && w.full == w.clientQueries-1 && w.fullLen == udpdns.CookieLen,
		"first query's cookie %d bytes; first answer brought a server cookie: %v; %d of the %d later queries carried %d bytes",
		w.firstCookie, w.learnedInFirstAnswer, w.full, w.clientQueries-1, w.fullLen)
	env.Check("the capture holds the forgeries and one BADCOOKIE", w.forgedSeen == x.f.Sent() && w.badCookies == 1,
		"%d forged captured of %d sent; %d BADCOOKIE answers to the client", w.forgedSeen, x.f.Sent(), w.badCookies)
	per := 0
	if w.full > 0 {
		per = w.optionBytes / w.full
	}
	judged := uint64(0)
	for _, s := range []udpdns.ServerStats{x.sameServer, x.newServer} {
		for _, n := range s.Cookies {
			judged += n
		}
	}
	env.Metric("cookie_bytes", float64(w.fullLen))
	env.Metric("cookie_option_bytes_per_query", float64(per))
	env.Metric("forged_count", float64(w.forgedSeen))
	env.Metric("forged_accepted_count", float64(uint64(w.forgedSeen)-st.RejectedTotal()))
	env.Metric("badcookie_round_trips_count", float64(st.BadCookie))
	env.Note("the server's secret is %d bytes and the only thing it keeps: every cookie is checked by recomputing SipHash-2-4 over the client cookie, version, timestamp and the client's address (RFC 9018)", udpdns.CookieSecretLen)
	env.Note("the forger is given the query's ID, question and port, as an off-path attacker who guessed them all; only the 8-byte client cookie stops it. An on-path attacker who reads the query reads the cookie too: cookies defend against off-path forgery only (RFC 7873 §9)")
	lost := fmt.Sprintf("nothing with the same secret (the old cookie accepted, %d BADCOOKIE); %d BADCOOKIE round trip with a new one", x.sameStats.BadCookie, st.BadCookie-x.sameStats.BadCookie)
	env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("nothing per client: a %d-byte secret for all (%d queries judged by recomputing a hash)", udpdns.CookieSecretLen, judged+x.firstJudged()),
		ClientCarries: fmt.Sprintf("a %d-byte cookie (%d client + %d server) in every query once learned (%d of %d captured queries)",
			w.fullLen, udpdns.ClientCookieLen, w.fullLen-udpdns.ClientCookieLen, w.full, w.clientQueries),
		RestartLoses: lost,
		CarriedBytes: per,
		CarriedPer:   "per query (the COOKIE option: 4-byte header + cookie, from the capture)",
	})
}
