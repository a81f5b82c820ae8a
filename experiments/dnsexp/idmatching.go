package dnsexp

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// idMatching is the size of dns/id-matching: concurrent queries and the
// server's random extra delay per answer.
var idMatching = struct {
	queries int
	jitter  time.Duration
}{queries: 300, jitter: 4 * time.Millisecond}

func runIDMatching(env *lab.Env) error {
	n := idMatching.queries
	// Set up: the zone behind a seeded jitter, so answers leave out of
	// order; the rig.
	srv, err := serveLab(env, dnsfault.Jitter(idMatching.jitter, dnsfault.NewDraws(env.Stream("server").Uint64())))
	if err != nil {
		return err
	}
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: 3 * time.Second, retries: 2})
	if err != nil {
		return err
	}
	env.Logf("server %s, client %v, %d queries", r.server, r.client, n)
	// Drive: every caller in flight together, first attempts in order.
	outs, err := r.askAll(synthNames("q", n))
	if err != nil {
		return err
	}
	// Collect: the server's count is final once it is closed.
	srv.Close()
	sst := srv.Stats()
	pkts, st, err := r.collect(int(sst.Written), fmt.Sprintf("the server (%d answers written)", sst.Written), 0)
	if err != nil {
		return err
	}
	if env.Ctx.Err() != nil {
		return env.Ctx.Err()
	}
	// Judge the callers, then read the exchange back from the wire.
	good, rtts, firstFail := tallyOutcomes(outs)
	env.Check("every caller got the answer to its own question", good == n,
		"%d of %d callers got A = SynthA(their name) for their own QNAME (first failure: %s)", good, n, lab.ErrText(firstFail))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.Sent == uint64(n) && st.Matched == uint64(n),
		"%s", st)
	env.Check("nothing rejected, nothing late", st.RejectedTotal() == 0 && st.Late == 0 && st.Duplicate == 0, "%s", st)
	w := readIDMatching(pkts, r.server, &r.said)
	commentRest(pkts)
	w.report(env, n, r, good, rtts)
	return nil
}

// idQuery is one query of dns/id-matching as captured, with its answer.
type idQuery struct {
	seq, attempt int
	pkt          wirePkt
	resp         *wirePkt
}

// idWire is what the capture of dns/id-matching shows.
type idWire struct {
	queries []*idQuery
	byID    map[uint16]*idQuery
	ports   map[uint16]bool // client ports the queries came from
	// dupIDs: queries whose ID was still unanswered on the wire when it
	// appeared again; missing: queries without an answer; orphans:
	// answers without a query (or a second one); overtaken: answers that
	// arrived after the answer to a later query; answered: answers paired.
	dupIDs, missing, orphans, overtaken, answered int
	maxOut                                        int // queries in flight at most
	ladder                                        []lab.Rung
}

// readIDMatching pairs every captured query with its answer, comments
// each packet (with the client's verdict on each answer), and draws the
// first four queries' ladder as they interleaved.
func readIDMatching(pkts []*capture.Packet, server netip.AddrPort, said *verdicts) idWire {
	w := idWire{byID: map[uint16]*idQuery{}, ports: map[uint16]bool{}}
	attempts := map[string]int{}
	out, maxSeq := 0, -1
	for _, d := range dnsPackets(pkts) {
		switch {
		case d.meta.Dst == server && !d.head.Response():
			w.ports[d.meta.Src.Port()] = true
			if prev := w.byID[d.head.ID]; prev != nil && prev.resp == nil {
				w.dupIDs++
			}
			attempts[d.name()]++
			q := &idQuery{seq: len(w.queries), attempt: attempts[d.name()], pkt: d}
			w.byID[d.head.ID] = q
			w.queries = append(w.queries, q)
			out++
			w.maxOut = max(w.maxOut, out)
			d.p.Comment(annotate.Append(fmt.Sprintf("query %d (attempt %d): %s", q.seq, q.attempt, d.question()), queryBlock(d, q.seq, q.attempt)))
		case d.meta.Src == server && d.head.Response():
			verdict, _ := said.said(d)
			q := w.byID[d.head.ID]
			switch {
			case q == nil || !bytes.Equal(q.pkt.head.QName, d.head.QName):
				w.orphans++
				d.p.Comment(annotate.Append(fmt.Sprintf("answer %s → %s with no captured query of that ID and name; client: %s", d.question(), d.answer(), verdict),
					judged(dnsBlock("server", "answer", d.head.ID), verdict)))
			case q.resp != nil:
				w.orphans++
				d.p.Comment(annotate.Append(fmt.Sprintf("another answer to query %d (%s) → %s; client: %s", q.seq, d.question(), d.answer(), verdict),
					judged(dnsBlock("server", "answer", d.head.ID).Uint(annotate.Query, uint64(q.seq)), verdict)))
			default:
				q.resp = &d
				out--
				if q.seq < maxSeq {
					w.overtaken++
				}
				maxSeq = max(maxSeq, q.seq)
				d.p.Comment(annotate.Append(fmt.Sprintf("answer to query %d (%s) → %s; %d answers arrived before it; client: %s",
					q.seq, d.question(), d.answer(), w.answered, verdict), judged(dnsBlock("server", "answer", d.head.ID).Uint(annotate.Query, uint64(q.seq)), verdict)))
				w.answered++
			}
		}
	}
	for _, q := range w.queries {
		if q.resp == nil {
			w.missing++
		}
	}
	w.ladder = w.firstFour(pkts, server)
	return w
}

// firstFour is the ladder of the first four queries and their answers, as
// they really interleaved on the wire.
func (w *idWire) firstFour(pkts []*capture.Packet, server netip.AddrPort) []lab.Rung {
	var lad lab.Ladder
	shown := map[*idQuery]bool{}
	for _, q := range w.queries[:min(4, len(w.queries))] {
		shown[q] = true
	}
	inflight := map[uint16]bool{}
	for _, d := range dnsPackets(pkts) {
		q := w.byID[d.head.ID]
		if q == nil || !shown[q] {
			continue
		}
		switch {
		case d.meta.Dst == server && !d.head.Response() && q.pkt.p == d.p:
			inflight[d.head.ID] = true
			lad.Send(d.question(), fmt.Sprintf("%d in flight", len(inflight)), "stateless")
			lad.When(d.p.Time)
		case d.head.Response() && q.resp != nil && q.resp.p == d.p:
			delete(inflight, d.head.ID)
			lad.Reply(fmt.Sprintf("%s → %s", d.question(), d.answer()), fmt.Sprintf("matched query %d; %d in flight", q.seq, len(inflight)), "")
			lad.When(d.p.Time)
		}
	}
	return lad.Rows
}

// report records the wire's checks, the metrics, the ladder and the table.
func (w idWire) report(env *lab.Env, n int, r *rig, good int, rtts []float64) {
	env.Check("one socket carried every query", len(w.ports) == 1 && len(w.queries) == n,
		"%d queries captured from %d client port(s)", len(w.queries), len(w.ports))
	env.Check("no ID reused while in flight", w.dupIDs == 0, "%d IDs seen twice while still unanswered; %d queries in flight at most", w.dupIDs, w.maxOut)
	env.Check("the capture pairs every query with one answer", w.missing == 0 && w.orphans == 0,
		"%d queries without an answer, %d answers without a query", w.missing, w.orphans)
	env.Check("answers came back out of order", w.overtaken > 0,
		"%d of %d answers arrived after the answer to a later query", w.overtaken, w.answered)
	p50, p99 := percentileMS(rtts, 0.5), percentileMS(rtts, 0.99)
	env.Metric("queries_count", float64(n))
	env.Metric("overtaken_count", float64(w.overtaken))
	env.Metric("max_in_flight_count", float64(w.maxOut))
	env.Metric("rtt_p50_ms", p50)
	env.Metric("rtt_p99_ms", p99)
	lad := capturedLadder(env, fmt.Sprintf("the first four queries on one socket (client %s, server %s), as captured", r.client, r.server), "client", "server")
	lad.Rows = w.ladder
	env.Table("per-caller outcome", [][]string{
		{"queries", "answered correctly", "overtaken answers", "max in flight", "p50 ms", "p99 ms"},
		{fmt.Sprint(n), fmt.Sprint(good), fmt.Sprint(w.overtaken), fmt.Sprint(w.maxOut), fmt.Sprintf("%.2f", p50), fmt.Sprintf("%.2f", p99)},
	})
	env.Note("every answer is matched by ID, source address and port, and question (RFC 5452 §9.1), not by arrival order: the server is seeded to delay each answer by a random 0–%v", idMatching.jitter)
	env.Note("each caller runs in a goroutine of its own, all in flight together; their first attempts leave in order and each query draws its IDs from a stream of its own, so one seed gives the same IDs and query order (the answers' order is timing)")
}

// synthNames are prefix0.synth.lab. … prefix(n-1).synth.lab.
func synthNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = synthName(prefix, i)
	}
	return names
}

// outcome is what one caller got.
type outcome struct {
	name string
	ok   bool // the answer to its own question: A = SynthA(name), QNAME as asked
	got  string
	rtt  float64 // ms
	err  error
}

// tallyOutcomes counts the callers answered correctly, their round trips
// in ms (sorted) and the first failure.
func tallyOutcomes(outs []outcome) (good int, rtts []float64, firstFail error) {
	for _, o := range outs {
		switch {
		case o.ok:
			good++
			rtts = append(rtts, o.rtt)
		case firstFail == nil && o.err != nil:
			firstFail = fmt.Errorf("%s: %w", o.name, o.err)
		case firstFail == nil:
			firstFail = fmt.Errorf("%s: wrong answer %s", o.name, o.got)
		}
	}
	slices.Sort(rtts)
	return good, rtts, firstFail
}
