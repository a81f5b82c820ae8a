package udpdns

import (
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
)

// Spoofing sets the size of dns/spoofing: real queries, and forgeries of
// each kind per query.
var Spoofing = struct {
	Queries, PerKind int
}{Queries: 20, PerKind: 12}

// poisonA is the address every forged answer carries.
var poisonA = netip.AddrFrom4([4]byte{6, 6, 6, 6})

// forgeryKind is one way of forging a reply to an observed query.
type forgeryKind struct {
	name string
	want Reason
	// make returns the forged datagram's source and payload for query q
	// (ID id) answered by server.
	make func(q *dns.Msg, server netip.AddrPort, randomID func() uint16) (netip.AddrPort, []byte)
}

func poisonReply(q *dns.Msg, id uint16, name string, qtype, qclass uint16) *dns.Msg {
	m := new(dns.Msg)
	m.Id = id
	m.Response, m.Authoritative = true, true
	m.Question = []dns.Question{{Name: name, Qtype: qtype, Qclass: qclass}}
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 86400},
		A: net.IP(poisonA.AsSlice())}}
	return m
}

func mustPack(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

var forgeryKinds = []forgeryKind{
	{"random ID, right question and source", WrongID, func(q *dns.Msg, srv netip.AddrPort, rid func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, rid(), qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right ID, wrong QNAME", WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, "evil."+SynthSuffix, qq.Qtype, qq.Qclass))
	}},
	{"right ID, wrong QTYPE", WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, qq.Name, dns.TypeAAAA, qq.Qclass))
	}},
	{"right ID, wrong QCLASS", WrongQuestion, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return srv, mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, dns.ClassCHAOS))
	}},
	{"right everything, from 127.0.0.2", WrongSource, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 2}), srv.Port()), mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right everything, from another port", WrongSource, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		port := srv.Port() + 1
		if port == 0 {
			port = srv.Port() - 1
		}
		return netip.AddrPortFrom(srv.Addr(), port), mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
	}},
	{"right everything but QR=0", NotResponse, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		m := poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass)
		m.Response = false
		return srv, mustPack(m)
	}},
	{"right ID, question cut short", Malformed, func(q *dns.Msg, srv netip.AddrPort, _ func() uint16) (netip.AddrPort, []byte) {
		qq := q.Question[0]
		b := mustPack(poisonReply(q, q.Id, qq.Name, qq.Qtype, qq.Qclass))
		return srv, b[:headerLen+3]
	}},
}

func init() {
	register(lab.Experiment{
		Name:    "dns/spoofing",
		Summary: "an on-path attacker floods forged replies while real queries run: none accepted, each rejection counted by reason",
		Shows: "A reply is accepted only when ID, question, source address and port all match (RFC 5452 §9.1): a flood of forged " +
			"replies from a raw socket completes no query, each is counted by why it failed, and a matcher that checked only the ID would have been poisoned every time.",
		Run: runSpoofing,
	})
}

// forgery is one forged datagram as the forger sent it.
type forgery struct {
	kind forgeryKind
	src  netip.AddrPort
	id   uint16
}

func runSpoofing(env *lab.Env) error {
	nq, per := Spoofing.Queries, Spoofing.PerKind
	forger, err := NewForger()
	if err != nil {
		return &lab.EnvError{What: "opening a raw socket", Err: err, Remedy: "run the lab in its namespace (statelab run), which grants CAP_NET_RAW"}
	}
	env.Cleanup(func() { forger.Close() })

	var (
		mu      sync.Mutex
		seenIDs = map[uint16]bool{}
		tally   = map[string]int{}
		ferr    error
		forged  []forgery // in the order sent, which is the capture's
	)
	var serverAddr atomic.Value
	srv, err := StartServer(ServerConfig{Addr: labServerAddr, Seed: env.Stream("server").Uint64(), Policy: func(q *dns.Msg, from netip.AddrPort, a *Action) {
		// The attacker sees the query on the wire and races the server.
		mu.Lock()
		defer mu.Unlock()
		seenIDs[q.Id] = true
		// Its guesses for this query come from a stream of their own.
		rnd := env.Stream(fmt.Sprintf("forger %s %#04x", strings.ToLower(q.Question[0].Name), q.Id))
		randomID := func() uint16 { // never an ID the attacker has seen: a blind guess
			for range 1000 {
				if id := uint16(rnd.UintN(1 << 16)); !seenIDs[id] {
					return id
				}
			}
			return 0
		}
		server := serverAddr.Load().(netip.AddrPort)
		for range per {
			for _, k := range forgeryKinds {
				src, payload := k.make(q, server, randomID)
				if err := forger.Send(src, from, payload); err != nil {
					if ferr == nil {
						ferr = err
					}
					continue
				}
				h, _ := ParseHead(payload)
				forged = append(forged, forgery{k, src, h.ID})
				tally[k.name]++
			}
		}
	}})
	if err != nil {
		return err
	}
	serverAddr.Store(srv.Addr())
	env.Cleanup(func() { srv.Close() })
	want, err := startWant()
	if err != nil {
		return err
	}
	var clientPort atomic.Uint32 // forged replies from other ports go to it
	keepSrv := keepPorts(srv.Addr().Port())
	cap, err := env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
		if keepSrv(p) {
			return true
		}
		m, ok := p.Decode()
		return ok && clientPort.Load() != 0 && m.Involves(uint16(clientPort.Load()))
	}})
	if err != nil {
		return err
	}
	wantRejected := nq * per * len(forgeryKinds)
	var rejected atomic.Int64
	allIn := make(chan struct{})
	var said verdicts
	cl, err := NewClient(Config{Server: srv.Addr(), Timeout: 3 * time.Second, Retries: 1, Rand: env.Bytes("client"), Trace: func(e Event) {
		said.trace(e)
		if e.Kind == EventRejected && rejected.Add(1) == int64(wantRejected) {
			close(allIn)
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })
	clientPort.Store(uint32(cl.LocalAddrs()[0].Port()))
	poisoned, good := 0, 0
	for i := range nq {
		name := fmt.Sprintf("s%d.%s", i, SynthSuffix)
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, err := cl.ExchangeRand(env.Ctx, m, queryRand(env, name))
		if err != nil {
			return fmt.Errorf("query %s: %w", name, err)
		}
		switch answerA(r) {
		case SynthA(name):
			good++
		case poisonA:
			poisoned++
		}
	}
	select { // every forgery judged (some may trail the genuine answer)
	case <-allIn:
	case <-time.After(2 * time.Second):
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	srv.Close() // the server and the forger (its Policy) are done: their counts are final
	st := cl.Stats()
	client := cl.LocalAddrs()[0]
	cl.Close()
	server := srv.Addr()
	mu.Lock()
	defer mu.Unlock()
	if ferr != nil {
		return ferr
	}
	sst := srv.Stats()
	want.server, want.client = server, client
	want.queries = int(st.Sent - st.SendFailed)
	want.replies = int(sst.Written) + forger.Sent()
	want.repliesBy = fmt.Sprintf("the server (%d answers written), the forger (%d datagrams sent)", sst.Written, forger.Sent())
	pkts, err := stopComplete(env, cap, want)
	if err != nil {
		return err
	}

	env.Check("no forged reply accepted", poisoned == 0 && good == nq && st.Matched == uint64(nq),
		"%d of %d queries answered with the real address, %d with the forged %v; %d forged datagrams sent", good, nq, poisoned, poisonA, forger.Sent())
	wantBy := [numReasons]int{}
	rows := [][]string{{"forgery", "sent", "expected verdict"}}
	for _, k := range forgeryKinds {
		wantBy[k.want] += tally[k.name]
		rows = append(rows, []string{k.name, fmt.Sprint(tally[k.name]), k.want.String()})
	}
	env.Table("the flood, per query × "+fmt.Sprint(nq)+" queries", rows)
	counted := [][]string{{"reason", "forged", "counted by the client"}}
	allMatch := true
	for r := Reason(0); r < numReasons; r++ {
		counted = append(counted, []string{r.String(), fmt.Sprint(wantBy[r]), fmt.Sprint(st.Rejected[r])})
		if uint64(wantBy[r]) != st.Rejected[r] {
			allMatch = false
		}
	}
	env.Table("rejections by reason", counted)
	env.Check("every forgery rejected and counted by its reason", allMatch && st.RejectedTotal() == uint64(forger.Sent()),
		"%d forged, %d rejected (%s)", forger.Sent(), st.RejectedTotal(), st)
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent(), "%s", st)

	// Replay the capture through a matcher that checks only the ID.
	naiveIn := map[uint16]string{}  // what an ID-only matcher has in flight
	strictIn := map[uint16]string{} // what the client has in flight
	naivePoisoned, forgedSeen, forgedUnlogged, idOnlyPass, queries := 0, 0, 0, 0, 0
	var lad *lab.Ladder
	ladRows := 0
	for _, w := range dnsPackets(pkts) {
		switch {
		case w.meta.Dst == server && !w.head.Response():
			naiveIn[w.head.ID] = wireName(w.head.QName)
			strictIn[w.head.ID] = naiveIn[w.head.ID]
			w.p.Comment(fmt.Sprintf("query %d: %s", queries, w.question()))
			queries++
			if lad == nil {
				lad = env.Ladder("query 1 under attack, as captured (forged replies come from a raw socket)", "client", "server / attacker")
				lad.Send(w.question(), "in flight", "")
			}
		case w.meta.Dst == client:
			genuine := w.meta.Src == server && w.msg != nil && answerA(w.msg) != poisonA
			qname, inflight := naiveIn[w.head.ID]
			var what, verdict, short string
			if genuine {
				what = "genuine answer"
				e, ok := said.nextWhere(w, func(e Event) bool { return e.Kind != EventRejected })
				verdict, short = "not read by the client", "not read"
				if ok {
					verdict, short = e.describe(), e.brief()
				}
				delete(strictIn, w.head.ID)
			} else {
				kind := "unknown kind"
				wantReason := classify(w, server, strictIn)
				if forgedSeen < len(forged) && forged[forgedSeen].src == w.meta.Src && forged[forgedSeen].id == w.head.ID {
					kind = forged[forgedSeen].kind.name
					wantReason = forged[forgedSeen].kind.want
				} else {
					forgedUnlogged++
				}
				forgedSeen++
				what = fmt.Sprintf("forged #%d (%s)", forgedSeen, kind)
				e, ok := said.nextWhere(w, func(e Event) bool { return e.Kind == EventRejected && e.Reason == wantReason })
				if !ok {
					e, ok = said.nextWhere(w, func(e Event) bool { return e.Kind == EventRejected })
				}
				verdict, short = "not read by the client", "not read"
				if ok {
					verdict, short = e.describe(), e.brief()
				}
				if _, in := strictIn[w.head.ID]; in {
					idOnlyPass++
				}
			}
			if inflight {
				delete(naiveIn, w.head.ID)
				if !genuine {
					naivePoisoned++
					verdict += "; an ID-only matcher would accept it for " + qname
				}
			}
			w.p.Comment(fmt.Sprintf("%s from %v: %s → %s; client: %s", what, w.meta.Src, w.question(), w.answer(), verdict))
			if lad != nil && ladRows < 6 && (genuine || ladRows < 5) {
				label := fmt.Sprintf("%s from %v", w.question(), w.meta.Src)
				if genuine {
					lad.Reply(label+" "+w.answer(), short, "")
					ladRows = 99
				} else {
					lad.Reply(label, short, "attacker")
					ladRows++
				}
			}
		}
	}
	commentRest(pkts)
	env.Check("the capture holds the forger's datagrams in the order it sent them", forgedSeen == len(forged) && forgedUnlogged == 0,
		"%d forged datagrams captured, %d sent, %d not where the forger's log puts them", forgedSeen, len(forged), forgedUnlogged)
	env.Check("a matcher checking only the ID would have been poisoned", naivePoisoned > 0,
		"replaying the capture: an ID-only matcher completes %d of %d queries with a forged answer; %d forged datagrams carried an in-flight ID (client counted %d)",
		naivePoisoned, nq, idOnlyPass, st.IDOnly)
	env.Metric("forged_count", float64(forger.Sent()))
	env.Metric("forged_accepted_count", float64(poisoned))
	env.Metric("naive_poisoned_queries_count", float64(naivePoisoned))
	env.Metric("id_only_would_pass_count", float64(st.IDOnly))
	env.Metric("naive_acceptance_ratio", float64(naivePoisoned)/float64(nq))
	env.Note("forged datagrams captured: %d; the attacker sees each query and forges %d replies of %d kinds before the server answers", forgedSeen, per*len(forgeryKinds), len(forgeryKinds))
	env.Note("a blind attacker (no view of the query) must also guess the ID (1 in 65,536) and the client's source port; DNS 0x20 (Config.Case0x20) adds a bit per letter of the name")
	return nil
}

// classify judges a captured datagram the way the client does, for the
// capture's comments.
func classify(w wirePkt, server netip.AddrPort, inflight map[uint16]string) Reason {
	switch {
	case !w.head.HasQuestion && w.head.QDCount == 1:
		return Malformed
	case !w.head.Response():
		return NotResponse
	}
	if _, ok := inflight[w.head.ID]; !ok {
		return WrongID
	}
	if w.meta.Src != server {
		return WrongSource
	}
	return WrongQuestion
}
