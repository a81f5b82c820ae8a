package dnsexp

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// loss is dns/loss: queries, which of them lose their first attempt, which
// one is answered late, and the client's per-attempt timeout. The timeout
// is long enough (1 s) that on a loaded machine the queries the server
// answers at once are not retried; the dropped and held ones time out by
// design.
var loss = struct {
	queries int
	dropped []int
	late    int
	timeout time.Duration
}{queries: 16, dropped: []int{3, 7, 12}, late: 5, timeout: time.Second}

func runLoss(env *lab.Env) error {
	names := synthNames("l", loss.queries)
	// Set up: the zone behind the plan (drop the first attempt of some
	// queries, hold one answer until its retry came), the rig.
	plan := newLossPlan(names)
	srv, err := serveLab(env, dnsfault.Act(plan.decide))
	if err != nil {
		return err
	}
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: loss.timeout, retries: 4, trace: plan.trace})
	if err != nil {
		return err
	}
	// Drive: all in flight together, first attempts in order; then wait
	// for the held answer to come back late.
	outs, err := r.askAll(names)
	if err != nil {
		return err
	}
	var late udpdns.Event
	gotLate := false
	select {
	case late = <-plan.lateSeen:
		gotLate = true
	case <-time.After(5 * time.Second):
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	// Collect: held answers not yet written are abandoned as the server
	// closes: its count is final.
	srv.Close()
	sst := srv.Stats()
	pkts, st, err := r.collect(int(sst.Written), fmt.Sprintf("the server (%d answers written)", sst.Written), 0)
	if err != nil {
		return err
	}
	heldID, heldDone := plan.held()
	judgeLoss(env, outs, st, late, gotLate, heldID, heldDone)
	w := readLoss(pkts, r.server, names, plan.lateName, heldID, &r.said)
	commentRest(pkts)
	w.report(env, heldID, st)
	return nil
}

// lossPlan is the server's side of dns/loss: it drops the first attempt
// of the dropped names and holds the answer to the late name's first
// attempt until its retry arrived; and, from the client's trace, it picks
// out what became of the held answer.
type lossPlan struct {
	dropped  map[string]bool
	lateName string
	lateSeen chan udpdns.Event // the held answer's late event

	mu           sync.Mutex
	seen         map[string]int // attempts that reached the server, by name
	lateID       uint16         // the held answer's ID
	heldMatched  bool           // the held answer completed a query (it must not)
	lateSent     chan struct{}  // the held answer was written
	retryArrived chan struct{}  // the late name's retry reached the server
}

func newLossPlan(names []string) *lossPlan {
	p := &lossPlan{dropped: map[string]bool{}, lateName: names[loss.late], lateSeen: make(chan udpdns.Event, 1),
		seen: map[string]int{}, lateSent: make(chan struct{}), retryArrived: make(chan struct{})}
	for _, i := range loss.dropped {
		p.dropped[names[i]] = true
	}
	return p
}

// decide is the server's Action for one query.
func (p *lossPlan) decide(_ dns.ResponseWriter, q *dns.Msg) dnsfault.Action {
	n := strings.ToLower(q.Question[0].Name)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[n]++
	switch {
	case p.dropped[n] && p.seen[n] == 1:
		return dnsfault.Action{Drop: true}
	case n == p.lateName && p.seen[n] == 1:
		// Hold the first answer until the retry has arrived.
		p.lateID = q.Id
		return dnsfault.Action{Hold: p.retryArrived, Sent: func(error) { close(p.lateSent) }}
	case n == p.lateName && p.seen[n] == 2:
		// The retry proves the client gave up on the first ID; release
		// the late answer, then answer the retry after it.
		close(p.retryArrived)
		return dnsfault.Action{Hold: p.lateSent}
	}
	return dnsfault.Action{}
}

// trace picks the held answer's events out by its ID (under load other
// answers may come late too): its late event, and any match it made.
func (p *lossPlan) trace(e udpdns.Event) {
	if e.Kind != udpdns.EventLate && e.Kind != udpdns.EventMatched {
		return
	}
	p.mu.Lock()
	held := p.seen[p.lateName] > 0 && e.ID == p.lateID && strings.EqualFold(e.Name, p.lateName)
	if held && e.Kind == udpdns.EventMatched {
		p.heldMatched = true
	}
	p.mu.Unlock()
	if held && e.Kind == udpdns.EventLate {
		select {
		case p.lateSeen <- e:
		default:
		}
	}
}

// held is the held answer's ID and whether it completed a query.
func (p *lossPlan) held() (uint16, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lateID, p.heldMatched
}

// judgeLoss checks the callers and the client's counters.
func judgeLoss(env *lab.Env, outs []outcome, st udpdns.Stats, late udpdns.Event, gotLate bool, heldID uint16, heldDone bool) {
	good := 0
	var fails []string
	for _, o := range outs {
		if o.ok {
			good++
		} else {
			fails = append(fails, fmt.Sprintf("%s: %v", o.name, o.err))
		}
	}
	env.Check("every query answered despite the losses", good == loss.queries,
		"%d of %d answered with their own address; failures: %s", good, loss.queries, lab.List(fails))
	minLost := uint64(len(loss.dropped) + 1)
	env.Check("each lost attempt timed out and was retried", st.TimedOut >= minLost && st.Retries == st.TimedOut,
		"%d attempts timed out (at least %d expected: %d dropped + 1 held), %d retries", st.TimedOut, minLost, len(loss.dropped), st.Retries)
	env.Check("the late answer counted late and completed nothing",
		gotLate && late.ID == heldID && !heldDone && st.Late >= 1 && st.Matched == uint64(loss.queries),
		"late event for id=%#04x (held answer id=%#04x), held id completed a query: %v, late=%d, matched=%d of %d",
		late.ID, heldID, heldDone, st.Late, st.Matched, loss.queries)
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)
}

// lossWire is what the capture of dns/loss shows.
type lossWire struct {
	lateName                 string
	lateQueries, lateAnswers []wirePkt // the late name's attempts and answers
	dropIDs                  map[uint16]bool
	ladder                   []lab.Rung // the late name's story
}

// readLoss comments every query (dropped ones as such) and answer (the
// held one as such, with the client's verdicts), and draws the late
// name's story: held answer against retry.
func readLoss(pkts []*capture.Packet, server netip.AddrPort, names []string, lateName string, heldID uint16, said *verdicts) lossWire {
	w := lossWire{lateName: lateName, dropIDs: map[uint16]bool{}}
	ds := dnsPackets(pkts)
	answered := map[uint16]bool{}
	for _, d := range ds {
		if d.head.Response() {
			answered[d.head.ID] = true
		}
	}
	index := map[string]int{}
	for i, n := range names {
		index[n] = i
	}
	var lad lab.Ladder
	attempts := map[string]int{}
	for _, d := range ds {
		n := d.name()
		switch {
		case d.meta.Dst == server && !d.head.Response():
			attempts[n]++
			what := fmt.Sprintf("query %d (attempt %d): %s", index[n], attempts[n], d.question())
			if !answered[d.head.ID] {
				w.dropIDs[d.head.ID] = true
				what += ": dropped by the server; the client will time out and retry with a fresh ID"
			}
			d.p.Comment(annotate.Append(what, queryBlock(d, index[n], attempts[n])))
			if n == lateName {
				w.lateQueries = append(w.lateQueries, d)
				w.lateQuery(&lad, d)
			}
		case d.meta.Src == server && d.head.Response():
			verdict, short := said.said(d)
			what := fmt.Sprintf("answer to query %d %s → %s", index[n], d.question(), d.answer())
			blk := judged(dnsBlock("server", "answer", d.head.ID).Uint(annotate.Query, uint64(index[n])), verdict)
			switch {
			case n != lateName:
				d.p.Comment(annotate.Append(what+"; client: "+verdict, blk))
			case d.head.ID == heldID:
				w.lateAnswers = append(w.lateAnswers, d)
				d.p.Comment(annotate.Append(fmt.Sprintf("held answer to the first attempt, released once the retry arrived: %s; client: %s", what, verdict), blk.Str(annotate.Note, "held")))
				lad.Reply(d.question()+" (held)", short, "")
				lad.When(d.p.Time)
				lad.Tag(lab.FateLate)
			default:
				w.lateAnswers = append(w.lateAnswers, d)
				d.p.Comment(annotate.Append(fmt.Sprintf("answer to the retry: %s; client: %s", what, verdict), blk))
				lad.Reply(d.question()+" "+d.answer(), short, "")
				lad.When(d.p.Time)
			}
		}
	}
	w.ladder = lad.Rows
	return w
}

// lateQuery draws an attempt of the late name.
func (w *lossWire) lateQuery(lad *lab.Ladder, d wirePkt) {
	state, server := "in flight", "holds the answer"
	if len(w.lateQueries) > 1 {
		state = fmt.Sprintf("id %#04x timed out: quarantined; retry in flight", w.lateQueries[0].head.ID)
		server = "answers"
	}
	lad.Send(d.question(), state, server)
	lad.When(d.p.Time)
}

// freshIDs reports whether every attempt of the late name carried its own
// ID, the first the held one, and the held answer was on the wire before
// any answer to a retry. (Under load a retry may time out too and be
// retried again.)
func (w lossWire) freshIDs(heldID uint16) bool {
	ids := map[uint16]bool{}
	for _, d := range w.lateQueries {
		ids[d.head.ID] = true
	}
	return len(w.lateQueries) >= 2 && len(ids) == len(w.lateQueries) && w.lateQueries[0].head.ID == heldID &&
		len(w.lateAnswers) >= 2 && w.lateAnswers[0].head.ID == heldID
}

// report records the wire's checks, the ladder, metrics and note.
func (w lossWire) report(env *lab.Env, heldID uint16, st udpdns.Stats) {
	lad := capturedLadder(env, fmt.Sprintf("%s: held answer vs. retry, as captured", w.lateName), "client", "server")
	lad.Rows = w.ladder
	env.Check("the retry carried a fresh ID and the late answer the old one", w.freshIDs(heldID),
		"%s: %d queries, %d answers on the wire; first id=%#04x (held %#04x), retry id=%#04x, first answer id=%#04x",
		w.lateName, len(w.lateQueries), len(w.lateAnswers), idAt(w.lateQueries, 0), heldID, idAt(w.lateQueries, 1), idAt(w.lateAnswers, 0))
	env.Check("the capture shows the dropped queries unanswered", len(w.dropIDs) >= len(loss.dropped),
		"%d query IDs never answered on the wire (%d dropped by design)", len(w.dropIDs), len(loss.dropped))
	env.Metric("timed_out_count", float64(st.TimedOut))
	env.Metric("late_count", float64(st.Late))
	env.Metric("retries_count", float64(st.Retries))
	env.Metric("attempt_timeout_ms", float64(loss.timeout.Milliseconds()))
	env.Note("the timed-out ID stays in quarantine (3× the timeout) so the late answer is recognised as late: miekg/dns issue 1156 is a late reply completing a newer query that reused the ID")
}

func idAt(ws []wirePkt, i int) uint16 {
	if i < len(ws) {
		return ws[i].head.ID
	}
	return 0
}
