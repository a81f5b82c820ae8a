package dnsexp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// cookieLab is the size and window of dns/cookies: queries that learn
// the cookie, queries raced by forgeries (perKind of each kind), and the
// server's cookie window (RFC 9018's).
var cookieLab = struct {
	learn, forged, perKind int
	timeout                time.Duration
	maxAge, maxFuture      time.Duration
}{learn: 3, forged: 4, perKind: 3, timeout: 2 * time.Second, maxAge: time.Hour, maxFuture: 5 * time.Minute}

// cookieForgery is a way of forging an answer without the client's cookie.
type cookieForgery struct {
	name string
	want udpdns.Reason
	// cookie is what the forgery carries in its COOKIE option (nil: none).
	cookie func(rnd func([]byte)) []byte
}

var cookieForgeries = []cookieForgery{
	{"right ID, question and source; no cookie", udpdns.MissingCookie, func(func([]byte)) []byte { return nil }},
	{"right ID, question and source; a guessed cookie", udpdns.WrongCookie, func(rnd func([]byte)) []byte {
		b := make([]byte, udpdns.CookieLen)
		rnd(b)
		return b
	}},
}

// cookieProbe is a query the lab sends from a socket of its own with a
// cookie the server must refuse.
type cookieProbe struct {
	name    string
	from    netip.Addr
	cookie  []byte
	rcode   int
	verdict udpdns.CookieVerdict
	// measured
	local    netip.AddrPort
	gotRcode int
	err      error
}

func runCookies(env *lab.Env) error {
	x := &cookieRun{env: env, secret: env.Bytes("server secret")}
	secret := make([]byte, udpdns.CookieSecretLen)
	if _, err := x.secret.Read(secret); err != nil {
		return err
	}
	// Set up: the forger, the server with its secret, the rig (a client
	// with cookies).
	f, err := newForger()
	if err != nil {
		return &lab.EnvError{What: "opening a raw socket", Err: err, Remedy: "run the lab in its namespace (statelab run), which grants CAP_NET_RAW"}
	}
	env.Cleanup(func() { f.Close() })
	x.f = f
	srv, err := x.serve(secret)
	if err != nil {
		return err
	}
	wantRejected := int64(cookieLab.forged * cookieLab.perKind * len(cookieForgeries))
	var rejected atomic.Int64
	allIn := make(chan struct{})
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: cookieLab.timeout, retries: 1, cookies: true, trace: func(e udpdns.Event) {
		if e.Kind == udpdns.EventRejected && rejected.Add(1) == wantRejected {
			close(allIn)
		}
	}})
	if err != nil {
		return err
	}
	r.want.repliesFromServer = true
	x.rig = r
	// Drive: learn the cookie; forgeries race answers; probes with bad
	// cookies; a new server with the same secret; one with a new secret.
	x.askAll("learn", cookieLab.learn)
	x.learned = r.cl.Cookie()
	x.armed.Store(true)
	x.askAll("forged", cookieLab.forged)
	x.armed.Store(false)
	select {
	case <-allIn:
	case <-time.After(2 * time.Second):
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	x.probe(secret)
	srv.Close()
	x.firstServer = srv.Stats()
	x.written += x.firstServer.Written
	same, err := x.serve(secret)
	if err != nil {
		return fmt.Errorf("a new server with the same secret: %w", err)
	}
	x.sameOK = x.ask("restart-same-secret")
	x.sameCookie = r.cl.Cookie()
	x.sameStats = r.cl.Stats()
	same.Close()
	x.sameServer = same.Stats()
	x.written += x.sameServer.Written
	fresh := make([]byte, udpdns.CookieSecretLen)
	if _, err := x.secret.Read(fresh); err != nil {
		return err
	}
	renewed, err := x.serve(fresh)
	if err != nil {
		return fmt.Errorf("a new server with a new secret: %w", err)
	}
	x.newOK = x.ask("restart-new-secret")
	x.newCookie = r.cl.Cookie()
	renewed.Close()
	x.newServer = renewed.Stats()
	x.written += x.newServer.Written
	// Collect: every server closed, the forger done.
	pkts, st, err := r.collectPlus(len(x.probes), int(x.written)+f.Sent(),
		fmt.Sprintf("the three servers (%d answers written), the forger (%d datagrams sent)", x.written, f.Sent()))
	if err != nil {
		return err
	}
	x.judge(st)
	w := readCookies(pkts, r.server, r.client, x.probes, &r.said)
	commentRest(pkts)
	x.report(w, st)
	return nil
}

// cookieRun is one run of dns/cookies.
type cookieRun struct {
	env    *lab.Env
	rig    *rig
	f      *forger
	secret interface{ Read([]byte) (int, error) }
	armed  atomic.Bool

	mu      sync.Mutex
	forged  map[string]int // by kind
	forgErr error

	written               uint64 // answers written by the servers
	steps                 []outcome
	learned               []byte
	probes                []*cookieProbe
	sameOK, newOK         outcome
	sameCookie, newCookie []byte
	sameStats             udpdns.Stats
	sameServer, newServer udpdns.ServerStats
	firstServer           udpdns.ServerStats
}

// firstJudged is how many cookies the first server judged.
func (x *cookieRun) firstJudged() uint64 {
	n := uint64(0)
	for _, v := range x.firstServer.Cookies {
		n += v
	}
	return n
}

// serve starts a server on the lab's address with secret, the attacker
// in front of the zone.
func (x *cookieRun) serve(secret []byte) (*udpdns.Server, error) {
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: labServerAddr,
		Handler: x.watch(udpdns.BuiltinZone()),
		Cookies: &udpdns.CookieConfig{Secret: secret, MaxAge: cookieLab.maxAge, MaxFuture: cookieLab.maxFuture}})
	if err != nil {
		return nil, err
	}
	x.env.Cleanup(func() { srv.Close() })
	return srv, nil
}

// watch is the attacker: while armed, each query is raced by forged
// answers from the server's address that lack the client's cookie.
func (x *cookieRun) watch(next dns.Handler) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if ua, ok := w.RemoteAddr().(*net.UDPAddr); ok && x.armed.Load() && len(q.Question) == 1 {
			to := ua.AddrPort()
			x.forge(q, netip.AddrPortFrom(to.Addr().Unmap(), to.Port()))
		}
		next.ServeDNS(w, q)
	})
}

func (x *cookieRun) forge(q *dns.Msg, to netip.AddrPort) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.forged == nil {
		x.forged = map[string]int{}
	}
	rnd := x.env.Stream(fmt.Sprintf("forger %s %#04x", strings.ToLower(q.Question[0].Name), q.Id))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rnd.UintN(256))
		}
	}
	qq := q.Question[0]
	from := x.rig.server
	for range cookieLab.perKind {
		for _, k := range cookieForgeries {
			m := poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass)
			if c := k.cookie(fill); c != nil {
				m.SetEdns0(udpdns.ServerUDPSize, false)
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: fmt.Sprintf("%x", c)})
			}
			if err := x.f.Send(from, to, mustPack(m)); err != nil {
				x.forgErr = errors.Join(x.forgErr, err)
				continue
			}
			x.forged[k.name]++
		}
	}
}

func (x *cookieRun) ask(name string) outcome { return x.rig.askOne(name + "." + udpdns.SynthSuffix) }

func (x *cookieRun) askAll(prefix string, n int) {
	for i := range n {
		x.steps = append(x.steps, x.rig.askOne(synthName(prefix, i)))
	}
}

// probe sends, from sockets of the lab's own, queries with cookies the
// server must refuse, and records what came back.
func (x *cookieRun) probe(secret []byte) {
	lo, other := netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.AddrFrom4([4]byte{127, 0, 0, 2})
	own := x.learned
	var client [udpdns.ClientCookieLen]byte
	copy(client[:], own)
	now := time.Now()
	stamped := func(at time.Time) []byte {
		sc, _ := udpdns.ServerCookie(secret, client, lo, uint32(at.Unix()))
		return append(append([]byte(nil), client[:]...), sc[:]...)
	}
	forged := append([]byte(nil), own...)
	if len(forged) == udpdns.CookieLen {
		forged[len(forged)-1] ^= 0xff
	}
	x.probes = []*cookieProbe{
		{name: "forged (the hash's last byte changed)", from: lo, cookie: forged, rcode: dns.RcodeBadCookie, verdict: udpdns.CookieBadHash},
		{name: "transplanted: the client's valid cookie sent from 127.0.0.2", from: other, cookie: own, rcode: dns.RcodeBadCookie, verdict: udpdns.CookieBadHash},
		{name: fmt.Sprintf("expired: stamped %v ago", cookieLab.maxAge+time.Minute), from: lo, cookie: stamped(now.Add(-cookieLab.maxAge - time.Minute)), rcode: dns.RcodeBadCookie, verdict: udpdns.CookieExpired},
		{name: fmt.Sprintf("from the future: stamped %v ahead", cookieLab.maxFuture+time.Minute), from: lo, cookie: stamped(now.Add(cookieLab.maxFuture + time.Minute)), rcode: dns.RcodeBadCookie, verdict: udpdns.CookieFuture},
		{name: "malformed: 12 bytes", from: lo, cookie: own[:12], rcode: dns.RcodeFormatError, verdict: udpdns.CookieMalformed},
	}
	for i, p := range x.probes {
		p.local, p.gotRcode, p.err = sendProbe(p.from, x.rig.server, fmt.Sprintf("probe%d.%s", i, udpdns.SynthSuffix), p.cookie)
	}
}

// sendProbe sends one query with cookie from a fresh socket at from and
// reads its answer's rcode.
func sendProbe(from netip.Addr, server netip.AddrPort, name string, cookie []byte) (netip.AddrPort, int, error) {
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(server))
	if err != nil {
		return netip.AddrPort{}, -1, err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.Id = binary.BigEndian.Uint16(cookie[:2]) // any ID: the probe's socket is its own
	q.SetEdns0(udpdns.DefaultUDPSize, false)
	q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: fmt.Sprintf("%x", cookie)})
	if _, err := conn.Write(mustPack(q)); err != nil {
		return local, -1, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 4096)
	n, err := conn.Read(b)
	if err != nil {
		return local, -1, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(b[:n]); err != nil {
		return local, -1, err
	}
	return local, r.Rcode, nil
}

// collectPlus is collect with queries the lab sent from other sockets.
func (r *rig) collectPlus(extraQueries, replies int, repliesBy string) ([]*capture.Packet, udpdns.Stats, error) {
	st := r.cl.Stats()
	r.cl.Close()
	r.want.server, r.want.client = r.server, r.client
	r.want.queries = int(st.Sent-st.SendFailed) + extraQueries
	r.want.replies, r.want.repliesBy = replies, repliesBy
	pkts, err := stopComplete(r.env, r.cap, r.want)
	r.tl.emit(r.env)
	return pkts, st, err
}

// judge checks the callers, the client's rejections, the probes and the
// restarts.
func (x *cookieRun) judge(st udpdns.Stats) {
	env := x.env
	good := 0
	for _, o := range append(append([]outcome(nil), x.steps...), x.sameOK, x.newOK) {
		if o.ok {
			good++
		}
	}
	total := len(x.steps) + 2
	env.Check("every query answered with its own address", good == total, "%d of %d", good, total)
	x.mu.Lock()
	forged, ferr := x.forged, x.forgErr
	x.mu.Unlock()
	rows := [][]string{{"forgery", "sent", "client's verdict", "counted"}}
	allMatch, sent := ferr == nil, 0
	for _, k := range cookieForgeries {
		rows = append(rows, []string{k.name, fmt.Sprint(forged[k.name]), k.want.String(), fmt.Sprint(st.Rejected[k.want])})
		allMatch = allMatch && uint64(forged[k.name]) == st.Rejected[k.want] && forged[k.name] > 0
		sent += forged[k.name]
	}
	env.Table("forged answers without the client's cookie", rows)
	env.Check("every forgery without the client's cookie refused and counted", allMatch && st.RejectedTotal() == uint64(sent),
		"%d forged (send errors: %s), %d rejected (%s)", sent, lab.ErrText(ferr), st.RejectedTotal(), st)
	prow := [][]string{{"probe", "from", "server answered", "want"}}
	probesOK := true
	for _, p := range x.probes {
		got := dns.RcodeToString[p.gotRcode]
		if p.err != nil {
			got = p.err.Error()
		}
		prow = append(prow, []string{p.name, p.local.String(), got, dns.RcodeToString[p.rcode]})
		probesOK = probesOK && p.err == nil && p.gotRcode == p.rcode
	}
	env.Table("queries with cookies the server must refuse", prow)
	env.Check("forged, transplanted, expired and future cookies answered BADCOOKIE, a malformed one FORMERR", probesOK && len(x.probes) == 5, "%d probes", len(x.probes))
	env.Check("a new server with the same secret took the old cookie: no BADCOOKIE, the same cookie back",
		x.sameOK.ok && x.sameStats.BadCookie == 0 && bytes.Equal(x.sameCookie, x.learned) && x.sameServer.Cookies[udpdns.CookieValid] == 1,
		"answered %v; BADCOOKIE %d; cookie %x (held %x); server verdicts: %d valid", x.sameOK.ok, x.sameStats.BadCookie, x.sameCookie, x.learned, x.sameServer.Cookies[udpdns.CookieValid])
	env.Check("a new server with a new secret: one BADCOOKIE round trip, then answered with a fresh cookie",
		x.newOK.ok && st.BadCookie == 1 && x.newServer.Cookies[udpdns.CookieBadHash] == 1 && x.newServer.Cookies[udpdns.CookieValid] == 1 && !bytes.Equal(x.newCookie, x.learned),
		"answered %v; BADCOOKIE %d; server verdicts: %d wrong hash, %d valid; cookie renewed %v",
		x.newOK.ok, st.BadCookie, x.newServer.Cookies[udpdns.CookieBadHash], x.newServer.Cookies[udpdns.CookieValid], !bytes.Equal(x.newCookie, x.learned))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)
}
