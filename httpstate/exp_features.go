package httpstate

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "http/features",
		Summary: "history, undo and stats on a stateful session; the stateless server cannot offer them",
		Shows: "A stateful session keeps history, undo and stats (operations, most used op) because the server " +
			"remembers; undo with an empty history is a 409 that changes nothing; the stateless server answers the " +
			"same requests with 404 \"stateless\".",
		Run: runFeatures,
	})
}

func runFeatures(env *lab.Env) error {
	type side struct {
		mode Mode
		srv  *Server
		run  *Running
		c    *Client
		t    *transcript
	}
	var sides []*side
	var ports []uint16
	for _, m := range []Mode{Stateful, Stateless} {
		srv, err := New(Config{Mode: m})
		if err != nil {
			return err
		}
		run, err := Listen("127.0.0.1:0", srv)
		if err != nil {
			srv.Close()
			return err
		}
		c := NewClient(run.URL(), true)
		env.Cleanup(func() { c.Close(); run.Close(); srv.Close() })
		sides = append(sides, &side{m, srv, run, c, &transcript{name: string(m) + " server", addr: run.Addr}})
		ports = append(ports, run.Addr.Port())
	}
	cp, err := env.Capture(captureOpts(ports...))
	if err != nil {
		return err
	}
	sf, sl := sides[0], sides[1]
	ctx := env.Ctx
	token := ""
	state := func() SessionState {
		st, _, _ := sf.srv.Session(ctx, token)
		return st
	}
	t := sf.t
	// The stateful script: a workflow, then the features.
	p := t.do(ctx, sf.c, "start session", "POST", "/session", nil)
	token = p.Rep.Cookie
	steps := []struct {
		label, method, path string
		body                any
	}{
		{"10 + 5", "POST", "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)}},
		{"× 2", "POST", "/use_last", CalcRequest{Op: Multiply, B: num(2)}},
		{"− 3", "POST", "/use_last", CalcRequest{Op: Subtract, B: num(3)}},
		{"+ 1", "POST", "/use_last", CalcRequest{Op: Add, B: num(1)}},
		{"history", "GET", "/history", nil},
		{"stats", "GET", "/stats", nil},
		{"undo + 1", "POST", "/undo", nil},
	}
	var history, stats, undo *played
	for _, s := range steps {
		p := t.do(ctx, sf.c, s.label, s.method, s.path, s.body)
		if p.Err != nil {
			return p.Err
		}
		st := state()
		t.note("last_result=%g history=%d ops=%d", st.LastResult, len(st.History), st.Operations)
		switch s.path {
		case "/history":
			history = p
		case "/stats":
			stats = p
		case "/undo":
			undo = p
		}
	}
	var h struct{ History []HistoryEntry }
	_ = json.Unmarshal(history.Rep.Body, &h)
	env.Check("history lists the session's 4 computations in order", len(h.History) == 4 &&
		h.History[0].Op == Add && h.History[1].Op == Multiply && h.History[2].Op == Subtract && h.History[3].Result == 28,
		"GET /history: %d entries %s", len(h.History), trimBody(history.Rep.Body))
	var s Stats
	_ = json.Unmarshal(stats.Rep.Body, &s)
	env.Check("stats count operations and name the most used op", s.Operations == 4 && s.MostUsedOp == Add && s.OpCounts[Add] == 2,
		"GET /stats: operations=%d most_used_op=%s (add ×%d)", s.Operations, s.MostUsedOp, s.OpCounts[Add])
	env.Check("undo restores the previous result", undo.Rep.Status == 200 && undo.Rep.Result == 27 && state().LastResult == 27,
		"POST /undo: %d result=%g; server last_result=%g", undo.Rep.Status, undo.Rep.Result, state().LastResult)

	// Undo to the bottom, then once more: a 409 that changes nothing.
	for i := 0; i < 3; i++ {
		p := t.do(ctx, sf.c, fmt.Sprintf("undo %d of 3", i+1), "POST", "/undo", nil)
		if p.Err != nil {
			return p.Err
		}
		st := state()
		t.note("has_last=%t history=%d", st.HasLast, len(st.History))
	}
	before := state()
	bad := t.do(ctx, sf.c, "undo with empty history", "POST", "/undo", nil)
	if bad.Err != nil {
		return bad.Err
	}
	after := state()
	t.note("unchanged: history=%d operations=%d", len(after.History), after.Operations)
	env.Check("undo with an empty history is a 409 and leaves the session as it was",
		bad.Rep.Status == http.StatusConflict && bad.Rep.Code == "empty_history" && before.Operations == after.Operations &&
			len(after.History) == 0 && before.Undos == after.Undos && !after.HasLast,
		"%d %s %q; operations %d→%d, undos %d→%d", bad.Rep.Status, bad.Rep.Code, bad.Rep.Error, before.Operations, after.Operations, before.Undos, after.Undos)

	// The stateless server, asked the same.
	refused := 0
	for _, s := range []struct{ method, path string }{{"GET", "/history"}, {"POST", "/undo"}, {"GET", "/stats"}} {
		p := sl.t.do(ctx, sl.c, "ask a stateless server for "+s.path, s.method, s.path, nil)
		if p.Err != nil {
			return p.Err
		}
		sl.t.note("remembers nothing")
		if p.Rep.Status == http.StatusNotFound && p.Rep.Code == "stateless" {
			refused++
		}
	}
	env.Check("the stateless server cannot offer history, undo or stats", refused == 3, "%d of 3 refused with 404 stateless", refused)

	for _, sd := range sides {
		sd.c.Close()
		sd.run.Close()
	}
	pkts, err := cp.Stop()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	for _, sd := range sides {
		sd.t.annotate(env, pkts)
	}
	env.Metric("stateful.features_count", 3)
	env.Metric("stateless.features_count", 0)
	env.Metric("stateful.history_len", float64(len(h.History)))
	recordEvidence(rowFeatures, Stateless, "none: /history, /undo, /stats → 404 (%d of 3)", refused)
	recordEvidence(rowFeatures, Stateful, "history (%d), undo, stats (most used: %s)", len(h.History), s.MostUsedOp)
	return nil
}
