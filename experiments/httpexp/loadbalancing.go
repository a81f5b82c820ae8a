package httpexp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// http/load-balancing: three backends behind a balancer (the Go
// ReverseProxy one, and HAProxy when installed) under round-robin and
// sticky cookies, stateful and store-backed.

func runLoadBalancing(env *lab.Env) error {
	rig := setUp(env)
	scenarios, err := lbScenarios(rig)
	if err != nil {
		return err
	}
	fronts, err := startFronts(rig, scenarios)
	if err != nil {
		return err
	}
	cp, err := rig.capture()
	if err != nil {
		return err
	}
	want, err := playFronts(env, fronts)
	if err != nil {
		return err
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	streams := capture.TCPStreams(pkts)
	for _, f := range fronts {
		front := f.sc.t.annotate(env, pkts)
		f.sc.annotateBackends(env, pkts, streams, front, f.bs.legs())
	}
	// After the capture (so the transcripts stay one request per step).
	if err := concurrentUpdates(env, fronts); err != nil {
		return err
	}
	checkScenarios(env, scenarios)
	recordLBEvidence(env, scenarios)
	return nil
}

// lbClients is how many clients each scenario runs; with three backends
// each sticky client lands on its own backend.
const lbClients = 3

// lbConcurrent is how many concurrent "+1" the store-backed scenarios send
// on one session.
const lbConcurrent = 40

// lbScenario is one balancer, policy and backend kind.
type lbScenario struct {
	name     string
	balancer string // "ReverseProxy" or "HAProxy"
	policy   httpstate.Policy
	mode     httpstate.Mode
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

// lbScenarios are the scenarios: stateless, stateful and store-backed
// (SQLite, and Redis when installed) behind the Go balancer, and when
// haproxy is installed stateful and store-backed behind HAProxy.
func lbScenarios(rig *rig) ([]*lbScenario, error) {
	sqlite, err := rig.sqlite()
	if err != nil {
		return nil, err
	}
	const rp, rr, sticky = "ReverseProxy", httpstate.RoundRobin, httpstate.Sticky
	scenarios := []*lbScenario{
		{name: "stateless, round-robin", balancer: rp, policy: rr, mode: httpstate.Stateless},
		{name: "stateful, round-robin", balancer: rp, policy: rr, mode: httpstate.Stateful},
		{name: "stateful, sticky", balancer: rp, policy: sticky, mode: httpstate.Stateful},
		{name: "store-backed, round-robin", balancer: rp, policy: rr, mode: httpstate.StoreBacked, store: sqlite},
	}
	redis, err := rig.redis("the Redis-backed scenario")
	if err != nil {
		return nil, err
	}
	if redis != "" {
		scenarios = append(scenarios, &lbScenario{name: "store-backed (Redis), round-robin", balancer: rp, policy: rr, mode: httpstate.StoreBacked, store: redis})
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		rig.env.Note("haproxy is not installed: the HAProxy scenarios did not run")
		return scenarios, nil
	}
	return append(scenarios,
		&lbScenario{name: "stateful, round-robin", balancer: "HAProxy", policy: rr, mode: httpstate.Stateful},
		&lbScenario{name: "stateful, sticky (cookie insert)", balancer: "HAProxy", policy: sticky, mode: httpstate.Stateful},
		&lbScenario{name: "store-backed, round-robin", balancer: "HAProxy", policy: rr, mode: httpstate.StoreBacked, store: sqlite},
	), nil
}

// lbBackends are a scenario's three backends.
type lbBackends struct {
	runs []*httpstate.Running
	srvs []*httpstate.Server
}

// startBackends starts three backends; store-backed ones each open the
// store themselves (their own *sql.DB or Redis client), as separate
// processes would, and count their store operations.
func startBackends(rig *rig, mode httpstate.Mode, store string) (*lbBackends, error) {
	bs := &lbBackends{}
	for range 3 {
		srv, run, err := rig.server(mode, store)
		if err != nil {
			return nil, err
		}
		bs.runs, bs.srvs = append(bs.runs, run), append(bs.srvs, srv)
	}
	return bs, nil
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

// storeCost is how many store reads and writes the backends made, and
// how many commands they sent to Redis and requests they ran again because
// another backend had changed the session (zero for other stores).
func (bs *lbBackends) storeCost() (ops, trips, reruns int64) {
	for _, srv := range bs.srvs {
		st := srv.StoreStats()
		ops += st.Reads + st.Writes
		trips += st.RoundTrips
		reruns += st.Reruns
	}
	return ops, trips, reruns
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

// legs names the backends for the capture analysis.
func (bs *lbBackends) legs() []backendLeg {
	out := make([]backendLeg, len(bs.runs))
	for i, r := range bs.runs {
		out[i] = backendLeg{name: bs.name(i), addr: r.Addr}
	}
	return out
}

// front is a scenario's balancer with its backends.
type front struct {
	sc  *lbScenario
	url string
	bs  *lbBackends
	// answered is the front's count of answered requests: the Go
	// balancer's own counter; for HAProxy, its clients' count.
	answered func() int
	counter  string
}

// startFronts starts each scenario's backends and balancer. The capture
// keeps both legs: client↔balancer, and balancer↔backend, where it shows
// which backend served each request.
func startFronts(rig *rig, scenarios []*lbScenario) ([]front, error) {
	var fronts []front
	for _, sc := range scenarios {
		bs, err := startBackends(rig, sc.mode, sc.store)
		if err != nil {
			return nil, err
		}
		f := front{sc: sc, bs: bs}
		var addr netip.AddrPort
		if sc.balancer == "HAProxy" {
			h, err := rig.haproxy(sc.policy, bs.addrs())
			if err != nil {
				return nil, err
			}
			f.url, addr = h.URL(), h.Addr
			f.answered, f.counter = func() int { return sc.t.answered() }, "its clients"
		} else {
			lb, err := httpstate.NewBalancer(sc.policy, bs.urls()...)
			if err != nil {
				return nil, err
			}
			run, err := rig.listen(lb)
			if err != nil {
				return nil, err
			}
			f.url, addr = run.URL(), run.Addr
			f.answered, f.counter = run.Answered, "its request counter"
		}
		sc.t = &transcript{name: sc.balancer + ": " + sc.name, addr: addr, says: "as the backends counted and reported"}
		fronts = append(fronts, f)
	}
	return fronts, nil
}

// playFronts plays every scenario and returns what the balancers and
// backends counted.
func playFronts(env *lab.Env, fronts []front) (*wanted, error) {
	want := newWanted("the Go balancer's and the backends' request counters, HAProxy's clients")
	for _, f := range fronts {
		if err := f.sc.play(env, f.url, f.bs); err != nil {
			return nil, fmt.Errorf("%s: %w", f.sc.name, err)
		}
		f.sc.requests = len(f.sc.t.steps)
		f.sc.storeOps, f.sc.redisTrips, f.sc.reruns = f.bs.storeCost()
		want.add(f.sc.t.name+" (counted by "+f.counter+")", f.sc.t.addr, f.answered())
		for i, n := range f.bs.answered() {
			want.add(f.sc.t.name+" backend "+f.bs.name(i), f.bs.runs[i].Addr, n)
		}
	}
	return want, nil
}

// concurrentUpdates sends concurrent updates of one session through each
// store-backed scenario's balancer, spread over the backends by
// round-robin: all must count.
func concurrentUpdates(env *lab.Env, fronts []front) error {
	for _, f := range fronts {
		if f.sc.mode != httpstate.StoreBacked {
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
	return nil
}

// checkScenarios checks each scenario and tabulates them.
func checkScenarios(env *lab.Env, scenarios []*lbScenario) {
	rows := [][]string{{"balancer", "scenario", "use_last failed before the kill", "killed", "clients lost after the kill"}}
	for _, sc := range scenarios {
		rows = append(rows, []string{sc.balancer, sc.name, fmt.Sprintf("%d of %d", sc.useLastFailed, sc.useLast),
			sc.killed, fmt.Sprintf("%d of %d", len(sc.lostAfterKill), lbClients)})
		sc.check(env)
	}
	env.Table("Load balancing, measured", rows)
}

// recordLBEvidence fills the table's "scalability" and "complexity" rows
// from the Go balancer's scenarios.
func recordLBEvidence(env *lab.Env, scenarios []*lbScenario) {
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
	recordEvidence(env, rowScale, httpstate.Stateless, "round-robin: %d of %d workflows failed; losing a backend lost %d of %d clients",
		sl.useLastFailed, sl.useLast, len(sl.lostAfterKill), lbClients)
	recordEvidence(env, rowScale, httpstate.Stateful, "round-robin: %d of %d use_last failed; sticky: %d failed, losing a backend lost %d of %d clients",
		rr.useLastFailed, rr.useLast, st.useLastFailed, len(st.lostAfterKill), lbClients)
	recordEvidence(env, rowScale, httpstate.StoreBacked, "round-robin: %d of %d failed; losing a backend lost %d of %d clients; %d concurrent +1 on one session: %s",
		sb.useLastFailed, sb.useLast, len(sb.lostAfterKill), lbClients, lbConcurrent, sb.concurrent.summary(lbConcurrent))
	recordEvidence(env, rowComplex, httpstate.Stateless, "%d session cookies, %d sticky cookies, %d store operations for %d requests under round-robin",
		sl.sessionCookies, sl.stickyCookies, sl.storeOps, sl.requests)
	recordEvidence(env, rowComplex, httpstate.Stateful, "needs the balancer's sticky %q cookie (%d set; without it %d of %d use_last failed); losing a backend lost %d of its %d sessions",
		httpstate.LBCookie, st.stickyCookies, rr.useLastFailed, rr.useLast, len(st.lostAfterKill), len(st.pinned[st.killed]))
	recordEvidence(env, rowComplex, httpstate.StoreBacked, "needs a %s store: %d store reads+writes for %d requests (%.1f per request, plus a lock and unlock each), %d sticky cookies",
		storeWhere(sb.store), sb.storeOps, sb.requests, float64(sb.storeOps)/float64(max(1, sb.requests)), sb.stickyCookies)
}

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
	return fmt.Sprintf("statuses %s, operations=%d last_result=%g (exact: 41 and 55)", lab.KV(c.Statuses), c.Operations, c.LastResult)
}

// concurrentPlusOneThrough starts a session at base (10 + 5), sends n
// concurrent use_last "+1" with its cookie, each on its own connection, and
// reads the state back.
func concurrentPlusOneThrough(ctx context.Context, base string, n int) (concurrentResult, error) {
	out := concurrentResult{Statuses: map[int]int{}}
	c := httpstate.NewClient(base, true)
	defer c.Close()
	rep, err := c.Post(ctx, "/session", nil)
	if err != nil || rep.Status != http.StatusCreated || rep.Cookie == "" {
		return out, fmt.Errorf("session start: %d %v", rep.Status, err)
	}
	token := rep.Cookie
	if rep, err := c.Post(ctx, "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}); err != nil || rep.Status != http.StatusOK {
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
				req.AddCookie(&http.Cookie{Name: httpstate.SessionCookie, Value: token})
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
	var st httpstate.SessionState
	if err := json.Unmarshal(rep.Body, &st); err != nil {
		return out, fmt.Errorf("state: %w", err)
	}
	out.Operations, out.LastResult = st.Operations, st.LastResult
	return out, nil
}

// play runs each client's ((10 + 5) × 2) through the balancer, kills the
// backend that served client 2's session start, and finishes with − 3.
func (sc *lbScenario) play(env *lab.Env, base string, bs *lbBackends) error {
	clients := make([]*httpstate.Client, lbClients)
	for i := range clients {
		clients[i] = httpstate.NewClient(base, true)
		defer clients[i].Close()
	}
	results, err := sc.playBeforeKill(env, base, bs, clients)
	if err != nil {
		return err
	}
	sc.killBackend(base, bs, clients)
	sc.playAfterKill(env, base, bs, clients, results)
	sc.countCookies(base, clients)
	return nil
}

// playBeforeKill runs each client's ((10 + 5) × 2) and returns its
// results.
func (sc *lbScenario) playBeforeKill(env *lab.Env, base string, bs *lbBackends, clients []*httpstate.Client) ([]float64, error) {
	do := func(c *httpstate.Client, label, method, path string, body any) *played {
		return sc.do(env.Ctx, c, base, bs, label, method, path, body)
	}
	sc.pinned = map[string][]int{}
	results := make([]float64, lbClients)
	for i, c := range clients {
		who := fmt.Sprintf("client %d", i+1)
		var q *played
		if sc.mode == httpstate.Stateless {
			p := do(c, who+": 10 + 5", "POST", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)})
			q = do(c, who+": 15 × 2", "POST", "/calculate", httpstate.CalcRequest{Op: httpstate.Multiply, A: num(p.Rep.Result), B: num(2)})
		} else {
			p := do(c, who+": start session", "POST", "/session", nil)
			if p.Err != nil || p.Rep.Status != http.StatusCreated {
				return nil, fmt.Errorf("%s session start: %v %d %s", who, p.Err, p.Rep.Status, p.Rep.Error)
			}
			sc.pinned[backendOf(c, base)] = append(sc.pinned[backendOf(c, base)], i)
			do(c, who+": 10 + 5", "POST", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)})
			q = do(c, who+": × 2", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Multiply, B: num(2)})
		}
		sc.useLast++
		if q.Err != nil || q.Rep.Status != 200 || (sc.mode != httpstate.Stateless && q.Rep.Result != 30) {
			sc.useLastFailed++
		}
		results[i] = q.Rep.Result
	}
	return results, nil
}

// killBackend stops the backend client 2 is pinned to (or b2).
func (sc *lbScenario) killBackend(base string, bs *lbBackends, clients []*httpstate.Client) {
	victim := 1
	if sc.policy == httpstate.Sticky {
		if n, ok := backendIndex(backendOf(clients[1], base)); ok {
			victim = n
		}
	}
	sc.killed = bs.name(victim)
	bs.runs[victim].Close()
	sc.t.event("backend %s (%s) stopped", sc.killed, bs.runs[victim].Addr)
}

// playAfterKill finishes each client's workflow with − 3.
func (sc *lbScenario) playAfterKill(env *lab.Env, base string, bs *lbBackends, clients []*httpstate.Client, results []float64) {
	for i, c := range clients {
		who := fmt.Sprintf("client %d", i+1)
		var p *played
		if sc.mode == httpstate.Stateless {
			p = sc.do(env.Ctx, c, base, bs, who+": 30 − 3 after "+sc.killed+" died", "POST", "/calculate",
				httpstate.CalcRequest{Op: httpstate.Subtract, A: num(results[i]), B: num(3)})
		} else {
			p = sc.do(env.Ctx, c, base, bs, who+": − 3 after "+sc.killed+" died", "POST", "/use_last",
				httpstate.CalcRequest{Op: httpstate.Subtract, B: num(3)})
		}
		if p.Err != nil || p.Rep.Status != 200 || p.Rep.Result != 27 {
			sc.lostAfterKill = append(sc.lostAfterKill, i)
		}
	}
}

// countCookies counts the session and sticky cookies the clients hold.
func (sc *lbScenario) countCookies(base string, clients []*httpstate.Client) {
	u, err := url.Parse(base)
	if err != nil {
		return
	}
	for _, c := range clients {
		for _, ck := range c.HTTP.Jar.Cookies(u) {
			switch ck.Name {
			case httpstate.SessionCookie:
				sc.sessionCookies++
			case httpstate.LBCookie:
				sc.stickyCookies++
			}
		}
	}
}

// do plays one step through the balancer and records which backend served
// it, by the backends' own request counters, and the session that backend
// holds afterwards under the client's cookie, as it reports it.
func (sc *lbScenario) do(ctx context.Context, c *httpstate.Client, base string, bs *lbBackends, label, method, path string, body any) *played {
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
	if sc.mode == httpstate.Stateless {
		sc.t.note("%s served it: %s, keeps nothing", p.Backend, replyNote(p))
		return p
	}
	token := sessionOf(c, base)
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

// check states what the scenario must show.
func (sc *lbScenario) check(env *lab.Env) {
	pre := sc.balancer + " " + sc.name
	switch {
	case sc.mode == httpstate.Stateful && sc.policy == httpstate.RoundRobin:
		env.Check(pre+": round-robin breaks stateful sessions", sc.useLastFailed > 0,
			"use_last failed %d of %d (failure rate %.0f%%)", sc.useLastFailed, sc.useLast, 100*float64(sc.useLastFailed)/float64(max(1, sc.useLast)))
	case sc.mode == httpstate.Stateful && sc.policy == httpstate.Sticky:
		lost := sc.pinned[sc.killed]
		env.Check(pre+": sticky cookies keep every stateful workflow whole", sc.useLastFailed == 0,
			"use_last failed %d of %d; sessions per backend %s", sc.useLastFailed, sc.useLast, lab.KV(sc.pinned))
		env.Check(pre+": killing a backend loses exactly its sessions", len(lost) > 0 && fmt.Sprint(lost) == fmt.Sprint(sc.lostAfterKill),
			"killed %s holding clients %v; clients lost %v", sc.killed, idx1(lost), idx1(sc.lostAfterKill))
	default:
		env.Check(pre+": works under round-robin and survives losing a backend", sc.useLastFailed == 0 && len(sc.lostAfterKill) == 0,
			"failed %d of %d before the kill; %d of %d clients lost after %s died", sc.useLastFailed, sc.useLast, len(sc.lostAfterKill), lbClients, sc.killed)
	}
	key := sc.balancer + "." + sc.name
	if sc.mode == httpstate.StoreBacked {
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

// cookieOf reads a cookie a client holds for base.
func cookieOf(c *httpstate.Client, base, name string) (string, bool) {
	u, err := url.Parse(base)
	if err != nil || c.HTTP.Jar == nil {
		return "", false
	}
	for _, ck := range c.HTTP.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value, true
		}
	}
	return "", false
}

// sessionOf reads the session token a client holds for base.
func sessionOf(c *httpstate.Client, base string) string {
	v, _ := cookieOf(c, base, httpstate.SessionCookie)
	return v
}

// backendOf reads the sticky cookie the balancer gave a client.
func backendOf(c *httpstate.Client, base string) string {
	if _, err := url.Parse(base); err != nil || c.HTTP.Jar == nil {
		return "?"
	}
	if v, ok := cookieOf(c, base, httpstate.LBCookie); ok {
		return v
	}
	return "(no " + httpstate.LBCookie + " cookie)"
}

func backendIndex(name string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(name, "b%d", &n); err != nil || n < 1 || n > 3 {
		return 0, false
	}
	return n - 1, true
}
