package httpstate

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// do sends one request straight to the handler, with an optional session
// cookie, and returns the recorder.
func do(srv *Server, method, target, cookie, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: cookie})
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

func sessionCookieOf(rec *httptest.ResponseRecorder) string {
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie {
			return c.Value
		}
	}
	return ""
}

// A session idle for longer than IdleTimeout is gone: the next request is a
// 401 no_session, whichever way its token travels. The idle wait runs on
// synctest's fake clock, so it takes no real time.
func TestIdleSessionExpiresAndTheNextRequestIsA401(t *testing.T) {
	tests := []struct {
		name string
		idle time.Duration
		want int
	}{
		{"cookie, idle past the timeout", 150 * time.Millisecond, http.StatusUnauthorized},
		{"cookie, within the timeout", 50 * time.Millisecond, http.StatusOK},
		{"url token, idle past the timeout", 150 * time.Millisecond, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Built outside the bubble: scs.New starts a memstore cleanup
			// goroutine of its own that never ends.
			srv, err := New(Config{Mode: Stateful, IdleTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			synctest.Test(t, func(t *testing.T) {
				rec := do(srv, "POST", "/session", "", "", "")
				tok := sessionCookieOf(rec)
				if rec.Code != http.StatusCreated || tok == "" {
					t.Fatalf("session start: %d %q", rec.Code, rec.Body)
				}
				if rec := do(srv, "POST", "/calculate", tok, "application/json", `{"op":"add","a":1,"b":2}`); rec.Code != 200 {
					t.Fatalf("calculate: %d %s", rec.Code, rec.Body)
				}
				time.Sleep(tt.idle)
				if strings.HasPrefix(tt.name, "url") {
					rec = do(srv, "POST", "/use_last?session="+url.QueryEscape(tok), "", "application/json", `{"op":"add","b":1}`)
				} else {
					rec = do(srv, "POST", "/use_last", tok, "application/json", `{"op":"add","b":1}`)
				}
				if rec.Code != tt.want || (tt.want == 401 && !strings.Contains(rec.Body.String(), `"no_session"`)) {
					t.Fatalf("after %v idle: %d %s; want %d", tt.idle, rec.Code, rec.Body, tt.want)
				}
			})
		})
	}
}

// POST /session always issues a new token, even when the client sent a
// session cookie (against session fixation), and the old token no longer
// names a session.
func TestPostSessionRotatesTheTokenEvenWithACookie(t *testing.T) {
	tests := []struct {
		name   string
		cookie func(srv *Server) string
	}{
		{"live session cookie", func(srv *Server) string { return sessionCookieOf(do(srv, "POST", "/session", "", "", "")) }},
		{"attacker-chosen cookie", func(*Server) string { return strings.Repeat("F", 43) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Config{Mode: Stateful})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			old := tt.cookie(srv)
			rec := do(srv, "POST", "/session", old, "", "")
			nu := sessionCookieOf(rec)
			if rec.Code != http.StatusCreated || nu == "" || nu == old {
				t.Fatalf("POST /session with cookie %q: %d, new token %q", old, rec.Code, nu)
			}
			if rec := do(srv, "GET", "/state", old, "", ""); rec.Code != http.StatusUnauthorized {
				t.Errorf("old token still names a session: %d %s", rec.Code, rec.Body)
			}
			if rec := do(srv, "GET", "/state", nu, "", ""); rec.Code != http.StatusOK {
				t.Errorf("new token: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// A form posted with a hidden token that names no live session (expired or
// made up) is a 401 HTML page, not a silent new session with a 200.
func TestFormWithAnExpiredOrUnknownTokenIsA401HTMLPage(t *testing.T) {
	tests := []struct {
		name  string
		token func(t *testing.T, srv *Server) string
	}{
		{"unknown token", func(*testing.T, *Server) string { return strings.Repeat("A", 43) }},
		{"expired token", func(t *testing.T, srv *Server) string {
			rec := do(srv, "GET", "/form", "", "", "")
			tok := FormToken(rec.Body.Bytes())
			if rec.Code != 200 || tok == "" {
				t.Fatalf("form page: %d %s", rec.Code, rec.Body)
			}
			time.Sleep(150 * time.Millisecond) // fake clock: past the idle timeout
			return tok
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Built outside the bubble: scs.New starts a memstore cleanup
			// goroutine of its own that never ends.
			srv, err := New(Config{Mode: Stateful, IdleTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			synctest.Test(t, func(t *testing.T) {
				tok := tt.token(t, srv)
				form := url.Values{"session": {tok}, "a": {"1"}, "op": {"add"}, "b": {"2"}}.Encode()
				rec := do(srv, "POST", "/form", "", "application/x-www-form-urlencoded", form)
				body := rec.Body.String()
				if rec.Code != http.StatusUnauthorized || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") ||
					formErrorCode(rec.Body.Bytes()) != "no_session" || FormToken(rec.Body.Bytes()) != "" || sessionCookieOf(rec) != "" {
					t.Fatalf("%d %s\n%s", rec.Code, rec.Header().Get("Content-Type"), body)
				}
			})
		})
	}
}
