package httpstate

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// tokenServer is a token server on a clock the test moves.
func tokenServer(t testing.TB, deny bool) (*TokenServer, *time.Time) {
	t.Helper()
	now := testNow
	cfg := TokenConfig{Secret: testSecret, Lifetime: 10 * time.Minute, Now: func() time.Time { return now }}
	if deny {
		cfg.Denylist = NewDenylist(cfg.Now)
	}
	s, err := NewTokenServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, &now
}

// tokenReq sends one request with the given token and sid cookies.
func tokenReq(s http.Handler, method, path, body, token, sid string) *httptest.ResponseRecorder {
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
	}
	if sid != "" {
		req.AddCookie(&http.Cookie{Name: SIDCookie, Value: sid})
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// cookieOf is the value a response sets for name.
func cookieOf(w *httptest.ResponseRecorder, name string) (string, bool) {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c.Value, true
		}
	}
	return "", false
}

// tokenWorkflow starts a session and computes (10 + 5) × 2 on it.
func tokenWorkflow(t *testing.T, s http.Handler) (token, sid string) {
	t.Helper()
	w := tokenReq(s, "POST", "/session", "", "", "")
	token, _ = cookieOf(w, SessionCookie)
	sid, _ = cookieOf(w, SIDCookie)
	if w.Code != http.StatusCreated || token == "" || sid == "" {
		t.Fatalf("session: %d %s", w.Code, w.Body)
	}
	for _, step := range []struct{ path, body string }{{"/calculate", `{"op":"add","a":10,"b":5}`}, {"/use_last", `{"op":"multiply","b":2}`}} {
		w = tokenReq(s, "POST", step.path, step.body, token, sid)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", step.path, w.Code, w.Body)
		}
		token, _ = cookieOf(w, SessionCookie)
	}
	return token, sid
}

// The token server keeps the stateful API's workflow with nothing stored:
// a second server with the same secret continues it, undo and stats work
// from the token.
func TestTokenServerWorkflowAcrossServers(t *testing.T) {
	a, _ := tokenServer(t, false)
	b, _ := tokenServer(t, false)
	token, sid := tokenWorkflow(t, a)
	w := tokenReq(b, "POST", "/use_last", `{"op":"subtract","b":3}`, token, sid)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"result":27`) {
		t.Fatalf("on the other server: %d %s", w.Code, w.Body)
	}
	token, _ = cookieOf(w, SessionCookie)
	w = tokenReq(b, "POST", "/undo", "", token, sid)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"result":30`) {
		t.Fatalf("undo: %d %s", w.Code, w.Body)
	}
	token, _ = cookieOf(w, SessionCookie)
	w = tokenReq(a, "GET", "/stats", "", token, sid)
	var st Stats
	_ = json.Unmarshal(w.Body.Bytes(), &st)
	if st.Operations != 3 || st.Undos != 1 || st.HistoryLen != 2 || st.LastResult != 30 {
		t.Errorf("stats %s", w.Body)
	}
}

// Every bad token is a 401 with its code, as JSON, sets no cookie, and
// leaves the session as it was: the good token still shows 30 with two
// history entries.
func TestTokenServerRefusesBadTokens(t *testing.T) {
	s, now := tokenServer(t, true)
	token, sid := tokenWorkflow(t, s)
	parts := strings.Split(token, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"last_result":30`), []byte(`"last_result":1000`), 1)) + "." + parts[2]
	forger, _ := NewTokenCodec(bytes.Repeat([]byte{7}, MinTokenSecret), time.Hour, func() time.Time { return *now })
	forged, _ := forger.Issue(sid, SessionState{HasLast: true, LastResult: 1000})
	past, _ := NewTokenCodec(testSecret, time.Minute, func() time.Time { return now.Add(-time.Hour) })
	expired, _ := past.Issue(sid, SessionState{HasLast: true, LastResult: 30})
	otherToken, otherSID := tokenWorkflow(t, s)
	for _, tc := range []struct {
		name, token, sid, code string
	}{
		{"tampered payload", tampered, sid, "token_signature"},
		{"forged with another key", forged, sid, "token_signature"},
		{"expired", expired, sid, "token_expired"},
		{"transplanted: another session's token", otherToken, sid, "token_transplanted"},
		{"transplanted: this token under another sid", token, otherSID, "token_transplanted"},
		{"no sid cookie", token, "", "token_transplanted"},
		{"malformed", "not-a-token", sid, "token_malformed"},
		{"over the cap", strings.Repeat("a", MaxTokenBytes+1), sid, "token_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/use_last", `{"op":"add","b":1}`}, {"POST", "/calculate", `{"op":"add","a":1,"b":1}`}, {"POST", "/undo", ""}, {"GET", "/state", ""}, {"POST", "/logout", ""},
			} {
				w := tokenReq(s, req.method, req.path, req.body, tc.token, tc.sid)
				var m map[string]string
				_ = json.Unmarshal(w.Body.Bytes(), &m)
				if w.Code != http.StatusUnauthorized || m["code"] != tc.code || m["error"] == "" {
					t.Errorf("%s %s: %d %s, want 401 %s", req.method, req.path, w.Code, w.Body, tc.code)
				}
				if len(w.Result().Cookies()) != 0 {
					t.Errorf("%s: a refused request set cookies %v", req.path, w.Result().Cookies())
				}
			}
			w := tokenReq(s, "GET", "/state", "", token, sid)
			var st SessionState
			_ = json.Unmarshal(w.Body.Bytes(), &st)
			if w.Code != 200 || st.LastResult != 30 || len(st.History) != 2 {
				t.Errorf("state after the refusals: %d %s", w.Code, w.Body)
			}
		})
	}
}

// Without a denylist, logging out revokes nothing: the old token, replayed,
// is accepted until it expires. With one, it is refused — until the
// process that kept the list is gone.
func TestTokenServerLogout(t *testing.T) {
	for _, tc := range []struct {
		deny bool
		want int
		code string
	}{{false, http.StatusOK, ""}, {true, http.StatusUnauthorized, "token_revoked"}} {
		s, now := tokenServer(t, tc.deny)
		token, sid := tokenWorkflow(t, s)
		w := tokenReq(s, "POST", "/logout", "", token, sid)
		if c, _ := cookieOf(w, SessionCookie); w.Code != 200 || c != "" {
			t.Fatalf("logout: %d %s", w.Code, w.Body)
		}
		w = tokenReq(s, "GET", "/state", "", token, sid)
		if w.Code != tc.want || (tc.code != "" && !strings.Contains(w.Body.String(), tc.code)) {
			t.Errorf("denylist %v: replay after logout %d %s, want %d", tc.deny, w.Code, w.Body, tc.want)
		}
		*now = now.Add(11 * time.Minute)
		if w = tokenReq(s, "GET", "/state", "", token, sid); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "token_expired") {
			t.Errorf("denylist %v: replay after expiry %d %s", tc.deny, w.Code, w.Body)
		}
	}
}

// Requests without a token: /calculate is the stateless calculator, the
// rest need a session; bad bodies get the calculator's errors.
func TestTokenServerWithoutToken(t *testing.T) {
	s, _ := tokenServer(t, false)
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"POST", "/calculate", `{"op":"add","a":1,"b":2}`, 200, ""},
		{"POST", "/use_last", `{"op":"add","b":2}`, 401, "no_session"},
		{"GET", "/history", "", 401, "no_session"},
		{"POST", "/calculate", `{"op":"add","a":1}`, 400, "missing_operand"},
		{"GET", "/use_last", "", 405, "method"},
		{"GET", "/nope", "", 404, "not_found"},
	} {
		w := tokenReq(s, tc.method, tc.path, tc.body, "", "")
		if w.Code != tc.status || (tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`)) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
		if _, set := cookieOf(w, SessionCookie); set {
			t.Errorf("%s %s set a session cookie", tc.method, tc.path)
		}
	}
}

// Any session and sid cookie: the token server answers below 500 with a
// JSON body, sets no cookie unless the token was its own, and reads a
// state only from a token it issued.
func FuzzTokenServerCookies(f *testing.F) {
	s, _ := tokenServer(f, true)
	good, _ := s.Codec().Issue("sid-1", SessionState{HasLast: true, LastResult: 30})
	for _, c := range []struct{ tok, sid string }{{good, "sid-1"}, {good, "sid-2"}, {good + "x", "sid-1"}, {"", ""}, {"a.b.c", "x"}, {strings.Repeat("A", MaxTokenBytes+1), "sid-1"}} {
		f.Add(c.tok, c.sid)
	}
	f.Fuzz(func(t *testing.T, tok, sid string) {
		w := tokenReq(s, "POST", "/use_last", `{"op":"add","b":1}`, tok, sid)
		var m map[string]any
		if w.Code >= 500 || json.Unmarshal(w.Body.Bytes(), &m) != nil {
			t.Fatalf("%d %q", w.Code, w.Body)
		}
		if w.Code == http.StatusOK && (tok != good || sid != "sid-1") {
			t.Fatalf("accepted token %q with sid %q", tok, sid)
		}
		if _, set := cookieOf(w, SessionCookie); set != (w.Code == http.StatusOK) {
			t.Fatalf("%d with a cookie set: %v", w.Code, set)
		}
	})
}
