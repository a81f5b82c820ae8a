package httpexp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// http/features: history, undo and stats on a stateful and a store-backed
// session, and the stateless server asked the same.

func runFeatures(env *lab.Env) error {
	rig := setUp(env)
	sides, err := startFeatureSides(rig)
	if err != nil {
		return err
	}
	cp, err := rig.capture()
	if err != nil {
		return err
	}
	sf, sb, sl := sides[0], sides[1], sides[2]
	var measured []featureResult
	for _, sd := range []*featureSide{sf, sb} {
		fr, err := sd.play(env)
		if err != nil {
			return err
		}
		measured = append(measured, fr)
	}
	refused, err := askStateless(env, sl)
	if err != nil {
		return err
	}
	pkts, err := stopComplete(env, cp, closeFeatureSides(sides))
	if err != nil {
		return err
	}
	for _, sd := range sides {
		sd.t.annotate(env, pkts)
	}
	recordFeatures(env, measured, refused)
	return nil
}

// featureSide is one server of the experiment with its client and
// transcript, and the session the client holds there.
type featureSide struct {
	mode  httpstate.Mode
	srv   *httpstate.Server
	run   *httpstate.Running
	c     *httpstate.Client
	t     *transcript
	token string
}

// startFeatureSides starts a stateful, a store-backed (SQLite) and a
// stateless server, in that order.
func startFeatureSides(rig *rig) ([]*featureSide, error) {
	sqlite, err := rig.sqlite()
	if err != nil {
		return nil, err
	}
	var sides []*featureSide
	for _, m := range []httpstate.Mode{httpstate.Stateful, httpstate.StoreBacked, httpstate.Stateless} {
		srv, run, err := rig.server(m, sqlite)
		if err != nil {
			return nil, err
		}
		c := httpstate.NewClient(run.URL(), true)
		rig.env.Cleanup(c.Close)
		sides = append(sides, &featureSide{mode: m, srv: srv, run: run, c: c, t: &transcript{name: string(m) + " server", addr: run.Addr}})
	}
	return sides, nil
}

// closeFeatureSides closes the clients and servers, so their FIN exchanges
// are in the capture, and returns what the servers counted.
func closeFeatureSides(sides []*featureSide) *wanted {
	want := newWanted("the servers' request counters")
	for _, sd := range sides {
		sd.c.Close()
		sd.run.Close()
		want.add(sd.t.name, sd.run.Addr, sd.run.Answered())
	}
	return want
}

// askStateless asks the stateless server for history, undo and stats, and
// returns how many it refused.
func askStateless(env *lab.Env, sl *featureSide) (int, error) {
	refused := 0
	for _, s := range []struct{ method, path string }{{"GET", "/history"}, {"POST", "/undo"}, {"GET", "/stats"}} {
		p := sl.t.do(env.Ctx, sl.c, "ask a stateless server for "+s.path, s.method, s.path, nil)
		if p.Err != nil {
			return 0, p.Err
		}
		sl.t.note("keeps no session (%d %s)", p.Rep.Status, p.Rep.Code)
		if p.Rep.Status == http.StatusNotFound && p.Rep.Code == "stateless" {
			refused++
		}
	}
	env.Check("the stateless server cannot offer history, undo or stats", refused == 3, "%d of 3 refused with 404 stateless", refused)
	return refused, nil
}

// recordFeatures records the metrics and the table's "features" row.
func recordFeatures(env *lab.Env, measured []featureResult, refused int) {
	for _, fr := range measured {
		env.Metric(fr.key+".features_count", float64(fr.working()))
		env.Metric(fr.key+".history_len", float64(fr.historyLen))
		recordEvidence(env, rowFeatures, fr.mode, "%s", fr.cell())
	}
	env.Metric("stateless.features_count", float64(3-refused))
	if refused == 3 {
		recordEvidence(env, rowFeatures, httpstate.Stateless, "none: /history, /undo and /stats all refused (404 stateless)")
	} else {
		recordEvidence(env, rowFeatures, httpstate.Stateless, "%d of /history, /undo, /stats refused; %d answered", refused, 3-refused)
	}
}

// featureResult is what the feature script measured on one server.
type featureResult struct {
	mode                  httpstate.Mode
	key                   string // metric prefix
	historyOK, statsOK    bool
	undoOK, emptyUndoOK   bool
	historyLen, ops       int
	addCount              int // add in the stats' op counts
	mostUsed              httpstate.Op
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
	if fr.mode == httpstate.StoreBacked {
		where = "in SQLite"
	}
	return strings.Join(parts, ", ") + "; kept " + where
}

// state reads the client's session back from the server.
func (sd *featureSide) state(env *lab.Env) (httpstate.SessionState, bool) {
	st, ok, err := sd.srv.Session(env.Ctx, sd.token)
	return st, ok && err == nil
}

// note takes the session cookie a step set, reads the session back and
// records it as the step's server state (or that there was none).
func (sd *featureSide) note(env *lab.Env, p *played, describe func(httpstate.SessionState) string) httpstate.SessionState {
	if p.Rep.Cookie != "" {
		sd.token = p.Rep.Cookie
	}
	st, ok := sd.state(env)
	if !ok {
		sd.t.note("no session %s", short(sd.token))
	} else {
		sd.t.note("%s", describe(st))
	}
	return st
}

// play runs a workflow and then the features on a stateful or store-backed
// server, checking each.
func (sd *featureSide) play(env *lab.Env) (featureResult, error) {
	history, stats, undo, err := sd.playWorkflow(env)
	if err != nil {
		return featureResult{mode: sd.mode}, err
	}
	afterUndo, _ := sd.state(env)
	fr := judgeFeatures(sd.mode, history, stats, undo, afterUndo)
	pre := string(sd.mode) + ": "
	env.Check(pre+"history lists the session's 4 computations in order", fr.historyOK,
		"GET /history: %d entries %s", fr.historyLen, trimBody(history.Rep.Body))
	env.Check(pre+"stats count operations and name the most used op", fr.statsOK,
		"GET /stats: operations=%d most_used_op=%s (add ×%d)", fr.ops, fr.mostUsed, fr.addCount)
	env.Check(pre+"undo restores the previous result", fr.undoOK,
		"POST /undo: %d result=%g; server last_result=%g", undo.Rep.Status, undo.Rep.Result, fr.undoAfter)
	if err := sd.playEmptyUndo(env, &fr); err != nil {
		return fr, err
	}
	return fr, nil
}

// playWorkflow starts a session, computes ((10 + 5) × 2) − 3 + 1, reads
// the history and stats and undoes the + 1.
func (sd *featureSide) playWorkflow(env *lab.Env) (history, stats, undo *played, err error) {
	p := sd.t.do(env.Ctx, sd.c, "start session", "POST", "/session", nil)
	if p.Err != nil {
		return nil, nil, nil, p.Err
	}
	sd.note(env, p, func(st httpstate.SessionState) string {
		return fmt.Sprintf("session %s: has_last=%t history=%d", short(sd.token), st.HasLast, len(st.History))
	})
	for _, s := range []struct {
		label, method, path string
		body                any
	}{
		{"10 + 5", "POST", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}},
		{"× 2", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Multiply, B: num(2)}},
		{"− 3", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Subtract, B: num(3)}},
		{"+ 1", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Add, B: num(1)}},
		{"history", "GET", "/history", nil},
		{"stats", "GET", "/stats", nil},
		{"undo + 1", "POST", "/undo", nil},
	} {
		p := sd.t.do(env.Ctx, sd.c, s.label, s.method, s.path, s.body)
		if p.Err != nil {
			return nil, nil, nil, p.Err
		}
		sd.note(env, p, func(st httpstate.SessionState) string {
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
	return history, stats, undo, nil
}

// judgeFeatures judges the replies to GET /history, GET /stats and POST
// /undo after ((10 + 5) × 2) − 3 + 1, and the session after the undo.
func judgeFeatures(mode httpstate.Mode, history, stats, undo *played, afterUndo httpstate.SessionState) featureResult {
	fr := featureResult{mode: mode, key: string(mode)}
	var h struct{ History []httpstate.HistoryEntry }
	_ = json.Unmarshal(history.Rep.Body, &h)
	fr.historyLen = len(h.History)
	fr.historyOK = len(h.History) == 4 && h.History[0].Op == httpstate.Add && h.History[1].Op == httpstate.Multiply &&
		h.History[2].Op == httpstate.Subtract && h.History[3].Result == 28
	var s httpstate.Stats
	_ = json.Unmarshal(stats.Rep.Body, &s)
	fr.ops, fr.mostUsed, fr.addCount = s.Operations, s.MostUsedOp, s.OpCounts[httpstate.Add]
	fr.statsOK = s.Operations == 4 && s.MostUsedOp == httpstate.Add && s.OpCounts[httpstate.Add] == 2
	fr.undoStatus, fr.undoResult, fr.undoAfter = undo.Rep.Status, undo.Rep.Result, afterUndo.LastResult
	fr.undoOK = undo.Rep.Status == 200 && undo.Rep.Result == 27 && fr.undoAfter == 27
	return fr
}

// playEmptyUndo undoes to the bottom, then once more: a 409 that changes
// nothing.
func (sd *featureSide) playEmptyUndo(env *lab.Env, fr *featureResult) error {
	for i := 0; i < 3; i++ {
		p := sd.t.do(env.Ctx, sd.c, fmt.Sprintf("undo %d of 3", i+1), "POST", "/undo", nil)
		if p.Err != nil {
			return p.Err
		}
		sd.note(env, p, func(st httpstate.SessionState) string {
			return fmt.Sprintf("has_last=%t history=%d", st.HasLast, len(st.History))
		})
	}
	before, _ := sd.state(env)
	bad := sd.t.do(env.Ctx, sd.c, "undo with empty history", "POST", "/undo", nil)
	if bad.Err != nil {
		return bad.Err
	}
	after := sd.note(env, bad, func(st httpstate.SessionState) string {
		return fmt.Sprintf("history=%d operations=%d undos=%d", len(st.History), st.Operations, st.Undos)
	})
	fr.emptyUndoStatus = bad.Rep.Status
	fr.emptyUndoOK = bad.Rep.Status == http.StatusConflict && bad.Rep.Code == "empty_history" && before.Operations == after.Operations &&
		len(after.History) == 0 && before.Undos == after.Undos && !after.HasLast
	env.Check(string(sd.mode)+": undo with an empty history is a 409 and leaves the session as it was", fr.emptyUndoOK,
		"%d %s %q; operations %d→%d, undos %d→%d", bad.Rep.Status, bad.Rep.Code, bad.Rep.Error, before.Operations, after.Operations, before.Undos, after.Undos)
	return nil
}
