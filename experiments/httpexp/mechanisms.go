package httpexp

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// http/mechanisms: the four ways to add state to stateless HTTP, and the
// comparison table of the run.

func runMechanisms(env *lab.Env) error {
	rig := setUp(env)
	srv, run, err := rig.server(httpstate.Stateful, "")
	if err != nil {
		return err
	}
	cp, err := rig.capture()
	if err != nil {
		return err
	}
	m := newMechanismsPlay(env, srv, run)
	defer m.close()
	for _, play := range []func() error{m.playCookie, m.playURL, m.playForm, m.playServerSide} {
		if err := play(); err != nil {
			return err
		}
	}
	run.Close()
	m.close()
	want := newWanted("the server's request counter")
	want.add(m.t.name, run.Addr, run.Answered())
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	exs := m.t.annotate(env, pkts)
	if len(exs) != len(m.t.steps) {
		return nil // annotate has failed a check
	}
	checkMechanisms(env, m.mechs, exs, m.results)
	checkServerSide(env, m.mechs[3], exs, m.stored)
	if err := measureStoreFailure(env, rig); err != nil { // failover_evidence.go
		return err
	}
	evidenceTable(env)
	return nil
}

// mechanism is one way of carrying the session token, played as a run of
// steps of the transcript.
type mechanism struct {
	name  string
	first int // index of its first step in the transcript
	n     int
	token string
}

// mechanismsPlay is the script's state: one stateful server, a client with
// cookies (jar) and one without (bare).
type mechanismsPlay struct {
	env       *lab.Env
	srv       *httpstate.Server
	t         *transcript
	jar, bare *httpstate.Client
	mechs     []*mechanism
	results   map[string]float64 // the result each mechanism's session reached
	stored    []byte             // the session server-side, as the store holds it
}

func newMechanismsPlay(env *lab.Env, srv *httpstate.Server, run *httpstate.Running) *mechanismsPlay {
	return &mechanismsPlay{env: env, srv: srv, t: &transcript{name: "stateful server", addr: run.Addr},
		jar: httpstate.NewClient(run.URL(), true), bare: httpstate.NewClient(run.URL(), false), results: map[string]float64{}}
}

// close closes the clients' connections.
func (m *mechanismsPlay) close() { m.jar.Close(); m.bare.Close() }

// begin starts a mechanism at the transcript's next step.
func (m *mechanismsPlay) begin(name string) *mechanism {
	mech := &mechanism{name: name, first: len(m.t.steps)}
	m.mechs = append(m.mechs, mech)
	return mech
}

// end closes a mechanism's run of steps.
func (m *mechanismsPlay) end(mech *mechanism) { mech.n = len(m.t.steps) - mech.first }

// do plays a step that must be answered.
func (m *mechanismsPlay) do(c *httpstate.Client, label, method, path string, body any) (*played, error) {
	p := m.t.do(m.env.Ctx, c, label, method, path, body)
	return p, mustAnswer(p)
}

// noteSession records the session behind token after a step, as the
// server reported it.
func (m *mechanismsPlay) noteSession(token string) {
	st, ok, err := m.srv.Session(m.env.Ctx, token)
	switch {
	case token == "" || err != nil || !ok:
		m.t.note("no session")
	case !st.HasLast:
		m.t.note("session %s: empty", short(token))
	default:
		m.t.note("session %s: last_result=%g", short(token), st.LastResult)
	}
}

// playCookie: the token in the Cookie header.
func (m *mechanismsPlay) playCookie() error {
	mech := m.begin("cookie")
	for _, s := range []struct {
		label, path string
		body        any
	}{{"cookie: start session", "/session", nil},
		{"cookie: 10 + 5", "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}},
		{"cookie: × 2", "/use_last", httpstate.CalcRequest{Op: httpstate.Multiply, B: num(2)}}} {
		p, err := m.do(m.jar, s.label, "POST", s.path, s.body)
		if err != nil {
			return err
		}
		if p.Rep.Cookie != "" {
			mech.token = p.Rep.Cookie
		}
		m.results[mech.name] = p.Rep.Result
		m.noteSession(mech.token)
	}
	m.end(mech)
	return nil
}

// playURL: URL rewriting, the server writing the token into the links it
// gives.
func (m *mechanismsPlay) playURL() error {
	mech := m.begin("url")
	p, err := m.do(m.bare, "url: start session", "POST", "/session?via=url", nil)
	if err != nil {
		return err
	}
	var links map[string]string
	_ = json.Unmarshal(p.Rep.Body, &links)
	mech.token = links["token"]
	m.noteSession(mech.token)
	for _, s := range []struct {
		label, path string
		body        any
	}{{"url: 10 + 5", links["calculate"], httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}},
		{"url: × 2", links["use_last"], httpstate.CalcRequest{Op: httpstate.Multiply, B: num(2)}}} {
		if s.path == "" {
			return fmt.Errorf("url rewriting: the server gave no links: %s", p.Rep.Body)
		}
		q, err := m.do(m.bare, s.label, "POST", s.path, s.body)
		if err != nil {
			return err
		}
		m.results[mech.name] = q.Rep.Result
		m.noteSession(mech.token)
	}
	m.end(mech)
	return nil
}

// playForm: the token in the form page's hidden field.
func (m *mechanismsPlay) playForm() error {
	mech := m.begin("form")
	p, err := m.do(m.bare, "form: fetch the page", "GET", "/form", nil)
	if err != nil {
		return err
	}
	mech.token = httpstate.FormToken(p.Rep.Body)
	m.noteSession(mech.token)
	for _, s := range []struct {
		label string
		form  url.Values
	}{{"form: 10 + 5", url.Values{"session": {mech.token}, "a": {"10"}, "op": {"add"}, "b": {"5"}}},
		{"form: × 2 (a left empty)", url.Values{"session": {mech.token}, "op": {"multiply"}, "b": {"2"}}}} {
		q, err := m.do(m.bare, s.label, "POST", "/form", s.form)
		if err != nil {
			return err
		}
		m.results[mech.name], _ = httpstate.FormResult(q.Rep.Body)
		m.noteSession(mech.token)
	}
	m.end(mech)
	return nil
}

// playServerSide: what the cookie's token stands for, read back.
func (m *mechanismsPlay) playServerSide() error {
	mech := m.begin("server-side")
	mech.token = m.mechs[0].token
	if _, err := m.do(m.jar, "server-side: read the session's state", "GET", "/state", nil); err != nil {
		return err
	}
	m.stored, _, _ = m.srv.RawSession(m.env.Ctx, mech.token)
	m.t.note("session %s: %d bytes in the server's store", short(mech.token), len(m.stored))
	m.end(mech)
	return nil
}

// tokenPlaces counts where requests carry a session token: in the session
// cookie, in the URL's session parameter, in the body.
func tokenPlaces(exs []*Exchange, token string) (cookie, inURL, inBody int) {
	for _, ex := range exs {
		if ck, err := ex.Request.Cookie(httpstate.SessionCookie); err == nil && ck.Value == token {
			cookie++
		}
		if ex.Request.URL.Query().Get(httpstate.SessionParam) == token {
			inURL++
		}
		if strings.Contains(string(ex.ReqBody), url.QueryEscape(token)) {
			inBody++
		}
	}
	return cookie, inURL, inBody
}

// checkMechanisms checks where each mechanism's token travelled after it
// was issued, and what its session computed.
func checkMechanisms(env *lab.Env, mechs []*mechanism, exs []*Exchange, results map[string]float64) {
	for _, m := range mechs {
		cookie, inURL, inBody := tokenPlaces(exs[m.first+1:m.first+m.n], m.token) // after the token was issued
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
}

// checkServerSide checks that GET /state carried only the token while the
// server answered with the state it keeps.
func checkServerSide(env *lab.Env, m *mechanism, exs []*Exchange, stored []byte) {
	ex := exs[m.first]
	var st httpstate.SessionState
	_ = json.Unmarshal(ex.RespBody, &st)
	env.Check("server-side session data: the request carries only the token; the state is on the server",
		len(ex.ReqBody) == 0 && len(Numbers("", ex.ReqBody)) == 0 && st.LastResult == 30 && len(st.History) == 2 && len(stored) > len(m.token),
		"GET /state sent %d request bytes and no numbers; the server answered last_result=%g with %d history entries from %d stored bytes behind a %d-char token",
		ex.ReqBytes, st.LastResult, len(st.History), len(stored), len(m.token))
	env.Metric("server-side.stored_bytes", float64(len(stored)))
	env.Metric("server-side.token_chars", float64(len(m.token)))
}
