package httpexp

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/statelab/statelab/httpstate"
)

// The plays of http/signed-token, in order: the workflow through the
// balancer with every backend killed in the middle, the refused tokens,
// logging out without and with a denylist, and the same workflow on the
// stateful server for the bytes.

// tokenScript is the workflow both sessions play: ((10 + 5) × 2) − 3,
// six operations more (the token grows with each), history and stats.
// The token backends are killed after the third step.
var tokenScript = []struct {
	label, method, path string
	op                  httpstate.Op
	a                   *float64 // nil: use_last
	b                   float64
}{
	{label: "start session", method: "POST", path: "/session"},
	{label: "10 + 5", method: "POST", path: "/calculate", op: httpstate.Add, a: num(10), b: 5},
	{label: "× 2", method: "POST", path: "/use_last", op: httpstate.Multiply, b: 2},
	{label: "− 3", method: "POST", path: "/use_last", op: httpstate.Subtract, b: 3},
	{label: "history", method: "GET", path: "/history"},
	{label: "+ 1", method: "POST", path: "/use_last", op: httpstate.Add, b: 1},
	{label: "× 3", method: "POST", path: "/use_last", op: httpstate.Multiply, b: 3},
	{label: "− 4", method: "POST", path: "/use_last", op: httpstate.Subtract, b: 4},
	{label: "÷ 8", method: "POST", path: "/use_last", op: httpstate.Divide, b: 8},
	{label: "+ 2.5", method: "POST", path: "/use_last", op: httpstate.Add, b: 2.5},
	{label: "× 2 again", method: "POST", path: "/use_last", op: httpstate.Multiply, b: 2},
	{label: "stats", method: "GET", path: "/stats"},
	{label: "state", method: "GET", path: "/state"},
}

// tokenCrashAfter is how many script steps run before every token backend
// is killed.
const tokenCrashAfter = 3

// do plays a step through the balancer and names the backend that served
// it, by the balancer's per-backend counters.
func (x *tokenExp) do(c *httpstate.Client, label, method, path string, body any) *played {
	before := x.lb.Served()
	p := x.t.do(x.env.Ctx, c, label, method, path, body)
	for name, n := range x.lb.Served() {
		if n > before[name] {
			p.Backend = name
		}
	}
	return p
}

// noteServed notes a step a backend answered: it keeps nothing, the
// client holds the token.
func (x *tokenExp) noteServed(p *played, c *httpstate.Client) {
	tok, _ := cookies(c)
	x.t.note("%s served it (%s) and keeps nothing; the client holds a %s", p.Backend, replyNote(p), x.describe(tok))
}

// playWorkflow plays the script through the balancer, killing every
// backend with SIGKILL (and restarting it on its address) after the
// third step.
func (x *tokenExp) playWorkflow() error {
	var last float64
	for i, s := range tokenScript {
		if i == tokenCrashAfter {
			if err := x.crashBackends(); err != nil {
				return err
			}
			x.crashStep = len(x.t.steps)
		}
		var body any
		want, a := 0.0, 0.0
		if s.op != "" {
			a = last
			if s.a != nil {
				a = *s.a
			}
			body = httpstate.CalcRequest{Op: s.op, A: s.a, B: num(s.b)}
			var err error
			if want, err = httpstate.Apply(s.op, a, s.b); err != nil {
				return err
			}
		}
		p := x.do(x.cl, s.label, s.method, s.path, body)
		if err := mustAnswer(p); err != nil {
			return fmt.Errorf("token workflow: %w", err)
		}
		x.noteServed(p, x.cl)
		x.tokSteps[s.label] = len(x.t.steps) - 1
		if s.op != "" {
			x.ops = append(x.ops, tokenOp{step: len(x.t.steps) - 1, op: s.op, a: a, b: s.b, want: want, got: p.Rep.Result})
			last = p.Rep.Result
		}
	}
	return nil
}

// crashBackends kills every token backend with SIGKILL and starts a new
// process on each one's address, with the same secret.
func (x *tokenExp) crashBackends() error {
	var old, fresh []int
	for i, ch := range x.backends {
		killed, err := ch.kill()
		if err != nil {
			return err
		}
		if killed {
			x.killed = append(x.killed, ch.pid())
		}
		again, err := x.rig.child(x.spec(ch.addr.String(), false))
		if err != nil {
			return fmt.Errorf("restarting token backend %d on %s: %w", i+1, ch.addr, err)
		}
		if again.addr != ch.addr {
			return fmt.Errorf("token backend %d restarted on %s, not %s", i+1, again.addr, ch.addr)
		}
		old, fresh = append(old, ch.pid()), append(fresh, again.pid())
		x.backends[i] = again
	}
	x.t.event("kill -9 every token backend (pids %v); restarted as pids %v on the same addresses, with the same secret and nothing else", old, fresh)
	return nil
}

// refusal is one bad token sent, and what came of it.
type refusal struct {
	name, code    string // the case, and the code it must get
	step          int    // the bad request, in x.t
	check         int    // the GET /state with the good token after it
	status        int
	gotCode       string
	last          float64 // last_result after, by the good token
	history       int
	lastBefore    float64
	historyBefore int
}

// playRefusals sends a tampered, a forged, an expired and a transplanted
// token, each followed by the good token's GET /state.
func (x *tokenExp) playRefusals() error {
	good, sid := cookies(x.cl)
	ts, err := x.codec.Verify(good)
	if err != nil {
		return fmt.Errorf("the session's token: %w", err)
	}
	// A second client's session, whose token is transplanted.
	for _, s := range tokenScript[:2] {
		var body any
		if s.op != "" {
			body = httpstate.CalcRequest{Op: s.op, A: s.a, B: num(s.b)}
		}
		p := x.do(x.cl2, "second client: "+s.label, s.method, s.path, body)
		if err := mustAnswer(p); err != nil {
			return err
		}
		x.noteServed(p, x.cl2)
	}
	other, _ := cookies(x.cl2)
	tampered, err := tamper(good, ts.State.LastResult)
	if err != nil {
		return err
	}
	rich := ts.State
	rich.LastResult = 1000
	forged, err := x.forger.Issue(sid, rich)
	if err != nil {
		return err
	}
	past, err := httpstate.NewTokenCodec(x.key, tokenLifetime, func() time.Time { return time.Now().Add(-tokenLifetime - time.Minute) })
	if err != nil {
		return err
	}
	expired, err := past.Issue(sid, ts.State)
	if err != nil {
		return err
	}
	for _, c := range []struct{ name, token, code string }{
		{"tampered (last_result changed to 1000 after signing)", tampered, "token_signature"},
		{"forged (signed with another key)", forged, "token_signature"},
		{"expired (right key, exp 1 min ago)", expired, "token_expired"},
		{"transplanted (the second client's token with this sid)", other, "token_transplanted"},
	} {
		r := refusal{name: c.name, code: c.code, lastBefore: ts.State.LastResult, historyBefore: len(ts.State.History)}
		present(x.cl, c.token, sid)
		p := x.do(x.cl, c.name+": + 1", "POST", "/use_last", httpstate.CalcRequest{Op: httpstate.Add, B: num(1)})
		if p.Err != nil {
			return p.Err
		}
		r.step, r.status, r.gotCode = len(x.t.steps)-1, p.Rep.Status, p.Rep.Code
		x.t.note("%s refused it: %s; no new token, the client's good one is as it was", p.Backend, replyNote(p))
		present(x.cl, good, sid)
		q := x.do(x.cl, "state by the good token after the "+strings.Fields(c.name)[0]+" one", "GET", "/state", nil)
		if err := mustAnswer(q); err != nil {
			return err
		}
		x.noteServed(q, x.cl)
		var st httpstate.SessionState
		_ = json.Unmarshal(q.Rep.Body, &st)
		r.check, r.last, r.history = len(x.t.steps)-1, st.LastResult, len(st.History)
		x.refusals = append(x.refusals, r)
	}
	return nil
}

// tamper changes a token's last_result in its payload and keeps its
// signature: the change a client might make to its own state.
func tamper(token string, last float64) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("tamper: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	from := []byte(fmt.Sprintf(`"last_result":%s`, jsonNum(last)))
	if !bytes.Contains(payload, from) {
		return "", fmt.Errorf("tamper: no %s in %s", from, payload)
	}
	payload = bytes.Replace(payload, from, []byte(`"last_result":1000`), 1)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2], nil
}

func jsonNum(v float64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// logoutResult is what logging out without a denylist did.
type logoutResult struct {
	step, replay   int // in x.t
	status         int
	last           float64
	jarCleared     bool
	expiresIn      time.Duration
	replayAccepted bool
}

// playLogout logs the session out through the balancer, then replays the
// token it held.
func (x *tokenExp) playLogout() error {
	good, sid := cookies(x.cl)
	ts, err := x.codec.Verify(good)
	if err != nil {
		return err
	}
	p := x.do(x.cl, "log out", "POST", "/logout", nil)
	if err := mustAnswer(p); err != nil {
		return err
	}
	left, _ := cookies(x.cl)
	x.logout.step, x.logout.jarCleared = len(x.t.steps)-1, left == ""
	x.t.note("%s served it (%s), keeps nothing and so revokes nothing; the client's jar dropped its token", p.Backend, replyNote(p))
	present(x.cl, good, sid)
	q := x.do(x.cl, "replay the logged-out token", "GET", "/state", nil)
	if q.Err != nil {
		return q.Err
	}
	x.logout.replay, x.logout.status = len(x.t.steps)-1, q.Rep.Status
	var st httpstate.SessionState
	_ = json.Unmarshal(q.Rep.Body, &st)
	x.logout.last, x.logout.replayAccepted = st.LastResult, q.Rep.Status == http.StatusOK
	x.logout.expiresIn = time.Until(ts.Expires).Round(time.Second)
	x.t.note("%s accepted it (%s): the token is good until its exp, %s from now", q.Backend, replyNote(q), x.logout.expiresIn)
	return nil
}

// denyResult is what the denylist backend did.
type denyResult struct {
	refused, afterRestart int // statuses of the replays
	refusedCode           string
	killed                bool
}

// playDenylist logs a session out on the backend with a denylist, replays
// the token (refused), kills the backend and replays it again.
func (x *tokenExp) playDenylist() error {
	ctx := x.env.Ctx
	for _, s := range tokenScript[:2] {
		var body any
		if s.op != "" {
			body = httpstate.CalcRequest{Op: s.op, A: s.a, B: num(s.b)}
		}
		p := x.dt.do(ctx, x.dcl, s.label, s.method, s.path, body)
		if err := mustAnswer(p); err != nil {
			return fmt.Errorf("denylist backend: %w", err)
		}
		tok, _ := cookies(x.dcl)
		x.dt.note("keeps nothing for this session (%s); the client holds a %s", replyNote(p), x.describe(tok))
	}
	good, sid := cookies(x.dcl)
	p := x.dt.do(ctx, x.dcl, "log out", "POST", "/logout", nil)
	if err := mustAnswer(p); err != nil {
		return err
	}
	x.dt.note("keeps session %s on its denylist until its last token expires: state per client again (%s)", short(sid), replyNote(p))
	present(x.dcl, good, sid)
	q := x.dt.do(ctx, x.dcl, "replay the logged-out token", "GET", "/state", nil)
	if q.Err != nil {
		return q.Err
	}
	x.denied.refused, x.denied.refusedCode = q.Rep.Status, q.Rep.Code
	x.dt.note("refused it from its denylist (%s)", replyNote(q))
	killed, err := x.deny.kill()
	if err != nil {
		return err
	}
	x.denied.killed = killed
	x.dcl.Close()
	again, err := x.rig.child(x.spec(x.deny.addr.String(), true))
	if err != nil {
		return err
	}
	x.dt.event("kill -9 pid %d (its denylist in memory); restarted as pid %d on %s with the same secret", x.deny.pid(), again.pid(), again.addr)
	x.deny = again
	present(x.dcl, good, sid)
	r := x.dt.do(ctx, x.dcl, "replay the logged-out token after the restart", "GET", "/state", nil)
	if r.Err != nil {
		return r.Err
	}
	x.denied.afterRestart = r.Rep.Status
	x.dt.note("a new process with an empty denylist: %s", replyNote(r))
	return nil
}

// playCookieID plays the script on the stateful server: the session in
// its memory, an id in the cookie.
func (x *tokenExp) playCookieID() error {
	for _, s := range tokenScript {
		var body any
		if s.op != "" {
			body = httpstate.CalcRequest{Op: s.op, A: s.a, B: num(s.b)}
		}
		p := x.sf.do(x.env.Ctx, x.sfCl, s.label, s.method, s.path, body)
		if err := mustAnswer(p); err != nil {
			return fmt.Errorf("stateful server: %w", err)
		}
		x.sfSteps[s.label] = len(x.sf.steps) - 1
		x.sf.note("keeps the session in memory (%s); the client holds the cookie id %s", replyNote(p), short(sessionOf(x.sfCl, x.sfCl.Base)))
	}
	return nil
}
