package udpdns

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// Loss sets dns/loss: queries, which of them lose their first attempt, which
// one is answered late, and the client's per-attempt timeout. The timeout is
// long enough (1 s) that on a loaded machine the queries the server answers
// at once are not retried; the dropped and held ones time out by design.
var Loss = struct {
	Queries int
	Dropped []int
	Late    int
	Timeout time.Duration
}{Queries: 16, Dropped: []int{3, 7, 12}, Late: 5, Timeout: time.Second}

func init() {
	register(lab.Experiment{
		Name:    "dns/loss",
		Summary: "the server drops some queries and answers one late: retries with fresh IDs succeed, the late answer completes nothing",
		Shows: "Over UDP a lost query is noticed only by a timeout: the client retries with a fresh ID, every query is answered, " +
			"and the answer that comes back late for the abandoned ID is counted as late and completes nothing.",
		Run: runLoss,
	})
}

func runLoss(env *lab.Env) error {
	name := func(i int) string { return fmt.Sprintf("l%d.%s", i, SynthSuffix) }
	dropped := map[string]bool{}
	for _, i := range Loss.Dropped {
		dropped[name(i)] = true
	}
	lateName := name(Loss.Late)
	var (
		mu           sync.Mutex
		seen         = map[string]int{}
		lateID       uint16
		lateSent     = make(chan struct{})
		retryArrived = make(chan struct{})
	)
	srv, err := StartServer(ServerConfig{Addr: labServerAddr, Seed: env.Stream("server").Uint64(), Policy: func(q *dns.Msg, _ netip.AddrPort, a *Action) {
		n := strings.ToLower(q.Question[0].Name)
		mu.Lock()
		defer mu.Unlock()
		seen[n]++
		switch {
		case dropped[n] && seen[n] == 1:
			a.Drop = true
		case n == lateName && seen[n] == 1:
			// Hold the first answer until the retry has arrived.
			lateID = q.Id
			a.Hold = retryArrived
			a.Sent = func(error) { close(lateSent) }
		case n == lateName && seen[n] == 2:
			// The retry proves the client gave up on the first ID; release
			// the late answer, then answer the retry after it.
			close(retryArrived)
			a.Hold = lateSent
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { srv.Close() })
	want, err := startWant()
	if err != nil {
		return err
	}
	cap, err := env.Capture(capture.Options{Keep: keepPorts(srv.Addr().Port())})
	if err != nil {
		return err
	}
	first := newFirstSends()
	var said verdicts
	// The held answer's events, picked out by its ID (under load other
	// answers may come late too): its late event, and any match it made.
	lateSeen := make(chan Event, 1)
	var heldMatched bool
	cl, err := NewClient(Config{Server: srv.Addr(), Timeout: Loss.Timeout, Retries: 4, Rand: env.Bytes("client"), Trace: func(e Event) {
		first.trace(e)
		said.trace(e)
		if e.Kind != EventLate && e.Kind != EventMatched {
			return
		}
		mu.Lock()
		held := seen[lateName] > 0 && e.ID == lateID && strings.EqualFold(e.Name, lateName)
		if held && e.Kind == EventMatched {
			heldMatched = true
		}
		mu.Unlock()
		if held && e.Kind == EventLate {
			select {
			case lateSeen <- e:
			default:
			}
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })

	type result struct {
		ok  bool
		err error
	}
	results := make([]result, Loss.Queries)
	// All in flight together, first attempts in order, each query's IDs
	// from a stream of its own: one seed, the same IDs and query order.
	err = first.inOrder(env.Ctx, Loss.Queries, func(i int) {
		m := new(dns.Msg)
		m.SetQuestion(name(i), dns.TypeA)
		r, err := cl.ExchangeRand(env.Ctx, m, queryRand(env, name(i)))
		results[i] = result{ok: err == nil && answerA(r) == SynthA(name(i)), err: err}
	})
	if err != nil {
		return err
	}
	var late Event
	gotLate := false
	select {
	case late = <-lateSeen:
		gotLate = true
	case <-time.After(5 * time.Second):
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	srv.Close() // held answers not yet written are abandoned: its count is final
	st := cl.Stats()
	client := cl.LocalAddrs()[0]
	cl.Close()
	server := srv.Addr()
	want.server, want.client = server, client
	want.queries = int(st.Sent - st.SendFailed)
	sst := srv.Stats()
	want.replies, want.repliesBy = int(sst.Written), fmt.Sprintf("the server (%d answers written)", sst.Written)
	pkts, err := stopComplete(env, cap, want)
	if err != nil {
		return err
	}

	good := 0
	var fails []string
	for i, r := range results {
		if r.ok {
			good++
		} else {
			fails = append(fails, fmt.Sprintf("%s: %v", name(i), r.err))
		}
	}
	mu.Lock()
	heldID, heldDone := lateID, heldMatched
	mu.Unlock()
	env.Check("every query answered despite the losses", good == Loss.Queries,
		"%d of %d answered with their own address; failures: %v", good, Loss.Queries, fails)
	minLost := uint64(len(Loss.Dropped) + 1)
	env.Check("each lost attempt timed out and was retried", st.TimedOut >= minLost && st.Retries == st.TimedOut,
		"%d attempts timed out (at least %d expected: %d dropped + 1 held), %d retries", st.TimedOut, minLost, len(Loss.Dropped), st.Retries)
	env.Check("the late answer counted late and completed nothing", gotLate && late.ID == heldID && !heldDone && st.Late >= 1 && st.Matched == uint64(Loss.Queries),
		"late event for id=%#04x (held answer id=%#04x), held id completed a query: %v, late=%d, matched=%d of %d",
		late.ID, heldID, heldDone, st.Late, st.Matched, Loss.Queries)
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)

	// Read the late query's story back from the capture.
	var lateQueries, lateAnswers []wirePkt
	lad := env.Ladder(fmt.Sprintf("%s: held answer vs. retry, as captured", lateName), "client", "server")
	dropIDs := map[uint16]bool{}
	answered := map[uint16]bool{}
	for _, w := range dnsPackets(pkts) {
		if w.head.Response() {
			answered[w.head.ID] = true
		}
	}
	index := map[string]int{}
	for i := range Loss.Queries {
		index[name(i)] = i
	}
	attempts := map[string]int{}
	for _, w := range dnsPackets(pkts) {
		n := strings.ToLower(wireName(w.head.QName))
		switch {
		case w.meta.Dst == server && !w.head.Response():
			attempts[n]++
			what := fmt.Sprintf("query %d (attempt %d): %s", index[n], attempts[n], w.question())
			if !answered[w.head.ID] {
				dropIDs[w.head.ID] = true
				w.p.Comment(what + ": dropped by the server; the client will time out and retry with a fresh ID")
			} else {
				w.p.Comment(what)
			}
			if n == lateName {
				lateQueries = append(lateQueries, w)
				state := "in flight"
				if len(lateQueries) > 1 {
					state = fmt.Sprintf("id %#04x timed out: quarantined; retry in flight", lateQueries[0].head.ID)
				}
				lad.Send(w.question(), state, map[bool]string{true: "holds the answer", false: "answers"}[len(lateQueries) == 1])
			}
		case w.meta.Src == server && w.head.Response():
			verdict, short := "not read by the client", "not read"
			if e, ok := said.next(w); ok {
				verdict, short = e.describe(), e.brief()
			}
			what := fmt.Sprintf("answer to query %d %s → %s", index[n], w.question(), w.answer())
			if n != lateName {
				w.p.Comment(what + "; client: " + verdict)
				continue
			}
			lateAnswers = append(lateAnswers, w)
			if w.head.ID == heldID {
				w.p.Comment(fmt.Sprintf("held answer to the first attempt, released once the retry arrived: %s; client: %s", what, verdict))
				lad.Reply(w.question()+" (held)", short, "")
			} else {
				w.p.Comment(fmt.Sprintf("answer to the retry: %s; client: %s", what, verdict))
				lad.Reply(w.question()+" "+w.answer(), short, "")
			}
		}
	}
	commentRest(pkts)
	// Under load a retry may time out too and be retried again: every
	// attempt must carry its own ID, the first must be the held one, and its
	// answer must be on the wire before any answer to a retry.
	ids := map[uint16]bool{}
	for _, w := range lateQueries {
		ids[w.head.ID] = true
	}
	freshID := len(lateQueries) >= 2 && len(ids) == len(lateQueries) && lateQueries[0].head.ID == heldID
	env.Check("the retry carried a fresh ID and the late answer the old one",
		freshID && len(lateAnswers) >= 2 && lateAnswers[0].head.ID == heldID,
		"%s: %d queries, %d answers on the wire; first id=%#04x (held %#04x), retry id=%#04x, first answer id=%#04x",
		lateName, len(lateQueries), len(lateAnswers), idAt(lateQueries, 0), heldID, idAt(lateQueries, 1), idAt(lateAnswers, 0))
	env.Check("the capture shows the dropped queries unanswered", len(dropIDs) >= len(Loss.Dropped),
		"%d query IDs never answered on the wire (%d dropped by design)", len(dropIDs), len(Loss.Dropped))
	env.Metric("timed_out_count", float64(st.TimedOut))
	env.Metric("late_count", float64(st.Late))
	env.Metric("retries_count", float64(st.Retries))
	env.Metric("attempt_timeout_ms", float64(Loss.Timeout.Milliseconds()))
	env.Note("the timed-out ID stays in quarantine (3× the timeout) so the late answer is recognised as late: miekg/dns issue 1156 is a late reply completing a newer query that reused the ID")
	return nil
}

func idAt(ws []wirePkt, i int) uint16 {
	if i < len(ws) {
		return ws[i].head.ID
	}
	return 0
}
