package udpdns

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// IDMatching sets the size of dns/id-matching: concurrent queries and the
// server's random extra delay per answer.
var IDMatching = struct {
	Queries int
	Jitter  time.Duration
}{Queries: 300, Jitter: 4 * time.Millisecond}

func init() {
	register(lab.Experiment{
		Name:    "dns/id-matching",
		Summary: "hundreds of concurrent queries over one UDP socket, answers reordered: each caller gets its own answer",
		Shows: "UDP has no connection, so the client matches every reply to its query by ID and question: hundreds of " +
			"queries share one socket, the server answers them out of order, and every caller still gets the answer to its own question.",
		Run: runIDMatching,
	})
}

func runIDMatching(env *lab.Env) error {
	n := IDMatching.Queries
	srv, err := StartServer(ServerConfig{Addr: labServerAddr, Jitter: IDMatching.Jitter, Seed: env.Stream("server").Uint64()})
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
	cl, err := NewClient(Config{Server: srv.Addr(), Timeout: 3 * time.Second, Retries: 2, Rand: env.Bytes("client"),
		Trace: func(e Event) { first.trace(e); said.trace(e) }})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })
	env.Logf("server %s, client %v, %d queries", srv.Addr(), cl.LocalAddrs(), n)

	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("q%d.%s", i, SynthSuffix)
	}
	type result struct {
		ok   bool
		got  string
		rtt  float64
		fail error
	}
	results := make([]result, n)
	// Every caller has a goroutine of its own and they are all in flight
	// together, but their first attempts go out in order, each with IDs
	// from a stream of its own: one seed, one capture.
	err = first.inOrder(env.Ctx, n, func(i int) {
		name := names[i]
		start := time.Now()
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, err := cl.ExchangeRand(env.Ctx, m, queryRand(env, name))
		if err != nil {
			results[i] = result{fail: err}
			return
		}
		a := answerA(r)
		results[i] = result{ok: a == SynthA(name) && r.Question[0].Name == name, got: a.String(),
			rtt: float64(time.Since(start).Microseconds()) / 1000}
	})
	if err != nil {
		return err
	}
	srv.Close() // every answer it will write is written: its count is final
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
	if env.Ctx.Err() != nil {
		return env.Ctx.Err()
	}

	good := 0
	var rtts []float64
	var firstFail error
	for _, r := range results {
		if r.ok {
			good++
			rtts = append(rtts, r.rtt)
		} else if firstFail == nil {
			firstFail = r.fail
			if firstFail == nil {
				firstFail = fmt.Errorf("wrong answer %s", r.got)
			}
		}
	}
	sort.Float64s(rtts)
	env.Check("every caller got the answer to its own question", good == n,
		"%d of %d callers got A = SynthA(their name) for their own QNAME (first failure: %v)", good, n, firstFail)
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.Sent == uint64(n) && st.Matched == uint64(n),
		"%s", st)
	env.Check("nothing rejected, nothing late", st.RejectedTotal() == 0 && st.Late == 0 && st.Duplicate == 0, "%s", st)

	// Read the exchange back from the wire.
	type q struct {
		seq, attempt int
		pkt          wirePkt
		resp         *wirePkt
	}
	byID := map[uint16]*q{}
	var queries []*q
	attempts := map[string]int{}
	ports := map[uint16]bool{}
	dupIDs, respMissing, respOrphan, overtaken, maxOut, out := 0, 0, 0, 0, 0, 0
	maxSeq := -1
	var arrival []*q
	for _, w := range dnsPackets(pkts) {
		switch {
		case w.meta.Dst == server && !w.head.Response():
			ports[w.meta.Src.Port()] = true
			if byID[w.head.ID] != nil && byID[w.head.ID].resp == nil {
				dupIDs++
			}
			name := strings.ToLower(wireName(w.head.QName))
			qq := &q{seq: len(queries), attempt: attempts[name] + 1, pkt: w}
			attempts[name]++
			byID[w.head.ID] = qq
			queries = append(queries, qq)
			out++
			maxOut = max(maxOut, out)
			w.p.Comment(fmt.Sprintf("query %d (attempt %d): %s", qq.seq, qq.attempt, w.question()))
		case w.meta.Src == server && w.head.Response():
			verdict := "not read by the client"
			if e, ok := said.next(w); ok {
				verdict = e.describe()
			}
			qq := byID[w.head.ID]
			if qq == nil || !equalExact(qq.pkt.head.QName, w.head.QName) {
				respOrphan++
				w.p.Comment(fmt.Sprintf("answer %s → %s with no captured query of that ID and name; client: %s", w.question(), w.answer(), verdict))
				continue
			}
			if qq.resp != nil {
				respOrphan++
				w.p.Comment(fmt.Sprintf("another answer to query %d (%s) → %s; client: %s", qq.seq, w.question(), w.answer(), verdict))
				continue
			}
			wc := w
			qq.resp = &wc
			out--
			arrival = append(arrival, qq)
			if qq.seq < maxSeq {
				overtaken++
			}
			maxSeq = max(maxSeq, qq.seq)
			w.p.Comment(fmt.Sprintf("answer to query %d (%s) → %s; %d answers arrived before it; client: %s", qq.seq, w.question(), w.answer(), len(arrival)-1, verdict))
		}
	}
	commentRest(pkts)
	for _, qq := range queries {
		if qq.resp == nil {
			respMissing++
		}
	}
	env.Check("one socket carried every query", len(ports) == 1 && len(queries) == n,
		"%d queries captured from %d client port(s)", len(queries), len(ports))
	env.Check("no ID reused while in flight", dupIDs == 0, "%d IDs seen twice while still unanswered; %d queries in flight at most", dupIDs, maxOut)
	env.Check("the capture pairs every query with one answer", respMissing == 0 && respOrphan == 0,
		"%d queries without an answer, %d answers without a query", respMissing, respOrphan)
	env.Check("answers came back out of order", overtaken > 0,
		"%d of %d answers arrived after the answer to a later query", overtaken, len(arrival))

	env.Metric("queries_count", float64(n))
	env.Metric("overtaken_count", float64(overtaken))
	env.Metric("max_in_flight_count", float64(maxOut))
	env.Metric("rtt_p50_ms", percentileMS(rtts, 0.5))
	env.Metric("rtt_p99_ms", percentileMS(rtts, 0.99))

	// A ladder of the first four queries and their answers, as they really
	// interleaved on the wire.
	lad := env.Ladder(fmt.Sprintf("the first four queries on one socket (client %s, server %s), as captured", client, server), "client", "server")
	shown := map[*q]bool{}
	for _, qq := range queries[:min(4, len(queries))] {
		shown[qq] = true
	}
	inflight := map[uint16]bool{}
	for _, w := range dnsPackets(pkts) {
		if w.meta.Dst == server && !w.head.Response() {
			if qq := byID[w.head.ID]; qq != nil && shown[qq] && qq.pkt.p == w.p {
				inflight[w.head.ID] = true
				lad.Send(w.question(), fmt.Sprintf("%d in flight", len(inflight)), "stateless")
			}
		} else if qq := byID[w.head.ID]; qq != nil && shown[qq] && qq.resp != nil && qq.resp.p == w.p {
			delete(inflight, w.head.ID)
			lad.Reply(fmt.Sprintf("%s → %s", w.question(), w.answer()), fmt.Sprintf("matched query %d; %d in flight", qq.seq, len(inflight)), "")
		}
	}
	env.Table("per-caller outcome", [][]string{
		{"queries", "answered correctly", "overtaken answers", "max in flight", "p50 ms", "p99 ms"},
		{fmt.Sprint(n), fmt.Sprint(good), fmt.Sprint(overtaken), fmt.Sprint(maxOut),
			fmt.Sprintf("%.2f", percentileMS(rtts, 0.5)), fmt.Sprintf("%.2f", percentileMS(rtts, 0.99))},
	})
	env.Note("every answer is matched by ID, source address and port, and question (RFC 5452 §9.1), not by arrival order: the server is seeded to delay each answer by a random 0–%v", IDMatching.Jitter)
	env.Note("each caller runs in a goroutine of its own, all in flight together; their first attempts leave in order and each query draws its IDs from a stream of its own, so one seed gives the same IDs and query order (the answers' order is timing)")
	return nil
}
