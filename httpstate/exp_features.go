package httpstate

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "http/features",
		Summary: "history, undo and stats on a stateful and a store-backed session; the stateless server cannot offer them",
		Shows: "A stateful session keeps history, undo and stats (operations, most used op) because the server " +
			"remembers, and a store-backed one (SQLite) keeps the same in its store; undo with an empty history is a 409 " +
			"that changes nothing; the stateless server answers the same requests with 404 \"stateless\".",
		Run: runFeatures,
	})
}

func runFeatures(env *lab.Env) error {
	startEvidence(env)
	dir, err := os.MkdirTemp("", "statelab-features-")
	if err != nil {
		return err
	}
	env.Cleanup(func() { os.RemoveAll(dir) })
	var sides []*featureSide
	var ports []uint16
	for _, m := range []Mode{Stateful, StoreBacked, Stateless} {
		srv, run, _, err := labServer(env, m, "sqlite://"+filepath.Join(dir, "sessions.db"))
		if err != nil {
			return err
		}
		c := NewClient(run.URL(), true)
		env.Cleanup(c.Close)
		sides = append(sides, &featureSide{m, srv, run, c, &transcript{name: string(m) + " server", addr: run.Addr}})
		ports = append(ports, run.Addr.Port())
	}
	cp, err := env.Capture(captureOpts(ports...))
	if err != nil {
		return err
	}
	started("capture", 0)
	sf, sb, sl := sides[0], sides[1], sides[2]
	var measured []featureResult
	for _, sd := range []*featureSide{sf, sb} {
		fr, err := sd.play(env)
		if err != nil {
			return err
		}
		measured = append(measured, fr)
	}

	// The stateless server, asked the same.
	ctx := env.Ctx
	refused := 0
	for _, s := range []struct{ method, path string }{{"GET", "/history"}, {"POST", "/undo"}, {"GET", "/stats"}} {
		p := sl.t.do(ctx, sl.c, "ask a stateless server for "+s.path, s.method, s.path, nil)
		if p.Err != nil {
			return p.Err
		}
		sl.t.note("keeps no session (%d %s)", p.Rep.Status, p.Rep.Code)
		if p.Rep.Status == http.StatusNotFound && p.Rep.Code == "stateless" {
			refused++
		}
	}
	env.Check("the stateless server cannot offer history, undo or stats", refused == 3, "%d of 3 refused with 404 stateless", refused)

	want := newWanted("the servers' request counters")
	for _, sd := range sides {
		sd.c.Close()
		sd.run.Close()
		want.add(sd.t.name, sd.run.Addr, sd.run.Answered())
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	for _, sd := range sides {
		sd.t.annotate(env, pkts)
	}
	for _, fr := range measured {
		env.Metric(fr.key+".features_count", float64(fr.working()))
		env.Metric(fr.key+".history_len", float64(fr.historyLen))
		recordEvidence(env, rowFeatures, fr.mode, "%s", fr.cell())
	}
	env.Metric("stateless.features_count", float64(3-refused))
	if refused == 3 {
		recordEvidence(env, rowFeatures, Stateless, "none: /history, /undo and /stats all refused (404 stateless)")
	} else {
		recordEvidence(env, rowFeatures, Stateless, "%d of /history, /undo, /stats refused; %d answered", refused, 3-refused)
	}
	return nil
}

type featureSide struct {
	mode Mode
	srv  *Server
	run  *Running
	c    *Client
	t    *transcript
}

// featureResult is what the feature script measured on one server.
type featureResult struct {
	mode                  Mode
	key                   string // metric prefix
	historyOK, statsOK    bool
	undoOK, emptyUndoOK   bool
	historyLen, ops       int
	mostUsed              Op
	undoStatus            int
	undoResult, undoAfter float64
	emptyUndoStatus       int
}

func (fr featureResult) working() int {
	return b2i(fr.historyOK) + b2i(fr.undoOK && fr.emptyUndoOK) + b2i(fr.statsOK)
}

// cell words the table cell from what was measured.
func (fr featureResult) cell() string {
	var parts []string
	if fr.historyOK {
		parts = append(parts, fmt.Sprintf("history (%d entries, in order)", fr.historyLen))
	} else {
		parts = append(parts, fmt.Sprintf("history WRONG (%d entries)", fr.historyLen))
	}
	if fr.undoOK {
		parts = append(parts, fmt.Sprintf("undo (restored %g)", fr.undoAfter))
	} else {
		parts = append(parts, fmt.Sprintf("undo FAILED (%d, result %g, session %g)", fr.undoStatus, fr.undoResult, fr.undoAfter))
	}
	if fr.emptyUndoOK {
		parts = append(parts, "empty undo → 409, session unchanged")
	} else {
		parts = append(parts, fmt.Sprintf("empty undo → %d or session changed", fr.emptyUndoStatus))
	}
	if fr.statsOK {
		parts = append(parts, fmt.Sprintf("stats (%d operations, most used %s)", fr.ops, fr.mostUsed))
	} else {
		parts = append(parts, fmt.Sprintf("stats WRONG (%d operations, most used %q)", fr.ops, fr.mostUsed))
	}
	where := "in memory"
	if fr.mode == StoreBacked {
		where = "in SQLite"
	}
	return strings.Join(parts, ", ") + "; kept " + where
}

// play runs a workflow and then the features on a stateful or store-backed
// server, checking each.
func (sd *featureSide) play(env *lab.Env) (featureResult, error) {
	ctx, t := env.Ctx, sd.t
	fr := featureResult{mode: sd.mode, key: string(sd.mode)}
	if sd.mode == Stateful {
		fr.key = "stateful"
	}
	pre := string(sd.mode) + ": "
	token := ""
	// state reads the session back from the server after a step; note
	// records it as the step's server state, or that there was none.
	state := func() (SessionState, bool) {
		st, ok, err := sd.srv.Session(ctx, token)
		return st, ok && err == nil
	}
	note := func(p *played, describe func(SessionState) string) SessionState {
		if p.Rep.Cookie != "" {
			token = p.Rep.Cookie
		}
		st, ok := state()
		if !ok {
			t.note("no session %s", short(token))
		} else {
			t.note("%s", describe(st))
		}
		return st
	}
	p := t.do(ctx, sd.c, "start session", "POST", "/session", nil)
	if p.Err != nil {
		return fr, p.Err
	}
	note(p, func(st SessionState) string {
		return fmt.Sprintf("session %s: has_last=%t history=%d", short(token), st.HasLast, len(st.History))
	})
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
		p := t.do(ctx, sd.c, s.label, s.method, s.path, s.body)
		if p.Err != nil {
			return fr, p.Err
		}
		note(p, func(st SessionState) string {
			return fmt.Sprintf("last_result=%g history=%d ops=%d", st.LastResult, len(st.History), st.Operations)
		})
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
	fr.historyLen = len(h.History)
	fr.historyOK = len(h.History) == 4 &&
		h.History[0].Op == Add && h.History[1].Op == Multiply && h.History[2].Op == Subtract && h.History[3].Result == 28
	env.Check(pre+"history lists the session's 4 computations in order", fr.historyOK,
		"GET /history: %d entries %s", len(h.History), trimBody(history.Rep.Body))
	var s Stats
	_ = json.Unmarshal(stats.Rep.Body, &s)
	fr.ops, fr.mostUsed = s.Operations, s.MostUsedOp
	fr.statsOK = s.Operations == 4 && s.MostUsedOp == Add && s.OpCounts[Add] == 2
	env.Check(pre+"stats count operations and name the most used op", fr.statsOK,
		"GET /stats: operations=%d most_used_op=%s (add ×%d)", s.Operations, s.MostUsedOp, s.OpCounts[Add])
	afterUndo, _ := state()
	fr.undoStatus, fr.undoResult, fr.undoAfter = undo.Rep.Status, undo.Rep.Result, afterUndo.LastResult
	fr.undoOK = undo.Rep.Status == 200 && undo.Rep.Result == 27 && fr.undoAfter == 27
	env.Check(pre+"undo restores the previous result", fr.undoOK,
		"POST /undo: %d result=%g; server last_result=%g", undo.Rep.Status, undo.Rep.Result, fr.undoAfter)

	// Undo to the bottom, then once more: a 409 that changes nothing.
	for i := 0; i < 3; i++ {
		p := t.do(ctx, sd.c, fmt.Sprintf("undo %d of 3", i+1), "POST", "/undo", nil)
		if p.Err != nil {
			return fr, p.Err
		}
		note(p, func(st SessionState) string {
			return fmt.Sprintf("has_last=%t history=%d", st.HasLast, len(st.History))
		})
	}
	before, _ := state()
	bad := t.do(ctx, sd.c, "undo with empty history", "POST", "/undo", nil)
	if bad.Err != nil {
		return fr, bad.Err
	}
	after := note(bad, func(st SessionState) string {
		return fmt.Sprintf("history=%d operations=%d undos=%d", len(st.History), st.Operations, st.Undos)
	})
	fr.emptyUndoStatus = bad.Rep.Status
	fr.emptyUndoOK = bad.Rep.Status == http.StatusConflict && bad.Rep.Code == "empty_history" && before.Operations == after.Operations &&
		len(after.History) == 0 && before.Undos == after.Undos && !after.HasLast
	env.Check(pre+"undo with an empty history is a 409 and leaves the session as it was", fr.emptyUndoOK,
		"%d %s %q; operations %d→%d, undos %d→%d", bad.Rep.Status, bad.Rep.Code, bad.Rep.Error, before.Operations, after.Operations, before.Undos, after.Undos)
	return fr, nil
}
