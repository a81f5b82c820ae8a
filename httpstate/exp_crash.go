package httpstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "http/crash",
		Summary: "kill -9 the server between two requests of a workflow: stateful loses the session, stateless and store-backed lose nothing",
		Shows: "A real server process is killed with SIGKILL mid-workflow and restarted on the same address: the stateful " +
			"server's session is gone (the next use_last is a 401), the stateless client carries on, and the store-backed " +
			"server (SQLite, and Redis when installed) continues the workflow with its history intact.",
		Run: runCrash,
	})
}

// crashCase is one server kind killed mid-workflow.
type crashCase struct {
	name  string
	mode  Mode
	store string // --store URL for the store-backed kinds
	kind  Mode   // the evidence column
	t     *transcript
	ok    bool // the workflow reached 27 after the crash

	// measured after the restart
	status  int
	code    string
	result  float64
	history int
}

func runCrash(env *lab.Env) error {
	startEvidence(env)
	dir, err := os.MkdirTemp("", "statelab-crash-")
	if err != nil {
		return err
	}
	env.Cleanup(func() { os.RemoveAll(dir) })
	cases := []*crashCase{
		{name: "stateless", mode: Stateless, kind: Stateless},
		{name: "stateful", mode: Stateful, kind: Stateful},
		{name: "store-sqlite", mode: StoreBacked, store: "sqlite://" + filepath.Join(dir, "sessions.db"), kind: StoreBacked},
	}
	redisNote := ""
	if rs, err := StartRedis(env.Ctx); err == nil {
		env.Cleanup(rs.Close)
		started("redis-server", rs.cmd.Process.Pid)
		cases = append(cases, &crashCase{name: "store-redis", mode: StoreBacked, store: rs.URL(), kind: StoreBacked})
	} else if errors.Is(err, ErrNoRedis) {
		redisNote = "redis-server is not installed: the Redis case did not run"
		env.Note("%s", redisNote)
	} else {
		return err
	}

	// Start every first process, so the capture can filter on their ports.
	children := make([]*Child, len(cases))
	var ports []uint16
	for i, c := range cases {
		ch, err := StartChild(env.Ctx, ChildSpec{Mode: c.mode, Addr: "127.0.0.1:0", Store: c.store})
		if err != nil {
			return err
		}
		env.Cleanup(ch.Stop)
		started("server process", ch.PID())
		children[i] = ch
		c.t = &transcript{name: c.name + " server", addr: ch.Addr, says: "as its reply showed"}
		ports = append(ports, ch.Addr.Port())
	}
	cp, err := env.Capture(captureOpts(ports...))
	if err != nil {
		return err
	}
	started("capture", 0)
	// The servers' own counts die with them (kill -9), so the clients
	// count: a request is answered when its client read the reply.
	want := newWanted("the clients' answered requests")
	for i, c := range cases {
		if err := c.play(env, children[i]); err != nil {
			return err
		}
		want.add(c.t.name, c.t.addr, c.t.answered())
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	for _, c := range cases {
		c.t.annotate(env, pkts)
	}
	byName := map[string]*crashCase{}
	for _, c := range cases {
		byName[c.name] = c
	}
	sl, sf := byName["stateless"], byName["stateful"]
	if sl.ok {
		recordEvidence(env, rowCrash, Stateless, "nothing lost: the workflow reached %g after kill -9", sl.result)
	} else {
		recordEvidence(env, rowCrash, Stateless, "workflow broke after kill -9: %d result=%g", sl.status, sl.result)
	}
	if sf.status == http.StatusUnauthorized && sf.code == "no_session" {
		recordEvidence(env, rowCrash, Stateful, "session lost: use_last after kill -9 → %d %s", sf.status, sf.code)
	} else {
		recordEvidence(env, rowCrash, Stateful, "use_last after kill -9 → %d %s result=%g (the session was not lost)", sf.status, sf.code, sf.result)
	}
	var cells []string
	for _, c := range cases {
		if c.mode != StoreBacked {
			continue
		}
		if c.ok {
			cells = append(cells, fmt.Sprintf("%s: workflow continued after kill -9 (%g, history of %d intact)", storeWhere(c), c.result, c.history))
		} else {
			cells = append(cells, fmt.Sprintf("%s: workflow broke after kill -9 (use_last %d result=%g, history of %d)", storeWhere(c), c.status, c.result, c.history))
		}
	}
	recordEvidence(env, rowCrash, StoreBacked, "%s", strings.Join(cells, "; "))
	return nil
}

// play runs ((10 + 5) × 2), kills the server with SIGKILL, restarts it on
// the same address, and tries − 3.
func (c *crashCase) play(env *lab.Env, first *Child) error {
	ctx, t := env.Ctx, c.t
	cl := NewClient(first.URL(), c.mode != Stateless)
	defer cl.Close()
	must := func(p *played) error {
		if p.Err != nil || p.Rep.Status >= 300 {
			return fmt.Errorf("%s: %s before the crash: %v %d %s", c.name, p.Label, p.Err, p.Rep.Status, p.Rep.Error)
		}
		return nil
	}
	if c.mode == Stateless {
		for _, s := range []struct {
			label string
			a     float64
			op    Op
			b     float64
		}{{"10 + 5", 10, Add, 5}, {"15 × 2", 15, Multiply, 2}} {
			p := t.do(ctx, cl, s.label, "POST", "/calculate", CalcRequest{Op: s.op, A: num(s.a), B: num(s.b)})
			if err := must(p); err != nil {
				return err
			}
			t.note("keeps nothing (no Set-Cookie); the client carries %g", p.Rep.Result)
		}
	} else {
		for _, s := range []struct {
			label, path string
			body        any
		}{
			{"start session", "/session", nil},
			{"10 + 5", "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)}},
			{"× 2", "/use_last", CalcRequest{Op: Multiply, B: num(2)}},
		} {
			p := t.do(ctx, cl, s.label, "POST", s.path, s.body)
			if err := must(p); err != nil {
				return err
			}
			if s.body != nil {
				t.note("last_result=%g in %s", p.Rep.Result, storeWhere(c))
			} else {
				t.note("a session in %s", storeWhere(c))
			}
		}
	}

	killed, err := first.Kill()
	if err != nil {
		return err
	}
	env.Check(c.name+": the server process died of SIGKILL", killed, "pid %d, wait status says SIGKILL: %t", first.PID(), killed)
	cl.Close() // the old connection died with the process
	second, err := StartChild(ctx, ChildSpec{Mode: c.mode, Addr: first.Addr.String(), Store: c.store})
	if err != nil {
		return fmt.Errorf("%s: restarting on %s: %w", c.name, first.Addr, err)
	}
	env.Cleanup(second.Stop)
	started("server process", second.PID())
	t.event("kill -9 pid %d; restarted as pid %d on %s", first.PID(), second.PID(), second.Addr)
	env.Check(c.name+": restarted on the same address", second.Addr == first.Addr, "%s → %s", first.Addr, second.Addr)

	var after *played
	if c.mode == Stateless {
		after = t.do(ctx, cl, "30 − 3 after kill -9 and restart", "POST", "/calculate", CalcRequest{Op: Subtract, A: num(30), B: num(3)})
		t.note("keeps nothing (%s)", replyNote(after))
		c.status, c.code, c.result = after.Rep.Status, after.Rep.Code, after.Rep.Result
		c.ok = after.Err == nil && after.Rep.Status == 200 && after.Rep.Result == 27
		env.Check("stateless: nothing lost, the workflow reaches 27", c.ok, "%d result=%g err=%v", after.Rep.Status, after.Rep.Result, after.Err)
		env.Metric(c.name+".lost_requests", float64(b2i(!c.ok)))
		return nil
	}
	after = t.do(ctx, cl, "− 3 after kill -9 and restart", "POST", "/use_last", CalcRequest{Op: Subtract, B: num(3)})
	if after.Err != nil {
		return fmt.Errorf("%s: after restart: %w", c.name, after.Err)
	}
	c.status, c.code, c.result = after.Rep.Status, after.Rep.Code, after.Rep.Result
	if c.mode == Stateful {
		t.note("no session (%s): the memory that held it died with the process", replyNote(after))
		env.Check("stateful: the session is gone after kill -9 (use_last is a 401)",
			after.Rep.Status == http.StatusUnauthorized && after.Rep.Code == "no_session",
			"%d %s %q", after.Rep.Status, after.Rep.Code, after.Rep.Error)
		env.Metric(c.name+".session_lost", float64(b2i(after.Rep.Status == http.StatusUnauthorized)))
		return nil
	}
	if after.Rep.Status == http.StatusOK {
		t.note("last_result=%g in %s", after.Rep.Result, storeWhere(c))
	} else {
		t.note("%s", replyNote(after))
	}
	hist := t.do(ctx, cl, "history after the crash", "GET", "/history", nil)
	if hist.Err != nil {
		return hist.Err
	}
	var h struct{ History []HistoryEntry }
	_ = json.Unmarshal(hist.Rep.Body, &h)
	t.note("history of %d entries in %s (%s)", len(h.History), storeWhere(c), replyNote(hist))
	c.history = len(h.History)
	c.ok = after.Rep.Status == 200 && after.Rep.Result == 27 && len(h.History) == 3
	env.Check(c.name+": the workflow continues across kill -9 with its history intact", c.ok,
		"use_last after restart: %d result=%g; history: %d entries (want 3: add, multiply, subtract)",
		after.Rep.Status, after.Rep.Result, len(h.History))
	env.Metric(c.name+".session_lost", float64(b2i(!c.ok)))
	return nil
}

// replyNote is what a reply said, for a step's server state: "200
// result=30", "401 no_session".
func replyNote(p *played) string {
	if p.Err != nil {
		return "no reply"
	}
	if p.Rep.Code != "" {
		return fmt.Sprintf("%d %s", p.Rep.Status, p.Rep.Code)
	}
	var v struct{ Result *float64 }
	if json.Unmarshal(p.Rep.Body, &v) == nil && v.Result != nil {
		return fmt.Sprintf("%d result=%g", p.Rep.Status, *v.Result)
	}
	return fmt.Sprint(p.Rep.Status)
}

func storeWhere(c *crashCase) string {
	if c.store == "" {
		return "process memory"
	}
	u, err := ParseStoreURL(c.store)
	if err != nil {
		return c.store
	}
	return string(u.Kind)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
