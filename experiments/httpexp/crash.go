package httpexp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// http/crash: a real server process killed with SIGKILL mid-workflow and
// restarted on the same address.

func runCrash(env *lab.Env) error {
	rig := setUp(env)
	cases, err := crashCases(rig)
	if err != nil {
		return err
	}
	// Start every first process, so the capture can filter on their ports.
	firsts, err := startFirstProcesses(rig, cases)
	if err != nil {
		return err
	}
	cp, err := rig.capture()
	if err != nil {
		return err
	}
	want, err := playCrashes(env, rig, cases, firsts)
	if err != nil {
		return err
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	carried, carrying := 0, 0 // session cookie bytes in the captured requests, and requests with one
	for _, c := range cases {
		for _, ex := range c.t.annotate(env, pkts) {
			if v := requestCookie(ex, httpstate.SessionCookie); v != "" {
				carried, carrying = carried+len(v), carrying+1
			}
		}
	}
	recordCrashEvidence(env, cases)
	recordCrashHolding(env, cases, carried, carrying)
	return nil
}

// crashCase is one server kind killed mid-workflow.
type crashCase struct {
	name  string
	mode  httpstate.Mode
	store string // --store URL for the store-backed kinds
	t     *transcript
	ok    bool // the workflow reached 27 after the crash

	// measured after the restart
	status  int
	code    string
	result  float64
	history int
}

// crashCases are the server kinds: stateless, stateful, SQLite and, when
// redis-server is installed, Redis.
func crashCases(rig *rig) ([]*crashCase, error) {
	sqlite, err := rig.sqlite()
	if err != nil {
		return nil, err
	}
	cases := []*crashCase{
		{name: "stateless", mode: httpstate.Stateless},
		{name: "stateful", mode: httpstate.Stateful},
		{name: "store-sqlite", mode: httpstate.StoreBacked, store: sqlite},
	}
	redis, err := rig.redis("the Redis case")
	if err != nil {
		return nil, err
	}
	if redis != "" {
		cases = append(cases, &crashCase{name: "store-redis", mode: httpstate.StoreBacked, store: redis})
	}
	return cases, nil
}

// startFirstProcesses starts each case's first server process.
func startFirstProcesses(rig *rig, cases []*crashCase) ([]*child, error) {
	firsts := make([]*child, len(cases))
	for i, c := range cases {
		ch, err := rig.child(httpstate.ServeSpec{Mode: c.mode, Addr: "127.0.0.1:0", Store: c.store})
		if err != nil {
			return nil, err
		}
		firsts[i] = ch
		c.t = &transcript{name: c.name + " server", addr: ch.addr, says: "as its reply showed"}
	}
	return firsts, nil
}

// playCrashes plays every case. The servers' own counts die with them
// (kill -9), so the clients count: a request is answered when its client
// read the reply.
func playCrashes(env *lab.Env, rig *rig, cases []*crashCase, firsts []*child) (*wanted, error) {
	want := newWanted("the clients' answered requests")
	for i, c := range cases {
		if err := c.play(env, rig, firsts[i]); err != nil {
			return nil, err
		}
		want.add(c.t.name, c.t.addr, c.t.answered())
	}
	return want, nil
}

// play runs ((10 + 5) × 2), kills the server with SIGKILL, restarts it on
// the same address, and tries − 3.
func (c *crashCase) play(env *lab.Env, rig *rig, first *child) error {
	cl := httpstate.NewClient(first.url(), c.mode != httpstate.Stateless)
	defer cl.Close()
	if err := c.playBeforeCrash(env, cl); err != nil {
		return err
	}
	if err := c.crashAndRestart(env, rig, first, cl); err != nil {
		return err
	}
	switch c.mode {
	case httpstate.Stateless:
		c.afterStateless(env, cl)
		return nil
	case httpstate.Stateful:
		return c.afterStateful(env, cl)
	}
	return c.afterStore(env, cl)
}

// playBeforeCrash runs ((10 + 5) × 2): the stateless client carrying the
// running value, the others on a session.
func (c *crashCase) playBeforeCrash(env *lab.Env, cl *httpstate.Client) error {
	ctx, t := env.Ctx, c.t
	must := func(p *played) error {
		if p.Err != nil || p.Rep.Status >= 300 {
			return fmt.Errorf("%s: %s before the crash: %v %d %s", c.name, p.Label, p.Err, p.Rep.Status, p.Rep.Error)
		}
		return nil
	}
	if c.mode == httpstate.Stateless {
		for _, s := range []struct {
			label string
			a     float64
			op    httpstate.Op
			b     float64
		}{{"10 + 5", 10, httpstate.Add, 5}, {"15 × 2", 15, httpstate.Multiply, 2}} {
			p := t.do(ctx, cl, s.label, "POST", "/calculate", httpstate.CalcRequest{Op: s.op, A: num(s.a), B: num(s.b)})
			if err := must(p); err != nil {
				return err
			}
			t.note("keeps nothing (no Set-Cookie); the client carries %g", p.Rep.Result)
		}
		return nil
	}
	for _, s := range []struct {
		label, path string
		body        any
	}{
		{"start session", "/session", nil},
		{"10 + 5", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}},
		{"× 2", "/use_last", httpstate.CalcRequest{Op: httpstate.Multiply, B: num(2)}},
	} {
		p := t.do(ctx, cl, s.label, "POST", s.path, s.body)
		if err := must(p); err != nil {
			return err
		}
		if s.body != nil {
			t.note("last_result=%g in %s", p.Rep.Result, storeWhere(c.store))
		} else {
			t.note("a session in %s", storeWhere(c.store))
		}
	}
	return nil
}

// crashAndRestart kills the first process with SIGKILL and starts a second
// on the same address.
func (c *crashCase) crashAndRestart(env *lab.Env, rig *rig, first *child, cl *httpstate.Client) error {
	killed, err := first.kill()
	if err != nil {
		return err
	}
	env.Check(c.name+": the server process died of SIGKILL", killed, "pid %d, wait status says SIGKILL: %t", first.pid(), killed)
	cl.Close() // the old connection died with the process
	second, err := rig.child(httpstate.ServeSpec{Mode: c.mode, Addr: first.addr.String(), Store: c.store})
	if err != nil {
		return fmt.Errorf("%s: restarting on %s: %w", c.name, first.addr, err)
	}
	c.t.event("kill -9 pid %d; restarted as pid %d on %s", first.pid(), second.pid(), second.addr)
	env.Check(c.name+": restarted on the same address", second.addr == first.addr, "%s → %s", first.addr, second.addr)
	return nil
}

// afterStateless finishes the stateless workflow: nothing was lost.
func (c *crashCase) afterStateless(env *lab.Env, cl *httpstate.Client) {
	after := c.t.do(env.Ctx, cl, "30 − 3 after kill -9 and restart", "POST", "/calculate",
		httpstate.CalcRequest{Op: httpstate.Subtract, A: num(30), B: num(3)})
	c.t.note("keeps nothing (%s)", replyNote(after))
	c.status, c.code, c.result = after.Rep.Status, after.Rep.Code, after.Rep.Result
	c.ok = after.Err == nil && after.Rep.Status == 200 && after.Rep.Result == 27
	env.Check("stateless: nothing lost, the workflow reaches 27", c.ok, "%d result=%g error: %s", after.Rep.Status, after.Rep.Result, lab.ErrText(after.Err))
	env.Metric(c.name+".lost_requests", float64(b2i(!c.ok)))
}

// afterRestart tries − 3 on the session the first process held.
func (c *crashCase) afterRestart(env *lab.Env, cl *httpstate.Client) (*played, error) {
	after := c.t.do(env.Ctx, cl, "− 3 after kill -9 and restart", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Subtract, B: num(3)})
	if after.Err != nil {
		return nil, fmt.Errorf("%s: after restart: %w", c.name, after.Err)
	}
	c.status, c.code, c.result = after.Rep.Status, after.Rep.Code, after.Rep.Result
	return after, nil
}

// afterStateful: the session died with the process.
func (c *crashCase) afterStateful(env *lab.Env, cl *httpstate.Client) error {
	after, err := c.afterRestart(env, cl)
	if err != nil {
		return err
	}
	c.t.note("no session (%s): the memory that held it died with the process", replyNote(after))
	env.Check("stateful: the session is gone after kill -9 (use_last is a 401)",
		after.Rep.Status == http.StatusUnauthorized && after.Rep.Code == "no_session",
		"%d %s %q", after.Rep.Status, after.Rep.Code, after.Rep.Error)
	env.Metric(c.name+".session_lost", float64(b2i(after.Rep.Status == http.StatusUnauthorized)))
	return nil
}

// afterStore: the workflow continues from the store, its history intact.
func (c *crashCase) afterStore(env *lab.Env, cl *httpstate.Client) error {
	t := c.t
	after, err := c.afterRestart(env, cl)
	if err != nil {
		return err
	}
	if after.Rep.Status == http.StatusOK {
		t.note("last_result=%g in %s", after.Rep.Result, storeWhere(c.store))
	} else {
		t.note("%s", replyNote(after))
	}
	hist := t.do(env.Ctx, cl, "history after the crash", "GET", "/history", nil)
	if hist.Err != nil {
		return hist.Err
	}
	var h struct{ History []httpstate.HistoryEntry }
	_ = json.Unmarshal(hist.Rep.Body, &h)
	t.note("history of %d entries in %s (%s)", len(h.History), storeWhere(c.store), replyNote(hist))
	c.history = len(h.History)
	c.ok = after.Rep.Status == 200 && after.Rep.Result == 27 && len(h.History) == 3
	env.Check(c.name+": the workflow continues across kill -9 with its history intact", c.ok,
		"use_last after restart: %d result=%g; history: %d entries (want 3: add, multiply, subtract)",
		after.Rep.Status, after.Rep.Result, len(h.History))
	env.Metric(c.name+".session_lost", float64(b2i(!c.ok)))
	return nil
}

// recordCrashEvidence fills the table's "crash recovery" row.
func recordCrashEvidence(env *lab.Env, cases []*crashCase) {
	sl, sf := cases[0], cases[1]
	if sl.ok {
		recordEvidence(env, rowCrash, httpstate.Stateless, "nothing lost: the workflow reached %g after kill -9", sl.result)
	} else {
		recordEvidence(env, rowCrash, httpstate.Stateless, "workflow broke after kill -9: %d result=%g", sl.status, sl.result)
	}
	if sf.status == http.StatusUnauthorized && sf.code == "no_session" {
		recordEvidence(env, rowCrash, httpstate.Stateful, "session lost: use_last after kill -9 → %d %s", sf.status, sf.code)
	} else {
		recordEvidence(env, rowCrash, httpstate.Stateful, "use_last after kill -9 → %d %s result=%g (the session was not lost)", sf.status, sf.code, sf.result)
	}
	var cells []string
	for _, c := range cases[2:] {
		if c.ok {
			cells = append(cells, fmt.Sprintf("%s: workflow continued after kill -9 (%g, history of %d intact)", storeWhere(c.store), c.result, c.history))
		} else {
			cells = append(cells, fmt.Sprintf("%s: workflow broke after kill -9 (use_last %d result=%g, history of %d)", storeWhere(c.store), c.status, c.result, c.history))
		}
	}
	recordEvidence(env, rowCrash, httpstate.StoreBacked, "%s", strings.Join(cells, "; "))
}

// recordCrashHolding records the experiment's row of "who holds the
// state": what each kind kept, and what the kill -9 was seen to lose;
// the carried bytes are the session cookies' in the captured requests.
func recordCrashHolding(env *lab.Env, cases []*crashCase, carried, carrying int) {
	var keeps, loses []string
	for _, c := range cases {
		switch {
		case c.mode == httpstate.Stateless:
			keeps = append(keeps, "stateless: nothing")
		case c.mode == httpstate.Stateful:
			keeps = append(keeps, "stateful: the session in process memory")
		default:
			keeps = append(keeps, c.name+": nothing in the process, the session in "+storeWhere(c.store))
		}
		switch {
		case c.ok:
			loses = append(loses, fmt.Sprintf("%s nothing (%g reached)", c.name, c.result))
		case c.status == http.StatusUnauthorized:
			loses = append(loses, fmt.Sprintf("%s the session (use_last → %d %s)", c.name, c.status, c.code))
		default:
			loses = append(loses, fmt.Sprintf("%s the workflow (%d %s)", c.name, c.status, c.code))
		}
	}
	mean := 0
	if carrying > 0 {
		mean = (carried + carrying/2) / carrying
	}
	env.Holding(lab.Holding{
		ServerKeeps:   strings.Join(keeps, "; "),
		ClientCarries: fmt.Sprintf("stateless: the running value in each request; the others: a %d-byte session cookie (mean of %d captured requests)", mean, carrying),
		RestartLoses:  "kill -9 lost: " + strings.Join(loses, "; "),
		CarriedBytes:  mean,
		CarriedPer:    "per request with a session",
	})
}
