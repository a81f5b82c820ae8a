package httpexp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// The client's workflow in http/store-failover: a session, 10 + 5, then
// use_last operations, each with a b of its own so the final history names
// every operation that survived. A request answered 503 (the store failed
// it: nothing was acknowledged) is sent again until it is answered 200,
// within a bound; every operation answered 200 is committed, and the final
// session is checked against the committed list.

// flowOp is one use_last operation of the workflow.
type flowOp struct {
	label string
	op    httpstate.Op
	b     float64
}

// flowOps are the workflow's operations after 10 + 5, in order; each b
// appears once, so an entry of the history names its operation.
var flowOps = []flowOp{
	{"× 2", httpstate.Multiply, 2}, {"− 3", httpstate.Subtract, 3}, {"+ 7", httpstate.Add, 7},
	{"+ 11", httpstate.Add, 11}, {"− 13", httpstate.Subtract, 13}, {"+ 17", httpstate.Add, 17},
	{"× 19", httpstate.Multiply, 19}, {"− 23", httpstate.Subtract, 23}, {"+ 29", httpstate.Add, 29},
	{"+ 31", httpstate.Add, 31}, {"− 37", httpstate.Subtract, 37}, {"+ 41", httpstate.Add, 41},
}

// flowRetryEvery and flowRetryFor bound the client's resends of a request
// answered 503.
const (
	flowRetryEvery = 150 * time.Millisecond
	flowRetryFor   = 30 * time.Second
)

// commit is an operation the client was told is done (200).
type commit struct {
	step   int // transcript step
	op     flowOp
	result float64
	at     time.Time
	phase  string // "before the fault", "held link", "cut off", "after failover"
}

// flow is one client's workflow through a balancer.
type flow struct {
	t     *transcript
	cl    *httpstate.Client
	lb    *httpstate.Balancer
	g     *redisGroup
	token string
	next  int // next flowOps index

	commits []commit
	refused []*played       // answered 503 (store failure), sent again later
	lat     []time.Duration // latency of each operation answered 200 while the group was whole
	phase   string
	whole   bool        // the group is whole: latencies count
	sent    []time.Time // when each transcript step was sent
}

func newFlow(t *transcript, base string, lb *httpstate.Balancer, g *redisGroup) *flow {
	return &flow{t: t, cl: httpstate.NewClient(base, true), lb: lb, g: g, phase: "before the fault", whole: true}
}

// do sends one request, notes which backend served it (the balancer's
// per-backend counter) and what the store's primary was then.
func (f *flow) do(ctx context.Context, label, method, path string, body any) (*played, time.Duration) {
	before := f.lb.Served()
	start := time.Now()
	f.sent = append(f.sent, start)
	p := f.t.do(ctx, f.cl, label, method, path, body)
	took := time.Since(start)
	for name, n := range f.lb.Served() {
		if n > before[name] {
			p.Backend = name
		}
	}
	via := ""
	if p.Backend != "" {
		via = p.Backend + ", "
	}
	switch {
	case p.Err != nil:
		f.t.note("%sno reply: %s", via, lab.ErrText(p.Err))
	case p.Rep.Status == http.StatusOK || p.Rep.Status == http.StatusCreated:
		f.t.note("%ssession written to %s", via, f.g.primaryWord())
	default:
		f.t.note("%s%d %s: %s; nothing acknowledged", via, p.Rep.Status, p.Rep.Code, trimString(p.Rep.Error, 90))
	}
	return p, took
}

// start starts the session and computes 10 + 5.
func (f *flow) start(ctx context.Context) error {
	p, _ := f.do(ctx, "start session", "POST", "/session", nil)
	if err := mustAnswer(p); err != nil {
		return err
	}
	f.token = p.Rep.Cookie
	p, _ = f.do(ctx, "10 + 5", "POST", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)})
	if err := mustAnswer(p); err != nil {
		return err
	}
	f.commits = append(f.commits, commit{step: len(f.t.steps), op: flowOp{"10 + 5", httpstate.Add, 5}, result: p.Rep.Result, at: time.Now(), phase: f.phase})
	return nil
}

// once sends the next operation once; it reports the reply's status (0:
// none). A 503 leaves the operation pending, to be sent again by until.
func (f *flow) once(ctx context.Context) (int, error) {
	if f.next >= len(flowOps) {
		return 0, fmt.Errorf("httpexp: the workflow has no operation left")
	}
	op := flowOps[f.next]
	label := op.label
	if len(f.refused) > 0 && f.refused[len(f.refused)-1].Label == op.label {
		label += " (again)"
	}
	p, took := f.do(ctx, label, "POST", "/use_last", httpstate.CalcRequest{Op: op.op, B: num(op.b)})
	switch {
	case p.Err != nil:
		return 0, fmt.Errorf("%s: %w", op.label, p.Err)
	case p.Rep.Status == http.StatusOK:
		f.commits = append(f.commits, commit{step: len(f.t.steps), op: op, result: p.Rep.Result, at: time.Now(), phase: f.phase})
		if f.whole {
			f.lat = append(f.lat, took)
		}
		f.next++
	case p.Rep.Status == http.StatusServiceUnavailable:
		f.refused = append(f.refused, p)
	default:
		return p.Rep.Status, fmt.Errorf("%s: %d %s", op.label, p.Rep.Status, p.Rep.Error)
	}
	return p.Rep.Status, nil
}

// until sends the next operation until it is answered 200, every
// flowRetryEvery, for at most flowRetryFor; it returns when the 200 came.
func (f *flow) until(ctx context.Context) (time.Time, error) {
	deadline := time.Now().Add(flowRetryFor)
	for range int(flowRetryFor/flowRetryEvery) + 1 {
		st, err := f.once(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if st == http.StatusOK {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(flowRetryEvery):
		}
	}
	return time.Time{}, fmt.Errorf("httpstate: %s: still 503 after %s", flowOps[f.next].label, flowRetryFor)
}

// run sends n operations, each until it is answered 200.
func (f *flow) run(ctx context.Context, n int) error {
	for range n {
		if _, err := f.until(ctx); err != nil {
			return err
		}
	}
	return nil
}

// verdict is the final session checked against the committed operations.
type verdict struct {
	history []httpstate.HistoryEntry
	lost    []commit // committed, not in the final history
	extra   []string // in the history, never committed (or twice)
	last    float64
	ok      bool // the history is exactly the committed operations less lost, in order
}

// verify reads the final history and matches it, in order, against the
// committed operations.
func (f *flow) verify(ctx context.Context) (verdict, error) {
	p, _ := f.do(ctx, "history (final state)", "GET", "/history", nil)
	if err := mustAnswer(p); err != nil {
		return verdict{}, err
	}
	var h struct{ History []httpstate.HistoryEntry }
	if err := json.Unmarshal(p.Rep.Body, &h); err != nil {
		return verdict{}, fmt.Errorf("httpexp: history: %w", err)
	}
	v := matchHistory(f.commits, h.History)
	f.t.note("history of %d entries: %d committed operations lost, %d never committed", len(h.History), len(v.lost), len(v.extra))
	return v, nil
}

// matchHistory matches a history against the committed operations in
// order: each entry must be the next committed operation with its op and b
// (a committed operation it skips is lost); an entry that matches none is
// extra. The results must chain: each entry's result is what the
// committed reply said, unless an earlier operation was lost.
func matchHistory(commits []commit, hist []httpstate.HistoryEntry) verdict {
	v := verdict{history: hist}
	i := 0
	for _, e := range hist {
		j := slices.IndexFunc(commits[i:], func(c commit) bool { return c.op.op == e.Op && c.op.b == e.B })
		if j < 0 {
			v.extra = append(v.extra, fmt.Sprintf("%s %g → %g", e.Op, e.B, e.Result))
			continue
		}
		v.lost = append(v.lost, commits[i:i+j]...)
		i += j + 1
		v.last = e.Result
	}
	v.lost = append(v.lost, commits[i:]...)
	v.ok = len(v.extra) == 0
	return v
}

// names words committed operations.
func names(cs []commit) string {
	if len(cs) == 0 {
		return "none"
	}
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s (step %d, %s)", c.op.label, c.step, c.phase))
	}
	return strings.Join(out, ", ")
}

// median of latencies, 0 for none.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
