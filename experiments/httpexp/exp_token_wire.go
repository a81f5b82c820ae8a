package httpexp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// What http/signed-token reads back from its capture: the backend legs,
// the verdicts, the token's size step by step, and the bytes against the
// cookie-id session.

// analyse comments the capture, checks and measures.
func (x *tokenExp) analyse(pkts []*capture.Packet) {
	env := x.env
	streams := capture.TCPStreams(pkts)
	front := x.t.annotate(env, pkts)
	if len(front) != len(x.t.steps) {
		return // annotate failed a check
	}
	x.annotateLegs(pkts, streams, front)
	dex := x.dt.annotate(env, pkts)
	sex := x.sf.annotate(env, pkts)
	if len(dex) != len(x.dt.steps) || len(sex) != len(x.sf.steps) {
		return
	}
	crashOK := x.checkWorkflow()
	balanced := x.checkBalancing(front)
	refused := x.checkRefusals(front)
	x.checkLogout(front)
	x.checkDenylist()
	growth := x.growth(front)
	cost := x.bytes(front, sex)
	x.record(crashOK, balanced, refused, growth, cost)
}

// annotateLegs reads the balancer↔backend legs and comments them.
func (x *tokenExp) annotateLegs(pkts []*capture.Packet, streams []*capture.Stream, front []*Exchange) {
	legs := make([]backendLeg, len(x.backends))
	for i, ch := range x.backends {
		legs[i] = backendLeg{name: x.lb.Names()[i], addr: ch.addr}
	}
	r := readBackendLegs(x.t, streams, front, legs)
	commentBackendPackets(pkts, x.t.name, legs, r.conns, "")
	x.env.Check("every request's backend leg is in the capture, at the backend that counted it", r.matched == r.served && len(r.bad) == 0,
		"%d of %d requests served by a backend: its leg captured inside the client's exchange, X-Backend agreeing%s", r.matched, r.served, problems(r.bad))
}

// checkWorkflow checks the crash and every operation against the final
// state. It reports whether the workflow came through whole.
func (x *tokenExp) checkWorkflow() bool {
	env := x.env
	env.Check("every token backend died of SIGKILL mid-workflow", len(x.killed) == tokenBackends,
		"%d of %d processes died of SIGKILL (pids %v), restarted on their addresses before step %d", len(x.killed), tokenBackends, x.killed, x.crashStep+1)
	var bad []string
	for _, o := range x.ops {
		if o.got != o.want {
			bad = append(bad, fmt.Sprintf("step %d: %g %s %g = %g, want %g", o.step+1, o.a, o.op.Symbol(), o.b, o.got, o.want))
		}
	}
	after := 0
	for _, o := range x.ops {
		if o.step >= x.crashStep {
			after++
		}
	}
	env.Check("every operation's result is right, before and after the crash", len(bad) == 0 && after > 0,
		"%d operations (%d after every backend was killed), each checked against the lab's own arithmetic%s", len(x.ops), after, problems(bad))
	var final httpstate.SessionState
	_ = json.Unmarshal(x.t.steps[x.tokSteps["state"]].Rep.Body, &final)
	bad = nil
	if len(final.History) != len(x.ops) {
		bad = append(bad, fmt.Sprintf("history of %d entries for %d operations", len(final.History), len(x.ops)))
	}
	for i := range min(len(final.History), len(x.ops)) {
		h, o := final.History[i], x.ops[i]
		if h.Op != o.op || h.A != o.a || h.B != o.b || h.Result != o.want {
			bad = append(bad, fmt.Sprintf("entry %d is %g %s %g = %g, step %d was %g %s %g = %g", i+1, h.A, h.Op.Symbol(), h.B, h.Result, o.step+1, o.a, o.op.Symbol(), o.b, o.want))
		}
	}
	last := x.ops[len(x.ops)-1].want
	ok := len(bad) == 0 && final.HasLast && final.LastResult == last && final.Operations == len(x.ops)
	env.Check("the final state holds every operation: the session survived the crash and the balancing", ok,
		"GET /state: last_result=%g (want %g), operations=%d, history of %d entries matching the %d operations played%s",
		final.LastResult, last, final.Operations, len(final.History), len(x.ops), problems(bad))
	env.Metric("token.operations_count", float64(len(x.ops)))
	env.Metric("token.operations_after_crash_count", float64(after))
	return ok && len(x.killed) == tokenBackends
}

// checkBalancing checks that round-robin spread the workflow over every
// backend with no stickiness: no backend twice in a row, no balancer
// cookie.
func (x *tokenExp) checkBalancing(front []*Exchange) bool {
	seq := make([]string, 0, len(tokenScript))
	twice, lbCookies := 0, 0
	for _, label := range scriptLabels() {
		p := x.t.steps[x.tokSteps[label]]
		if n := len(seq); n > 0 && seq[n-1] == p.Backend {
			twice++
		}
		seq = append(seq, p.Backend)
	}
	distinct := map[string]bool{}
	for _, b := range seq {
		distinct[b] = true
	}
	for _, ex := range front {
		for _, c := range ex.Response.Cookies() {
			if c.Name == httpstate.LBCookie {
				lbCookies++
			}
		}
	}
	ok := len(distinct) == tokenBackends && twice == 0 && lbCookies == 0
	x.env.Check("round-robin with no stickiness and no store: every backend served the session, never twice in a row", ok,
		"backends in step order %s; %d repeats; %d balancer cookies in the captured replies", strings.Join(seq, " "), twice, lbCookies)
	x.env.Metric("token.backends_serving_count", float64(len(distinct)))
	return ok
}

// scriptLabels are the script's step labels in order.
func scriptLabels() []string {
	out := make([]string, len(tokenScript))
	for i, s := range tokenScript {
		out[i] = s.label
	}
	return out
}

// checkRefusals checks each bad token: a 401 with its code, as JSON, no
// cookie set (in the capture), and the good token's state as it was.
func (x *tokenExp) checkRefusals(front []*Exchange) int {
	refused := 0
	for _, r := range x.refusals {
		setCookies := len(front[r.step].Response.Cookies())
		var body map[string]string
		_ = json.Unmarshal(front[r.step].RespBody, &body)
		ok := r.status == http.StatusUnauthorized && r.gotCode == r.code && body["error"] != "" && setCookies == 0 &&
			r.last == r.lastBefore && r.history == r.historyBefore
		if ok {
			refused++
		}
		x.env.Check(r.name+": refused with 401, the state unchanged", ok,
			"step %d: %d %s (want 401 %s), %d Set-Cookie in the captured reply; then the good token's state: last_result=%g with %d history entries (before: %g, %d)",
			r.step+1, r.status, r.gotCode, r.code, setCookies, r.last, r.history, r.lastBefore, r.historyBefore)
	}
	x.env.Metric("token.bad_tokens_refused_count", float64(refused))
	return refused
}

// checkLogout checks that logging out without a denylist revoked nothing.
func (x *tokenExp) checkLogout(front []*Exchange) {
	cleared := false
	for _, c := range front[x.logout.step].Response.Cookies() {
		if c.Name == httpstate.SessionCookie && c.MaxAge < 0 {
			cleared = true
		}
	}
	x.env.Check("without a denylist, a logged-out token replayed is accepted until it expires", cleared && x.logout.jarCleared && x.logout.replayAccepted && x.logout.expiresIn > 0,
		"logout's reply cleared the cookie: %t (the jar dropped it: %t); the old token replayed: %d last_result=%g, its exp %s away",
		cleared, x.logout.jarCleared, x.logout.status, x.logout.last, x.logout.expiresIn)
	x.env.Metric("token.replay_after_logout_accepted", float64(b2i(x.logout.replayAccepted)))
	x.env.Metric("token.replay_window_s", x.logout.expiresIn.Seconds())
}

// checkDenylist checks that a denylist refuses the replay, and that it is
// state: the restart lost it.
func (x *tokenExp) checkDenylist() {
	d := x.denied
	x.env.Check("a denylist refuses the logged-out token", d.refused == http.StatusUnauthorized && d.refusedCode == "token_revoked",
		"replay after logout: %d %s", d.refused, d.refusedCode)
	x.env.Check("the denylist is state again: kill -9 lost it and the replay was accepted", d.killed && d.afterRestart == http.StatusOK,
		"died of SIGKILL: %t; replay after the restart: %d", d.killed, d.afterRestart)
	x.env.Metric("token.denylist_lost_in_restart", float64(b2i(d.afterRestart == http.StatusOK)))
}

// growthRow is the token after one step of the script, from the capture.
type growthRow struct {
	label   string
	entries int
	bytes   int
}

// tokenGrowth is the token's size against its history.
type tokenGrowth struct {
	rows     []growthRow
	first    int     // bytes with no history
	perEntry float64 // mean bytes per history entry
}

// growth reads each token the session was issued from the captured
// Set-Cookie headers and tabulates its size against its history.
func (x *tokenExp) growth(front []*Exchange) tokenGrowth {
	var g tokenGrowth
	table := [][]string{{"after step", "history entries", "token bytes (Set-Cookie, captured)", "change"}}
	prev := 0
	for _, label := range scriptLabels() {
		n := x.tokSteps[label]
		tok := setCookie(front[n], httpstate.SessionCookie)
		if tok == "" {
			continue // a read: no new token
		}
		entries := -1
		if ts, err := x.codec.Verify(tok); err == nil {
			entries = len(ts.State.History)
		}
		row := growthRow{label: label, entries: entries, bytes: len(tok)}
		g.rows = append(g.rows, row)
		change := "—"
		if prev > 0 {
			change = fmt.Sprintf("%+d", len(tok)-prev)
		}
		prev = len(tok)
		table = append(table, []string{fmt.Sprintf("%d. %s", n+1, label), fmt.Sprint(entries), fmt.Sprint(len(tok)), change})
	}
	if len(g.rows) >= 2 {
		a, b := g.rows[0], g.rows[len(g.rows)-1]
		g.first = a.bytes
		if b.entries > a.entries {
			g.perEntry = float64(b.bytes-a.bytes) / float64(b.entries-a.entries)
		}
	}
	x.env.Table("the token grows with the history (every token the session was issued, from the capture)", table)
	x.env.Metric("token.initial_bytes", float64(g.first))
	x.env.Metric("token.bytes_per_history_entry", g.perEntry)
	x.env.Check("the token grows with the history", len(g.rows) > 2 && g.perEntry > 0,
		"%d tokens issued; %d bytes with no history, %.1f bytes more per history entry (cap %d bytes: the oldest entries go first)",
		len(g.rows), g.first, g.perEntry, httpstate.MaxTokenBytes)
	return g
}

// setCookie is the value a captured reply sets for the cookie name.
func setCookie(ex *Exchange, name string) string {
	if ex == nil || ex.Response == nil {
		return ""
	}
	for _, c := range ex.Response.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// requestCookie is the value of a captured request's cookie name.
func requestCookie(ex *Exchange, name string) string {
	if c, err := ex.Request.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// wireCost is what carrying the session cost on the wire.
type wireCost struct {
	requests                    int     // requests that carried a session, each kind
	tokenReq, idReq             float64 // mean request bytes
	tokenCarried, idCarried     float64 // mean session cookie bytes per request
	tokenReplyBytes, idRepBytes float64 // mean Set-Cookie value bytes per reply
}

// bytes compares, step by step, the requests of the token session with
// those of the cookie-id session, from the capture.
func (x *tokenExp) bytes(front, sex []*Exchange) wireCost {
	var c wireCost
	table := [][]string{{"step", "cookie-id request bytes", "token request bytes", "token bytes in the request", "token bytes in the reply"}}
	var tReq, iReq, tCar, iCar, tRep, iRep int
	for _, label := range scriptLabels()[1:] { // after the session started
		tx, ix := front[x.tokSteps[label]], sex[x.sfSteps[label]]
		tok, id := requestCookie(tx, httpstate.SessionCookie), requestCookie(ix, httpstate.SessionCookie)
		set := setCookie(tx, httpstate.SessionCookie)
		c.requests++
		tReq += tx.ReqBytes
		iReq += ix.ReqBytes
		tCar += len(tok)
		iCar += len(id)
		tRep += len(set)
		iRep += len(setCookie(ix, httpstate.SessionCookie))
		table = append(table, []string{label, fmt.Sprint(ix.ReqBytes), fmt.Sprint(tx.ReqBytes), fmt.Sprint(len(tok)), fmt.Sprint(len(set))})
	}
	if c.requests == 0 {
		return c
	}
	n := float64(c.requests)
	c.tokenReq, c.idReq = float64(tReq)/n, float64(iReq)/n
	c.tokenCarried, c.idCarried = float64(tCar)/n, float64(iCar)/n
	c.tokenReplyBytes, c.idRepBytes = float64(tRep)/n, float64(iRep)/n
	table = append(table, []string{"mean", fmt.Sprintf("%.0f", c.idReq), fmt.Sprintf("%.0f", c.tokenReq), fmt.Sprintf("%.0f", c.tokenCarried), fmt.Sprintf("%.0f", c.tokenReplyBytes)})
	x.env.Table("bytes per request: the same workflow with a cookie id (stateful server) and with the signed token, from the capture", table)
	x.env.Metric("token.request_bytes_mean", c.tokenReq)
	x.env.Metric("cookie_id.request_bytes_mean", c.idReq)
	x.env.Metric("token.carried_bytes_per_request", c.tokenCarried)
	x.env.Metric("cookie_id.carried_bytes_per_request", c.idCarried)
	x.env.Metric("token.reply_token_bytes_mean", c.tokenReplyBytes)
	x.env.Check("the token costs more bytes per request than a cookie id", c.tokenReq > c.idReq && c.tokenCarried > c.idCarried,
		"%d requests each: mean %.0f request bytes with the token against %.0f with the cookie id; the session cookie %.0f bytes against %.0f",
		c.requests, c.tokenReq, c.idReq, c.tokenCarried, c.idCarried)
	return c
}

// record fills the token's column of the comparison table, and the
// experiment's row of "who holds the state".
func (x *tokenExp) record(crashOK, balanced bool, refused int, g tokenGrowth, c wireCost) {
	env := x.env
	tok := httpstate.Token
	if crashOK {
		recordEvidence(env, rowCrash, tok, "nothing lost: all %d backends kill -9'd and restarted mid-workflow, %d operations right, history whole", tokenBackends, len(x.ops))
	} else {
		recordEvidence(env, rowCrash, tok, "the workflow did not come through the kill -9 of every backend whole (see http/signed-token)")
	}
	if balanced {
		recordEvidence(env, rowScale, tok, "round-robin over %d backends, no stickiness, no store: every backend served the session; one secret shared", tokenBackends)
	} else {
		recordEvidence(env, rowScale, tok, "round-robin over %d backends did not spread the session as expected (see http/signed-token)", tokenBackends)
	}
	recordEvidence(env, rowData, tok, "%.0f request bytes a request against %.0f with a cookie id: a %.0f-byte token each way", c.tokenReq, c.idReq, c.tokenCarried)
	recordEvidence(env, rowFeatures, tok, "history and stats from the token: %d entries, +%.0f bytes each, capped at %d bytes", len(x.ops), g.perEntry, httpstate.MaxTokenBytes)
	replay := "refused"
	if x.logout.replayAccepted {
		replay = "accepted"
	}
	recordEvidence(env, rowStoreFailure, tok, "no store to fail: the %d backends ran with none, the session rode in its token (%d operations whole)", tokenBackends, len(x.ops))
	recordEvidence(env, rowComplex, tok, "one secret for every backend; %d of 4 bad tokens refused; logout revokes nothing (replay %s) unless a denylist, which is state again", refused, replay)
	lost := "something (see the checks)"
	if crashOK {
		lost = fmt.Sprintf("nothing (measured: all %d backends kill -9'd mid-workflow; every operation right after it, the history of %d whole)",
			tokenBackends, len(x.ops))
	}
	env.Holding(lab.Holding{
		ServerKeeps:   "nothing per client: one secret for all backends",
		ClientCarries: fmt.Sprintf("a %d-byte signed token (grows %.0f bytes per history entry)", g.first, g.perEntry),
		RestartLoses:  lost,
		CarriedBytes:  int(c.tokenCarried + 0.5),
		CarriedPer:    "per request",
	})
	evidenceTable(env)
}
