package dnsexp

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
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// spoofing is the size of dns/spoofing: real queries, and forgeries of
// each kind per query.
var spoofing = struct{ queries, perKind int }{queries: 20, perKind: 12}

func runSpoofing(env *lab.Env) error {
	nq := spoofing.queries
	// Set up: the attacker beside the server, the rig (capturing the
	// client's port too: some forgeries come from other ports).
	f, err := newForger()
	if err != nil {
		return &lab.EnvError{What: "opening a raw socket", Err: err, Remedy: "run the lab in its namespace (statelab run), which grants CAP_NET_RAW"}
	}
	env.Cleanup(func() { f.Close() })
	att := newAttacker(env, f, spoofing.perKind)
	srv, err := serveLab(env, att.watch)
	if err != nil {
		return err
	}
	att.setServer(srv.Addr())
	wantRejected := int64(nq * spoofing.perKind * len(forgeryKinds))
	var rejected atomic.Int64
	allIn := make(chan struct{})
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: 3 * time.Second, retries: 1, clientPort: true, trace: func(e udpdns.Event) {
		if e.Kind == udpdns.EventRejected && rejected.Add(1) == wantRejected {
			close(allIn)
		}
	}})
	if err != nil {
		return err
	}
	// Drive: the real queries, one after another, each raced by its
	// forgeries; then wait for every forgery to be judged (some may trail
	// the genuine answer).
	poisoned, good := 0, 0
	for i := range nq {
		o := r.askOne(synthName("s", i))
		if o.err != nil {
			return fmt.Errorf("query %s: %w", o.name, o.err)
		}
		switch {
		case o.ok:
			good++
		case o.got == poisonA.String():
			poisoned++
		}
	}
	select {
	case <-allIn:
	case <-time.After(2 * time.Second):
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	// Collect: the server and the forger (its middleware) are done once
	// the server is closed: their counts are final.
	srv.Close()
	forged, tally, ferr := att.done()
	if ferr != nil {
		return ferr
	}
	sst := srv.Stats()
	pkts, st, err := r.collect(int(sst.Written)+f.Sent(),
		fmt.Sprintf("the server (%d answers written), the forger (%d datagrams sent)", sst.Written, f.Sent()), 0)
	if err != nil {
		return err
	}
	env.Check("no forged reply accepted", poisoned == 0 && good == nq && st.Matched == uint64(nq),
		"%d of %d queries answered with the real address, %d with the forged %v; %d forged datagrams sent", good, nq, poisoned, poisonA, f.Sent())
	judgeRejections(env, nq, tally, st, f.Sent())
	w := readSpoofing(pkts, r.server, r.client, forged, &r.said)
	commentRest(pkts)
	w.report(env, nq, poisoned, st, f.Sent())
	return nil
}

// forgery is one forged datagram as the forger sent it.
type forgery struct {
	kind forgeryKind
	src  netip.AddrPort
	id   uint16
}

// attacker sees every query on its way to the server and races the
// server's answer with perKind forgeries of every kind.
type attacker struct {
	env     *lab.Env
	f       *forger
	perKind int

	mu      sync.Mutex
	server  netip.AddrPort
	seenIDs map[uint16]bool
	tally   map[string]int // forgeries sent, by kind
	forged  []forgery      // in the order sent, which is the capture's
	err     error
}

func newAttacker(env *lab.Env, f *forger, perKind int) *attacker {
	return &attacker{env: env, f: f, perKind: perKind, seenIDs: map[uint16]bool{}, tally: map[string]int{}}
}

func (a *attacker) setServer(s netip.AddrPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.server = s
}

// watch is the attacker as middleware: it forges, then the server answers.
func (a *attacker) watch(next dns.Handler) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		if ua, ok := w.RemoteAddr().(*net.UDPAddr); ok && len(q.Question) == 1 {
			to := ua.AddrPort()
			a.forge(q, netip.AddrPortFrom(to.Addr().Unmap(), to.Port()))
		}
		next.ServeDNS(w, q)
	})
}

// forge sends every forgery for query q to the client at to.
func (a *attacker) forge(q *dns.Msg, to netip.AddrPort) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seenIDs[q.Id] = true
	// Its guesses for this query come from a stream of their own.
	rnd := a.env.Stream(fmt.Sprintf("forger %s %#04x", strings.ToLower(q.Question[0].Name), q.Id))
	randomID := func() uint16 { // never an ID the attacker has seen: a blind guess
		for range 1000 {
			if id := uint16(rnd.UintN(1 << 16)); !a.seenIDs[id] {
				return id
			}
		}
		return 0
	}
	for range a.perKind {
		for _, k := range forgeryKinds {
			src, payload := k.make(q, a.server, randomID)
			if err := a.f.Send(src, to, payload); err != nil {
				if a.err == nil {
					a.err = err
				}
				continue
			}
			h, _ := udpdns.ParseHead(payload)
			a.forged = append(a.forged, forgery{k, src, h.ID})
			a.tally[k.name]++
		}
	}
}

// done returns what the attacker sent (call it once the server is closed).
func (a *attacker) done() ([]forgery, map[string]int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.forged, a.tally, a.err
}

// judgeRejections checks the client's rejection counts against the
// forgeries sent, by reason, and tables both.
func judgeRejections(env *lab.Env, nq int, tally map[string]int, st udpdns.Stats, sent int) {
	wantBy := make([]int, len(st.Rejected))
	rows := [][]string{{"forgery", "sent", "expected verdict"}}
	for _, k := range forgeryKinds {
		wantBy[k.want] += tally[k.name]
		rows = append(rows, []string{k.name, fmt.Sprint(tally[k.name]), k.want.String()})
	}
	env.Table("the flood, per query × "+fmt.Sprint(nq)+" queries", rows)
	counted := [][]string{{"reason", "forged", "counted by the client"}}
	allMatch := true
	for r := range st.Rejected {
		if cookieReason(udpdns.Reason(r)) && wantBy[r] == 0 && st.Rejected[r] == 0 {
			continue // this experiment's client sends no cookies
		}
		counted = append(counted, []string{udpdns.Reason(r).String(), fmt.Sprint(wantBy[r]), fmt.Sprint(st.Rejected[r])})
		allMatch = allMatch && uint64(wantBy[r]) == st.Rejected[r]
	}
	env.Table("rejections by reason", counted)
	env.Check("every forgery rejected and counted by its reason", allMatch && st.RejectedTotal() == uint64(sent),
		"%d forged, %d rejected (%s)", sent, st.RejectedTotal(), st)
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent(), "%s", st)
}

// spoofWire is the capture of dns/spoofing replayed.
type spoofWire struct {
	queries int
	// forgedSeen: forged datagrams captured; forgedUnlogged: those not
	// where the forger's log puts them.
	forgedSeen, forgedUnlogged int
	// naivePoisoned: queries an ID-only matcher would have completed with
	// a forgery; idOnlyPass: forgeries that carried an in-flight ID.
	naivePoisoned, idOnlyPass int
	ladder                    []lab.Rung // query 1 under attack; nil when no query was captured
}

// readSpoofing replays the capture through two matchers — the client's
// (strict) and one that checks only the ID — comments every datagram with
// what it is and what the client said of it, and draws the first query's
// ladder under attack.
func readSpoofing(pkts []*capture.Packet, server, client netip.AddrPort, forged []forgery, said *verdicts) spoofWire {
	var w spoofWire
	naiveIn := map[uint16]string{}  // what an ID-only matcher has in flight
	strictIn := map[uint16]string{} // what the client has in flight
	var lad *lab.Ladder
	ladRows := 0
	for _, d := range dnsPackets(pkts) {
		switch {
		case d.meta.Dst == server && !d.head.Response():
			naiveIn[d.head.ID], strictIn[d.head.ID] = d.head.Name(), d.head.Name()
			d.p.Comment(annotate.Append(fmt.Sprintf("query %d: %s", w.queries, d.question()), queryBlock(d, w.queries, 1)))
			w.queries++
			if lad == nil {
				lad = &lab.Ladder{}
				lad.Send(d.question(), "in flight", "")
				lad.When(d.p.Time)
			}
		case d.meta.Dst == client:
			genuine := d.meta.Src == server && d.msg != nil && answerA(d.msg) != poisonA
			var what, verdict, short string
			if genuine {
				what = "genuine answer"
				verdict, short = said.saidWhere(d, func(e udpdns.Event) bool { return e.Kind != udpdns.EventRejected })
				delete(strictIn, d.head.ID)
			} else {
				what, verdict, short = w.forgery(d, server, strictIn, forged, said)
			}
			if qname, inflight := naiveIn[d.head.ID]; inflight {
				delete(naiveIn, d.head.ID)
				if !genuine {
					w.naivePoisoned++
					verdict += "; an ID-only matcher would accept it for " + qname
				}
			}
			side, kind := "server", "answer"
			if !genuine {
				side, kind = "forger", "forged"
			}
			d.p.Comment(annotate.Append(fmt.Sprintf("%s from %v: %s → %s; client: %s", what, d.meta.Src, d.question(), d.answer(), verdict),
				judged(dnsBlock(side, kind, d.head.ID), verdict)))
			if lad != nil && ladRows < 6 && (genuine || ladRows < 5) {
				label := fmt.Sprintf("%s from %v", d.question(), d.meta.Src)
				if genuine {
					lad.Reply(label+" "+d.answer(), short, "")
					lad.When(d.p.Time)
					ladRows = 99
				} else {
					lad.Reply(label, short, "attacker")
					lad.When(d.p.Time)
					lad.Tag(lab.FateForged)
					ladRows++
				}
				lad.Explain(d.p.Comments[len(d.p.Comments)-1])
			}
		}
	}
	if lad != nil {
		w.ladder = lad.Rows
	}
	return w
}

// forgery names a forged datagram by the forger's log (in sending order),
// and finds the client's verdict on it: the one its kind expects first.
func (w *spoofWire) forgery(d wirePkt, server netip.AddrPort, strictIn map[uint16]string, forged []forgery, said *verdicts) (what, verdict, short string) {
	kind := "unknown kind"
	wantReason := classify(d, server, strictIn)
	if w.forgedSeen < len(forged) && forged[w.forgedSeen].src == d.meta.Src && forged[w.forgedSeen].id == d.head.ID {
		kind = forged[w.forgedSeen].kind.name
		wantReason = forged[w.forgedSeen].kind.want
	} else {
		w.forgedUnlogged++
	}
	w.forgedSeen++
	if _, in := strictIn[d.head.ID]; in {
		w.idOnlyPass++
	}
	rejected := func(e udpdns.Event) bool { return e.Kind == udpdns.EventRejected }
	if e, ok := said.nextWhere(d, func(e udpdns.Event) bool { return rejected(e) && e.Reason == wantReason }); ok {
		verdict, short = describe(e), brief(e)
	} else {
		verdict, short = said.saidWhere(d, rejected)
	}
	return fmt.Sprintf("forged #%d (%s)", w.forgedSeen, kind), verdict, short
}

// classify judges a captured datagram the way the client does, for the
// capture's comments when the forger's log does not name it.
func classify(w wirePkt, server netip.AddrPort, inflight map[uint16]string) udpdns.Reason {
	switch {
	case !w.head.HasQuestion && w.head.QDCount == 1:
		return udpdns.Malformed
	case !w.head.Response():
		return udpdns.NotResponse
	}
	if _, ok := inflight[w.head.ID]; !ok {
		return udpdns.WrongID
	}
	if w.meta.Src != server {
		return udpdns.WrongSource
	}
	return udpdns.WrongQuestion
}

// report records the replay's checks, the metrics and the notes.
func (w spoofWire) report(env *lab.Env, nq, poisoned int, st udpdns.Stats, sent int) {
	if w.ladder != nil {
		lad := capturedLadder(env, "query 1 under attack, as captured (forged replies come from a raw socket)", "client", "server / attacker")
		lad.Rows = w.ladder
	}
	env.Check("the capture holds the forger's datagrams in the order it sent them", w.forgedSeen == sent && w.forgedUnlogged == 0,
		"%d forged datagrams captured, %d sent, %d not where the forger's log puts them", w.forgedSeen, sent, w.forgedUnlogged)
	env.Check("a matcher checking only the ID would have been poisoned", w.naivePoisoned > 0,
		"replaying the capture: an ID-only matcher completes %d of %d queries with a forged answer; %d forged datagrams carried an in-flight ID (client counted %d)",
		w.naivePoisoned, nq, w.idOnlyPass, st.IDOnly)
	env.Metric("forged_count", float64(sent))
	env.Metric("forged_accepted_count", float64(poisoned))
	env.Metric("naive_poisoned_queries_count", float64(w.naivePoisoned))
	env.Metric("id_only_would_pass_count", float64(st.IDOnly))
	env.Metric("naive_acceptance_ratio", float64(w.naivePoisoned)/float64(nq))
	env.Note("forged datagrams captured: %d; the attacker sees each query and forges %d replies of %d kinds before the server answers",
		w.forgedSeen, spoofing.perKind*len(forgeryKinds), len(forgeryKinds))
	env.Note("a blind attacker (no view of the query) must also guess the ID (1 in 65,536) and the client's source port; DNS 0x20 (Config.Case0x20) adds a bit per letter of the name")
}

// cookieReason reports a rejection only a client with cookies makes.
func cookieReason(r udpdns.Reason) bool { return r == udpdns.MissingCookie || r == udpdns.WrongCookie }
