package httpstate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "http/mechanisms",
		Summary: "the four ways to add state to stateless HTTP: cookie, URL rewriting, hidden form field, server-side session data",
		Shows: "The same session token rides in a Cookie header, in the URL (?session=), or in a hidden form field, each " +
			"visible in the capture; behind all three the state itself is server-side session data the request never " +
			"carries. As the last http experiment it ends with the stateless-vs-stateful table, filled from this run.",
		Run: runMechanisms,
	})
}

type mechanism struct {
	name  string
	first int // index of its first step in the transcript
	n     int
	token string
}

func runMechanisms(env *lab.Env) error {
	startEvidence(env)
	srv, run, _, err := labServer(env, Stateful, "")
	if err != nil {
		return err
	}
	cp, err := env.Capture(captureOpts(run.Addr.Port()))
	if err != nil {
		return err
	}
	ctx := env.Ctx
	t := &transcript{name: "stateful server", addr: run.Addr}
	var mechs []*mechanism
	begin := func(name string) *mechanism {
		m := &mechanism{name: name, first: len(t.steps)}
		mechs = append(mechs, m)
		return m
	}
	end := func(m *mechanism) { m.n = len(t.steps) - m.first }
	fail := func(p *played) error {
		if p.Err != nil {
			return p.Err
		}
		if p.Rep.Status >= 300 {
			return fmt.Errorf("%s: %d %s", p.Label, p.Rep.Status, p.Rep.Error)
		}
		return nil
	}
	results := map[string]float64{}
	// noteSession records the session behind token after a step, as the
	// server reported it.
	noteSession := func(token string) {
		st, ok, err := srv.Session(ctx, token)
		switch {
		case token == "" || err != nil || !ok:
			t.note("no session")
		case !st.HasLast:
			t.note("session %s: empty", short(token))
		default:
			t.note("session %s: last_result=%g", short(token), st.LastResult)
		}
	}

	// 1. Cookie.
	m := begin("cookie")
	jar := NewClient(run.URL(), true)
	defer jar.Close()
	for _, s := range []struct {
		label, path string
		body        any
	}{{"cookie: start session", "/session", nil}, {"cookie: 10 + 5", "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)}},
		{"cookie: × 2", "/use_last", CalcRequest{Op: Multiply, B: num(2)}}} {
		p := t.do(ctx, jar, s.label, "POST", s.path, s.body)
		if err := fail(p); err != nil {
			return err
		}
		if p.Rep.Cookie != "" {
			m.token = p.Rep.Cookie
		}
		results[m.name] = p.Rep.Result
		noteSession(m.token)
	}
	end(m)

	// 2. URL rewriting: the server writes the token into the links it gives.
	m = begin("url")
	bare := NewClient(run.URL(), false)
	defer bare.Close()
	p := t.do(ctx, bare, "url: start session", "POST", "/session?via=url", nil)
	if err := fail(p); err != nil {
		return err
	}
	var links map[string]string
	_ = json.Unmarshal(p.Rep.Body, &links)
	m.token = links["token"]
	noteSession(m.token)
	for _, s := range []struct {
		label, path string
		body        any
	}{{"url: 10 + 5", links["calculate"], CalcRequest{Op: Add, A: num(10), B: num(5)}},
		{"url: × 2", links["use_last"], CalcRequest{Op: Multiply, B: num(2)}}} {
		if s.path == "" {
			return fmt.Errorf("url rewriting: the server gave no links: %s", p.Rep.Body)
		}
		p := t.do(ctx, bare, s.label, "POST", s.path, s.body)
		if err := fail(p); err != nil {
			return err
		}
		results[m.name] = p.Rep.Result
		noteSession(m.token)
	}
	end(m)

	// 3. Hidden form field.
	m = begin("form")
	p = t.do(ctx, bare, "form: fetch the page", "GET", "/form", nil)
	if err := fail(p); err != nil {
		return err
	}
	m.token = formToken(p.Rep.Body)
	noteSession(m.token)
	for _, s := range []struct {
		label string
		form  url.Values
	}{{"form: 10 + 5", url.Values{"session": {m.token}, "a": {"10"}, "op": {"add"}, "b": {"5"}}},
		{"form: × 2 (a left empty)", url.Values{"session": {m.token}, "op": {"multiply"}, "b": {"2"}}}} {
		p := t.do(ctx, bare, s.label, "POST", "/form", s.form)
		if err := fail(p); err != nil {
			return err
		}
		results[m.name], _ = formResult(p.Rep.Body)
		noteSession(m.token)
	}
	end(m)

	// 4. Server-side session data: what the token stands for.
	m = begin("server-side")
	m.token = mechs[0].token
	p = t.do(ctx, jar, "server-side: read the session's state", "GET", "/state", nil)
	if err := fail(p); err != nil {
		return err
	}
	stored, _, _ := findSession(ctx, srv.sessions.Store, m.token)
	t.note("session %s: %d bytes in the server's store", short(m.token), len(stored))
	end(m)

	run.Close()
	jar.Close()
	bare.Close()
	want := newWanted("the server's request counter")
	want.add(t.name, run.Addr, run.Answered())
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	exs := t.annotate(env, pkts)
	if len(exs) != len(t.steps) {
		return nil // annotate has failed a check
	}
	for _, m := range mechs {
		cookie, inURL, inBody := 0, 0, 0
		for _, ex := range exs[m.first+1 : m.first+m.n] { // after the token was issued
			if ck, err := ex.Request.Cookie(SessionCookie); err == nil && ck.Value == m.token {
				cookie++
			}
			if ex.Request.URL.Query().Get(SessionParam) == m.token {
				inURL++
			}
			if strings.Contains(string(ex.ReqBody), url.QueryEscape(m.token)) {
				inBody++
			}
		}
		later := m.n - 1
		env.Metric(m.name+".token_in_cookie_count", float64(cookie))
		env.Metric(m.name+".token_in_url_count", float64(inURL))
		env.Metric(m.name+".token_in_body_count", float64(inBody))
		where := fmt.Sprintf("after the token was issued, %d requests: token in Cookie %d, in URL %d, in body %d", later, cookie, inURL, inBody)
		switch m.name {
		case "cookie":
			env.Check("cookie: the token travels in the Cookie header only", len(m.token) >= 43 && cookie == later && inURL == 0 && inBody == 0, "%s", where)
		case "url":
			env.Check("URL rewriting: the token travels in the URL only", len(m.token) >= 43 && inURL == later && cookie == 0 && inBody == 0, "%s", where)
		case "form":
			env.Check("hidden form field: the token travels in the form body only", len(m.token) >= 43 && inBody == later && cookie == 0 && inURL == 0, "%s", where)
		}
		if m.name != "server-side" {
			env.Check(m.name+": the session computed ((10 + 5) × 2) = 30", results[m.name] == 30, "result %g", results[m.name])
		}
	}
	ex := exs[mechs[3].first]
	var st SessionState
	_ = json.Unmarshal(ex.RespBody, &st)
	env.Check("server-side session data: the request carries only the token; the state is on the server",
		len(ex.ReqBody) == 0 && len(Numbers("", ex.ReqBody)) == 0 && st.LastResult == 30 && len(st.History) == 2 && len(stored) > len(m.token),
		"GET /state sent %d request bytes and no numbers; the server answered last_result=%g with %d history entries from %d stored bytes behind a %d-char token",
		ex.ReqBytes, st.LastResult, len(st.History), len(stored), len(m.token))
	env.Metric("server-side.stored_bytes", float64(len(stored)))
	env.Metric("server-side.token_chars", float64(len(m.token)))

	filled := evidenceTable(env)
	env.Metric("evidence.cells_measured_count", float64(filled))
	if filled < len(evidenceRows)*len(evidenceCols) {
		env.Note("the comparison table has %d of %d cells measured: run `statelab run http` to fill them all", filled, len(evidenceRows)*len(evidenceCols))
	}
	return nil
}
