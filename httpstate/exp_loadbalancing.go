package httpstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "http/load-balancing",
		Summary: "three backends behind a balancer: round-robin breaks stateful sessions, sticky cookies keep them, a store makes stickiness unneeded",
		Shows: "Behind a ReverseProxy balancer (and HAProxy when installed) round-robin sends a stateful session's requests " +
			"to backends that never saw it (measured failure rate), sticky-by-cookie keeps every workflow whole until a backend " +
			"dies and takes exactly its sessions with it, and store-backed backends need no stickiness and survive losing one.",
		Run: runLoadBalancing,
	})
}

// lbClients is how many clients each scenario runs; with three backends
// each sticky client lands on its own backend.
const lbClients = 3

// lbScenario is one balancer, policy and backend kind.
type lbScenario struct {
	name     string
	balancer string // "ReverseProxy" or "HAProxy"
	policy   Policy
	mode     Mode
	store    string // store URL for StoreBacked backends

	// measured
	useLast, useLastFailed int // use_last requests before the kill
	requests               int // requests sent
	storeOps               int64
	redisTrips, reruns     int64 // Redis: commands sent, and requests run again on a changed session
	pinned                 map[string][]int
	killed                 string
	lostAfterKill          []int // clients whose last step failed after the kill
	concurrent             concurrentResult
	sessionCookies         int // session cookies the clients were given
	stickyCookies          int // balancer cookies the clients were given
	t                      *transcript
}

type lbBackends struct {
	runs   []*Running
	srvs   []*Server
	stores []*countingStore
}

// name is backend i's name, as the balancers call it (b1, b2, b3).
func (bs *lbBackends) name(i int) string { return fmt.Sprintf("b%d", i+1) }

// answered is each backend's request count.
func (bs *lbBackends) answered() []int {
	out := make([]int, len(bs.runs))
	for i, r := range bs.runs {
		out[i] = r.Answered()
	}
	return out
}

// storeOps is how many store reads and writes the backends made.
func (bs *lbBackends) storeOps() int64 {
	var n int64
	for _, s := range bs.stores {
		n += s.finds.Load() + s.commits.Load()
	}
	return n
}

// redisCost is how many commands the backends sent to Redis and how many
// requests they ran again because another backend had changed the session
// (optimistic.go); zero for other stores.
func (bs *lbBackends) redisCost() (trips, reruns int64) {
	for _, s := range bs.stores {
		if rs := s.optimistic(); rs != nil {
			trips += rs.roundTrips()
			reruns += rs.conflicts.Load()
		}
	}
	return trips, reruns
}

// startBackends starts three backends; store-backed ones each open the
// store themselves (their own *sql.DB or Redis client), as separate
// processes would, and count their store operations.
func startBackends(env *lab.Env, mode Mode, store string) (*lbBackends, error) {
	bs := &lbBackends{}
	for range 3 {
		srv, run, counted, err := labServer(env, mode, store)
		if err != nil {
			return nil, err
		}
		if counted != nil {
			bs.stores = append(bs.stores, counted)
		}
		bs.runs, bs.srvs = append(bs.runs, run), append(bs.srvs, srv)
	}
	return bs, nil
}

// labServer starts an experiment's calculator server on a loopback port;
// a store-backed one opens its own connection to the store at storeURL,
// counted (countingStore). env closes all of it.
func labServer(env *lab.Env, mode Mode, storeURL string) (*Server, *Running, *countingStore, error) {
	cfg := Config{Mode: mode}
	var counted *countingStore
	if mode == StoreBacked {
		u, err := ParseStoreURL(storeURL)
		if err != nil {
			return nil, nil, nil, err
		}
		st, closeStore, err := OpenStore(env.Ctx, u)
		if err != nil {
			return nil, nil, nil, err
		}
		env.Cleanup(func() { closeStore() })
		counted = &countingStore{Store: st}
		cfg.Store = counted
	}
	srv, err := New(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	run, err := Listen("127.0.0.1:0", srv)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	env.Cleanup(func() { run.Close(); srv.Close() })
	return srv, run, counted, nil
}

// countingStore counts a session store's reads and writes.
type countingStore struct {
	scs.Store
	finds, commits atomic.Int64
}

// sessionLocker passes on the wrapped store's cross-process lock.
func (c *countingStore) sessionLocker() SessionLocker {
	if ls, ok := c.Store.(lockerStore); ok {
		return ls.sessionLocker()
	}
	return newStripedLocker()
}

// optimistic passes on the wrapped store's compare-and-set writes (Redis).
func (c *countingStore) optimistic() *redisSessions {
	if o, ok := c.Store.(optimisticStore); ok {
		return o.optimistic()
	}
	return nil
}

func (c *countingStore) Find(token string) ([]byte, bool, error) {
	c.finds.Add(1)
	return c.Store.Find(token)
}

func (c *countingStore) Commit(token string, b []byte, expiry time.Time) error {
	c.commits.Add(1)
	return c.Store.Commit(token, b, expiry)
}

// The context-aware methods, which scs prefers; they pass through to the
// wrapped store's own when it has them (the go-redis store has only those).

func (c *countingStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	c.finds.Add(1)
	return findSession(ctx, c.Store, token)
}

func (c *countingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	c.commits.Add(1)
	if cs, ok := c.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, token, b, expiry)
	}
	return c.Store.Commit(token, b, expiry)
}

func (c *countingStore) DeleteCtx(ctx context.Context, token string) error {
	if cs, ok := c.Store.(scs.CtxStore); ok {
		return cs.DeleteCtx(ctx, token)
	}
	return c.Store.Delete(token)
}

func (bs *lbBackends) urls() []string {
	var out []string
	for _, r := range bs.runs {
		out = append(out, r.URL())
	}
	return out
}

func (bs *lbBackends) addrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, r := range bs.runs {
		out = append(out, r.Addr)
	}
	return out
}

func runLoadBalancing(env *lab.Env) error {
	startEvidence(env)
	dir, err := os.MkdirTemp("", "statelab-lb-")
	if err != nil {
		return err
	}
	env.Cleanup(func() { os.RemoveAll(dir) })
	sqlite := "sqlite://" + filepath.Join(dir, "sessions.db")
	scenarios := []*lbScenario{
		{name: "stateless, round-robin", balancer: "ReverseProxy", policy: RoundRobin, mode: Stateless},
		{name: "stateful, round-robin", balancer: "ReverseProxy", policy: RoundRobin, mode: Stateful},
		{name: "stateful, sticky", balancer: "ReverseProxy", policy: Sticky, mode: Stateful},
		{name: "store-backed, round-robin", balancer: "ReverseProxy", policy: RoundRobin, mode: StoreBacked, store: sqlite},
	}
	if rs, err := StartRedis(env.Ctx); err == nil {
		env.Cleanup(rs.Close)
		started("redis-server", rs.cmd.Process.Pid)
		scenarios = append(scenarios, &lbScenario{name: "store-backed (Redis), round-robin", balancer: "ReverseProxy", policy: RoundRobin, mode: StoreBacked, store: rs.URL()})
	} else if errors.Is(err, ErrNoRedis) {
		env.Note("redis-server is not installed: the Redis-backed scenario did not run")
	} else {
		return err
	}
	if haproxyInstalled() {
		scenarios = append(scenarios,
			&lbScenario{name: "stateful, round-robin", balancer: "HAProxy", policy: RoundRobin, mode: Stateful},
			&lbScenario{name: "stateful, sticky (cookie insert)", balancer: "HAProxy", policy: Sticky, mode: Stateful},
			&lbScenario{name: "store-backed, round-robin", balancer: "HAProxy", policy: RoundRobin, mode: StoreBacked, store: sqlite},
		)
	} else {
		env.Note("haproxy is not installed: the HAProxy scenarios did not run")
	}

	type front struct {
		sc  *lbScenario
		url string
		bs  *lbBackends
		// answered is the front's count of answered requests: the Go
		// balancer's own counter; for HAProxy, its clients' count.
		answered func() int
		counter  string
	}
	var fronts []front
	var ports []uint16
	for _, sc := range scenarios {
		bs, err := startBackends(env, sc.mode, sc.store)
		if err != nil {
			return err
		}
		var u string
		var addr netip.AddrPort
		f := front{sc: sc, bs: bs}
		if sc.balancer == "HAProxy" {
			h, err := StartHAProxy(sc.policy, bs.addrs())
			if err != nil {
				return err
			}
			env.Cleanup(h.Close)
			started("haproxy", h.cmd.Process.Pid)
			u, addr = h.URL(), h.Addr
			f.answered, f.counter = func() int { return sc.t.answered() }, "its clients"
		} else {
			lb, err := NewBalancer(sc.policy, bs.urls()...)
			if err != nil {
				return err
			}
			run, err := Listen("127.0.0.1:0", lb)
			if err != nil {
				return err
			}
			env.Cleanup(func() { run.Close() })
			u, addr = run.URL(), run.Addr
			f.answered, f.counter = run.Answered, "its request counter"
		}
		sc.t = &transcript{name: sc.balancer + ": " + sc.name, addr: addr, says: "as the backends counted and reported"}
		f.url = u
		fronts = append(fronts, f)
		// Both legs: client↔balancer, and balancer↔backend, where the
		// capture shows which backend served each request.
		ports = append(ports, addr.Port())
		for _, a := range bs.addrs() {
			ports = append(ports, a.Port())
		}
	}
	cp, err := env.Capture(captureOpts(ports...))
	if err != nil {
		return err
	}
	started("capture", 0)
	want := newWanted("the Go balancer's and the backends' request counters, HAProxy's clients")
	for _, f := range fronts {
		if err := f.sc.play(env, f.url, f.bs); err != nil {
			return fmt.Errorf("%s: %w", f.sc.name, err)
		}
		f.sc.requests = len(f.sc.t.steps)
		f.sc.storeOps = f.bs.storeOps()
		f.sc.redisTrips, f.sc.reruns = f.bs.redisCost()
		want.add(f.sc.t.name+" (counted by "+f.counter+")", f.sc.t.addr, f.answered())
		for i, n := range f.bs.answered() {
			want.add(f.sc.t.name+" backend "+f.bs.name(i), f.bs.runs[i].Addr, n)
		}
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	streams := capture.TCPStreams(pkts)
	for _, f := range fronts {
		front := f.sc.t.annotate(env, pkts)
		f.sc.annotateBackends(env, pkts, streams, front, f.bs)
	}
	// After the capture (so the transcripts stay one request per step):
	// concurrent updates of one session through the balancer, spread over
	// the backends by round-robin, must all count.
	for _, f := range fronts {
		if f.sc.mode != StoreBacked {
			continue
		}
		got, err := concurrentPlusOneThrough(env.Ctx, f.url, lbConcurrent)
		if err != nil {
			return fmt.Errorf("%s: concurrent updates: %w", f.sc.name, err)
		}
		f.sc.concurrent = got
		env.Check(f.sc.balancer+": "+f.sc.name+": "+fmt.Sprint(lbConcurrent)+" concurrent +1 on one session through round-robin all count",
			got.ok(lbConcurrent), "%s", got)
		env.Metric(f.sc.balancer+"."+f.sc.name+".concurrent_lost_count", float64(lbConcurrent+1-got.Operations))
	}

	rows := [][]string{{"balancer", "scenario", "use_last failed before the kill", "killed", "clients lost after the kill"}}
	for _, sc := range scenarios {
		rows = append(rows, []string{sc.balancer, sc.name, fmt.Sprintf("%d of %d", sc.useLastFailed, sc.useLast),
			sc.killed, fmt.Sprintf("%d of %d", len(sc.lostAfterKill), lbClients)})
		sc.check(env)
	}
	env.Table("Load balancing, measured", rows)
	get := func(name string) *lbScenario {
		for _, sc := range scenarios {
			if sc.balancer == "ReverseProxy" && sc.name == name {
				return sc
			}
		}
		return nil
	}
	rr, st, sb := get("stateful, round-robin"), get("stateful, sticky"), get("store-backed, round-robin")
	sl := get("stateless, round-robin")
	recordEvidence(env, rowScale, Stateless, "round-robin: %d of %d workflows failed; losing a backend lost %d of %d clients",
		sl.useLastFailed, sl.useLast, len(sl.lostAfterKill), lbClients)
	recordEvidence(env, rowScale, Stateful, "round-robin: %d of %d use_last failed; sticky: %d failed, losing a backend lost %d of %d clients",
		rr.useLastFailed, rr.useLast, st.useLastFailed, len(st.lostAfterKill), lbClients)
	recordEvidence(env, rowScale, StoreBacked, "round-robin: %d of %d failed; losing a backend lost %d of %d clients; %d concurrent +1 on one session: %s",
		sb.useLastFailed, sb.useLast, len(sb.lostAfterKill), lbClients, lbConcurrent, sb.concurrent.summary(lbConcurrent))
	recordEvidence(env, rowComplex, Stateless, "%d session cookies, %d sticky cookies, %d store operations for %d requests under round-robin",
		sl.sessionCookies, sl.stickyCookies, sl.storeOps, sl.requests)
	recordEvidence(env, rowComplex, Stateful, "needs the balancer's sticky %q cookie (%d set; without it %d of %d use_last failed); losing a backend lost %d of its %d sessions",
		LBCookie, st.stickyCookies, rr.useLastFailed, rr.useLast, len(st.lostAfterKill), len(st.pinned[st.killed]))
	recordEvidence(env, rowComplex, StoreBacked, "needs a %s store: %d store reads+writes for %d requests (%.1f per request, plus a lock and unlock each), %d sticky cookies",
		storeWhere(&crashCase{store: sb.store}), sb.storeOps, sb.requests, float64(sb.storeOps)/float64(max(1, sb.requests)), sb.stickyCookies)
	return nil
}

// lbConcurrent is how many concurrent "+1" the store-backed scenarios send
// on one session.
const lbConcurrent = 40

// concurrentResult is what n concurrent +1 on one session left behind.
type concurrentResult struct {
	Statuses   map[int]int // status → count (-1: no reply)
	Operations int
	LastResult float64
}

func (c concurrentResult) ok(n int) bool {
	return c.Statuses[http.StatusOK] == n && c.Operations == n+1 && c.LastResult == float64(15+n)
}

// summary words the result for the comparison table.
func (c concurrentResult) summary(n int) string {
	switch {
	case c.Statuses == nil:
		return "not measured"
	case c.ok(n):
		return fmt.Sprintf("all %d counted (operations %d, last_result %g)", n, c.Operations, c.LastResult)
	}
	return fmt.Sprintf("%d of %d counted (%d answered 200)", c.Operations-1, n, c.Statuses[http.StatusOK])
}

func (c concurrentResult) String() string {
	if c.Statuses == nil {
		return "not measured"
	}
	return fmt.Sprintf("statuses %v, operations=%d last_result=%g (exact: 41 and 55)", c.Statuses, c.Operations, c.LastResult)
}

// concurrentPlusOneThrough starts a session at base (10 + 5), sends n
// concurrent use_last "+1" with its cookie, each on its own connection, and
// reads the state back.
func concurrentPlusOneThrough(ctx context.Context, base string, n int) (concurrentResult, error) {
	out := concurrentResult{Statuses: map[int]int{}}
	c := NewClient(base, true)
	defer c.Close()
	rep, err := c.Post(ctx, "/session", nil)
	if err != nil || rep.Status != http.StatusCreated || rep.Cookie == "" {
		return out, fmt.Errorf("session start: %d %v", rep.Status, err)
	}
	token := rep.Cookie
	if rep, err := c.Post(ctx, "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)}); err != nil || rep.Status != http.StatusOK {
		return out, fmt.Errorf("10 + 5: %d %v", rep.Status, err)
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			st := -1
			req, err := http.NewRequestWithContext(ctx, "POST", base+"/use_last", strings.NewReader(`{"op":"add","b":1}`))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
				if resp, err := hc.Do(req); err == nil {
					st = resp.StatusCode
					resp.Body.Close()
				}
			}
			mu.Lock()
			out.Statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	rep, err = c.Get(ctx, "/state")
	if err != nil || rep.Status != http.StatusOK {
		return out, fmt.Errorf("state: %d %v", rep.Status, err)
	}
	var st SessionState
	if err := json.Unmarshal(rep.Body, &st); err != nil {
		return out, fmt.Errorf("state: %w", err)
	}
	out.Operations, out.LastResult = st.Operations, st.LastResult
	return out, nil
}

// play runs each client's ((10 + 5) × 2) through the balancer, kills the
// backend that served client 2's session start, and finishes with − 3.
func (sc *lbScenario) play(env *lab.Env, base string, bs *lbBackends) error {
	ctx := env.Ctx
	clients := make([]*Client, lbClients)
	for i := range clients {
		clients[i] = NewClient(base, true)
		defer clients[i].Close()
	}
	do := func(c *Client, label, method, path string, body any) *played {
		return sc.do(ctx, c, base, bs, label, method, path, body)
	}
	sc.pinned = map[string][]int{}
	results := make([]float64, lbClients)
	for i, c := range clients {
		who := fmt.Sprintf("client %d", i+1)
		if sc.mode == Stateless {
			p := do(c, who+": 10 + 5", "POST", "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)})
			q := do(c, who+": 15 × 2", "POST", "/calculate", CalcRequest{Op: Multiply, A: num(p.Rep.Result), B: num(2)})
			sc.useLast++
			if q.Err != nil || q.Rep.Status != 200 {
				sc.useLastFailed++
			}
			results[i] = q.Rep.Result
			continue
		}
		p := do(c, who+": start session", "POST", "/session", nil)
		if p.Err != nil || p.Rep.Status != http.StatusCreated {
			return fmt.Errorf("%s session start: %v %d %s", who, p.Err, p.Rep.Status, p.Rep.Error)
		}
		sc.pinned[backendOf(c, base)] = append(sc.pinned[backendOf(c, base)], i)
		do(c, who+": 10 + 5", "POST", "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)})
		q := do(c, who+": × 2", "POST", "/use_last", CalcRequest{Op: Multiply, B: num(2)})
		sc.useLast++
		if q.Err != nil || q.Rep.Status != 200 || q.Rep.Result != 30 {
			sc.useLastFailed++
		}
		results[i] = q.Rep.Result
	}
	// Kill the backend client 2 is pinned to (or b2).
	victim := 1
	if sc.policy == Sticky {
		if n, ok := backendIndex(backendOf(clients[1], base)); ok {
			victim = n
		}
	}
	sc.killed = bs.name(victim)
	bs.runs[victim].Close()
	sc.t.event("backend %s (%s) stopped", sc.killed, bs.runs[victim].Addr)
	for i, c := range clients {
		who := fmt.Sprintf("client %d", i+1)
		var p *played
		if sc.mode == Stateless {
			p = do(c, who+": 30 − 3 after "+sc.killed+" died", "POST", "/calculate", CalcRequest{Op: Subtract, A: num(results[i]), B: num(3)})
		} else {
			p = do(c, who+": − 3 after "+sc.killed+" died", "POST", "/use_last", CalcRequest{Op: Subtract, B: num(3)})
		}
		if p.Err != nil || p.Rep.Status != 200 || p.Rep.Result != 27 {
			sc.lostAfterKill = append(sc.lostAfterKill, i)
		}
	}
	if u, err := url.Parse(base); err == nil {
		for _, c := range clients {
			for _, ck := range c.HTTP.Jar.Cookies(u) {
				switch ck.Name {
				case SessionCookie:
					sc.sessionCookies++
				case LBCookie:
					sc.stickyCookies++
				}
			}
		}
	}
	return nil
}

// do plays one step through the balancer and records which backend served
// it, by the backends' own request counters, and the session that backend
// holds afterwards under the client's cookie, as it reports it.
func (sc *lbScenario) do(ctx context.Context, c *Client, base string, bs *lbBackends, label, method, path string, body any) *played {
	before := bs.answered()
	p := sc.t.do(ctx, c, label, method, path, body)
	var served []int
	for i, n := range bs.answered() {
		if n > before[i] {
			served = append(served, i)
		}
	}
	if len(served) != 1 { // none (a balancer's own error), or never expected more: the check says so
		names := make([]string, len(served))
		for k, i := range served {
			names[k] = bs.name(i)
		}
		sc.t.note("%s; backends that counted it: %d %v", replyNote(p), len(served), names)
		return p
	}
	i := served[0]
	p.Backend = bs.name(i)
	if sc.mode == Stateless {
		sc.t.note("%s served it: %s, keeps nothing", p.Backend, replyNote(p))
		return p
	}
	token := ""
	if u, err := url.Parse(base); err == nil {
		for _, ck := range c.HTTP.Jar.Cookies(u) {
			if ck.Name == SessionCookie {
				token = ck.Value
			}
		}
	}
	st, ok, err := bs.srvs[i].Session(ctx, token)
	switch {
	case err != nil:
		sc.t.note("%s served it: %s; its session store failed: %v", p.Backend, replyNote(p), err)
	case token == "" || !ok:
		sc.t.note("%s served it: %s; it holds no session %s", p.Backend, replyNote(p), short(token))
	case !st.HasLast:
		sc.t.note("%s served it: %s; session %s empty", p.Backend, replyNote(p), short(token))
	default:
		sc.t.note("%s served it: %s; session %s last_result=%g", p.Backend, replyNote(p), short(token), st.LastResult)
	}
	return p
}

// annotateBackends reads the balancer↔backend legs of the scenario back
// from the capture: the k-th exchange captured at a backend is the k-th
// request that backend counted. Each is commented with the backend that
// served it and the client step it belongs to, and checked against the
// client's exchange (inside it in time, and the reply's X-Backend header).
func (sc *lbScenario) annotateBackends(env *lab.Env, pkts []*capture.Packet, streams []*capture.Stream, front []*Exchange, bs *lbBackends) {
	pre := sc.balancer + " " + sc.name
	frontOf := map[*played]*Exchange{}
	k := 0
	for _, p := range sc.t.steps {
		if p.Err == nil && k < len(front) {
			frontOf[p] = front[k]
			k++
		}
	}
	served, matched := 0, 0
	var bad []string
	conns := map[netip.AddrPort]string{} // the balancer's end of a backend connection → what it carried
	for i, r := range bs.runs {
		name := bs.name(i)
		exs, err := exchangesIn(streams, r.Addr)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		}
		var steps []int
		for n, p := range sc.t.steps {
			if p.Backend == name {
				steps = append(steps, n)
			}
		}
		served += len(steps)
		if len(exs) != len(steps) {
			bad = append(bad, fmt.Sprintf("%s counted %d requests, the capture holds %d at %s", name, len(steps), len(exs), r.Addr))
		}
		for j := range min(len(exs), len(steps)) {
			ex, n := exs[j], steps[j]
			p := sc.t.steps[n]
			conns[ex.Client] = fmt.Sprintf("%s step %d (%s), backend leg balancer ↔ %s (%s)", sc.t.name, n+1, p.Label, name, r.Addr)
			label := ex.Request.Method + " " + ex.Request.URL.RequestURI()
			if ck, err := ex.Request.Cookie(SessionCookie); err == nil {
				label += " cookie=" + short(ck.Value)
			}
			if ex.ReqPacket != nil {
				ex.ReqPacket.Comment(fmt.Sprintf("%s step %d (%s), backend leg: balancer → %s (%s): %s", sc.t.name, n+1, p.Label, name, r.Addr, label))
			}
			if ex.Response == nil {
				bad = append(bad, fmt.Sprintf("step %d: no reply from %s captured", n+1, name))
				continue
			}
			rl := fmt.Sprintf("%d %s", ex.Response.StatusCode, replySummary(ex.RespBody))
			if ex.RespPacket != nil {
				ex.RespPacket.Comment(fmt.Sprintf("%s step %d (%s), backend leg: %s → balancer: %s; %s served it (by its own request counter)",
					sc.t.name, n+1, p.Label, name, trimString(rl, 160), name))
			}
			fx := frontOf[p]
			switch {
			case fx == nil || fx.Response == nil || fx.ReqPacket == nil || fx.RespPacket == nil || ex.ReqPacket == nil || ex.RespPacket == nil:
				bad = append(bad, fmt.Sprintf("step %d: the client's exchange is not whole in the capture", n+1))
			case ex.ReqPacket.Time.Before(fx.ReqPacket.Time) || fx.RespPacket.Time.Before(ex.RespPacket.Time):
				bad = append(bad, fmt.Sprintf("step %d: %s's exchange is not inside the client's", n+1, name))
			case fx.Response.Header.Get("X-Backend") != name:
				bad = append(bad, fmt.Sprintf("step %d: X-Backend %q, counted by %s", n+1, fx.Response.Header.Get("X-Backend"), name))
			default:
				matched++
			}
		}
	}
	sc.commentBackendPackets(pkts, bs, conns)
	env.Check(pre+": every request's backend leg is in the capture, at the backend that counted it", matched == served && len(bad) == 0,
		"%d of %d requests served by a backend: its leg captured inside the client's exchange, X-Backend agreeing%s",
		matched, served, problems(bad))
}

// commentBackendPackets comments every packet on the scenario's backend
// legs that has no comment yet (handshakes, ACKs, FINs) with the
// connection's step and backend, and the balancer's attempts at a stopped
// backend as such.
func (sc *lbScenario) commentBackendPackets(pkts []*capture.Packet, bs *lbBackends, conns map[netip.AddrPort]string) {
	names := map[netip.AddrPort]string{}
	for i, r := range bs.runs {
		names[r.Addr] = bs.name(i)
	}
	for _, p := range pkts {
		if len(p.Comments) > 0 {
			continue
		}
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		backend, peer := m.Dst, m.Src
		if _, ok := names[backend]; !ok {
			backend, peer = m.Src, m.Dst
		}
		name, ok := names[backend]
		if !ok {
			continue
		}
		if what, ok := conns[peer]; ok {
			p.Comment(what + ": " + tcpFlags(m.Flags))
			continue
		}
		why := "no HTTP exchange on this connection"
		if name == sc.killed {
			why = "the balancer tries " + name + ", which was stopped: connection refused"
		}
		p.Comment(fmt.Sprintf("%s, balancer ↔ %s (%s): %s; %s", sc.t.name, name, backend, tcpFlags(m.Flags), why))
	}
}

// tcpFlags names a segment's flags as Wireshark does: "SYN, ACK".
func tcpFlags(f uint8) string {
	var out []string
	for _, fl := range []struct {
		bit  uint8
		name string
	}{{capture.FlagFIN, "FIN"}, {capture.FlagSYN, "SYN"}, {capture.FlagRST, "RST"}, {capture.FlagPSH, "PSH"}, {capture.FlagACK, "ACK"}} {
		if f&fl.bit != 0 {
			out = append(out, fl.name)
		}
	}
	if len(out) == 0 {
		return "no flags"
	}
	return strings.Join(out, ", ")
}

func problems(bad []string) string {
	if len(bad) == 0 {
		return ""
	}
	if len(bad) > 3 {
		bad = append(bad[:3:3], fmt.Sprintf("%d more", len(bad)-3))
	}
	return "; " + strings.Join(bad, "; ")
}

// check states what the scenario must show.
func (sc *lbScenario) check(env *lab.Env) {
	pre := sc.balancer + " " + sc.name
	switch {
	case sc.mode == Stateful && sc.policy == RoundRobin:
		env.Check(pre+": round-robin breaks stateful sessions", sc.useLastFailed > 0,
			"use_last failed %d of %d (failure rate %.0f%%)", sc.useLastFailed, sc.useLast, 100*float64(sc.useLastFailed)/float64(max(1, sc.useLast)))
	case sc.mode == Stateful && sc.policy == Sticky:
		lost := sc.pinned[sc.killed]
		env.Check(pre+": sticky cookies keep every stateful workflow whole", sc.useLastFailed == 0,
			"use_last failed %d of %d; sessions per backend %v", sc.useLastFailed, sc.useLast, sc.pinned)
		env.Check(pre+": killing a backend loses exactly its sessions", len(lost) > 0 && fmt.Sprint(lost) == fmt.Sprint(sc.lostAfterKill),
			"killed %s holding clients %v; clients lost %v", sc.killed, idx1(lost), idx1(sc.lostAfterKill))
	default:
		env.Check(pre+": works under round-robin and survives losing a backend", sc.useLastFailed == 0 && len(sc.lostAfterKill) == 0,
			"failed %d of %d before the kill; %d of %d clients lost after %s died", sc.useLastFailed, sc.useLast, len(sc.lostAfterKill), lbClients, sc.killed)
	}
	key := sc.balancer + "." + sc.name
	if sc.mode == StoreBacked {
		env.Metric(key+".store_ops_count", float64(sc.storeOps))
	}
	if sc.redisTrips > 0 {
		env.Metric(key+".redis_round_trips_count", float64(sc.redisTrips))
		env.Metric(key+".reruns_count", float64(sc.reruns))
		env.Note("%s: %d Redis round trips for %d requests; runs again on a session another backend had changed since this one last saw it (each write is a compare-and-set): %d",
			pre, sc.redisTrips, sc.requests, sc.reruns)
	}
	env.Metric(key+".failure_rate", float64(sc.useLastFailed)/float64(max(1, sc.useLast)))
	env.Metric(key+".lost_after_kill_count", float64(len(sc.lostAfterKill)))
}

func idx1(xs []int) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = x + 1
	}
	return out
}

// backendOf reads the sticky cookie the balancer gave a client.
func backendOf(c *Client, base string) string {
	u, err := url.Parse(base)
	if err != nil || c.HTTP.Jar == nil {
		return "?"
	}
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == LBCookie {
			return ck.Value
		}
	}
	return "(no " + LBCookie + " cookie)"
}

func backendIndex(name string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(name, "b%d", &n); err != nil || n < 1 || n > 3 {
		return 0, false
	}
	return n - 1, true
}
