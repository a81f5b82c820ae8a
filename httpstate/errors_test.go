package httpstate

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"
)

// goTypeName matches what a Go type in a message looks like: a package
// path or a qualified name (httpstate.Op), or Go's own wording.
var goTypeName = regexp.MustCompile(`httpstate\.|json: |Go (struct|value)|float64|\*?main\.|\[\]byte`)

// Every status the server sends is JSON with a code and a message in the
// client's terms, whatever mode it runs in.
func TestEveryErrorStatusIsJSONWithoutGoTypes(t *testing.T) {
	big := `{"op":"add","a":1,"b":2,"pad":"` + strings.Repeat("x", MaxBody) + `"}`
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
		says                            string
	}{
		{"root is an index", "GET", "/", "", "", 200, "", ""},
		{"unknown path is a JSON 404", "GET", "/nope", "", "", 404, "not_found", "GET / lists the API"},
		{"POST on root is a JSON 404", "POST", "/", "application/json", "{}", 404, "not_found", "no such path"},
		{"GET on a POST path is a JSON 405", "GET", "/calculate", "", "", 405, "method", "POST"},
		{"DELETE on the form is a JSON 405", "DELETE", "/form", "", "", 405, "method", "GET"},
		{"body over the limit is a 413", "POST", "/calculate", "application/json", big, 413, "body_too_large", "64 KiB"},
		{"form body over the limit is a 413", "POST", "/calculate", "application/x-www-form-urlencoded", "op=add&a=1&b=" + strings.Repeat("1", MaxBody), 413, "body_too_large", "64 KiB"},
		{"a long non-JSON body is a 413", "POST", "/calculate", "application/json", strings.Repeat("x", 100000), 413, "body_too_large", "64 KiB"},
		{"text/plain is a 415", "POST", "/calculate", "text/plain", `{"op":"add","a":1,"b":2}`, 415, "content_type", "application/json"},
		{"XML is a 415", "POST", "/calculate", "application/xml", `<op/>`, 415, "content_type", "application/json"},
		{"malformed JSON is a 400", "POST", "/calculate", "application/json", `{"op":`, 400, "malformed", "ends too soon"},
		{"bad character is a 400", "POST", "/calculate", "application/json", `{op}`, 400, "malformed", "byte"},
		{"an array body is a 400", "POST", "/calculate", "application/json", `[1,2]`, 400, "malformed", "one JSON object"},
		{"an array operand is a 400", "POST", "/calculate", "application/json", `{"op":"add","a":[1,2],"b":1}`, 400, "not_a_number", "operand a must be a finite number"},
		{"a string operand is a 400", "POST", "/calculate", "application/json", `{"op":"add","a":1,"b":"2"}`, 400, "not_a_number", "operand b must be"},
		{"a numeric op is a 400", "POST", "/calculate", "application/json", `{"op":1,"a":1,"b":2}`, 400, "bad_op", "op must be a string"},
		{"an array op is a 400", "POST", "/calculate", "application/json", `{"op":[1],"a":1,"b":2}`, 400, "bad_op", "op must be a string"},
		{"an unknown field is a 400", "POST", "/calculate", "application/json", `{"op":"add","a":1,"b":2,"c":3}`, 400, "malformed", "the fields are op, a and b"},
	}
	for _, mode := range []Mode{Stateless, Stateful} {
		srv, err := New(Config{Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				rec := do(srv, tt.method, tt.path, "", tt.ctype, tt.body)
				var m map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
					t.Fatalf("%d, not JSON (%v): %q", rec.Code, err, rec.Body)
				}
				msg, _ := m["error"].(string)
				if rec.Code != tt.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
					(tt.code != "" && m["code"] != tt.code) || !strings.Contains(msg, tt.says) {
					t.Errorf("got %d %s %v; want %d code %q saying %q", rec.Code, rec.Header().Get("Content-Type"), m, tt.status, tt.code, tt.says)
				}
				if goTypeName.MatchString(rec.Body.String()) {
					t.Errorf("a Go type name in %s", rec.Body)
				}
				if rec.Code == 405 && rec.Header().Get("Allow") == "" {
					t.Errorf("405 without Allow")
				}
			})
		}
	}
}

// Through a real socket a body over the limit is a 413 too, not the
// "unexpected EOF" of a body cut short.
func TestBodyLimitOverTheSocket(t *testing.T) {
	for _, size := range []int{8 << 10, MaxBody + 1, 4 << 20} {
		srv, run := serve(t, Stateful)
		_ = srv
		body := `{"op":"add","a":1,"b":2,"pad":"` + strings.Repeat("x", size) + `"}`
		rep, err := http.Post(run.URL()+"/calculate", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(rep.Body).Decode(&m)
		rep.Body.Close()
		want := http.StatusRequestEntityTooLarge
		if size < MaxBody {
			want = http.StatusBadRequest // under the limit: the unknown field pad
		}
		if rep.StatusCode != want {
			t.Errorf("%d bytes: %d %v; want %d", size, rep.StatusCode, m, want)
		}
	}
}

// The access log has one line per request: time, client, request line,
// status, bytes and duration; a client cannot start a line of its own.
func TestAccessLogLine(t *testing.T) {
	srv, err := New(Config{Mode: Stateless})
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	run, err := Listen("127.0.0.1:0", AccessLog(srv, &log))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/calculate", "/nope", "/x%0Afake%20line"} {
		rep, err := http.Post(run.URL()+p, "application/json", strings.NewReader(`{"op":"add","a":1,"b":2}`))
		if err != nil {
			t.Fatal(err)
		}
		rep.Body.Close()
	}
	run.Close() // every handler has returned: the log is complete
	lines := strings.Split(strings.TrimSuffix(log.String(), "\n"), "\n")
	line := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1:\d+ "POST (\S+) HTTP/1\.1" (\d{3}) (\d+)B \d+\.\d{3}ms$`)
	want := []struct{ path, status string }{{"/calculate", "200"}, {"/nope", "404"}, {`/x%0Afake%20line`, "404"}}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), log.String())
	}
	for i, l := range lines {
		m := line.FindStringSubmatch(l)
		if m == nil || m[1] != want[i].path || m[2] != want[i].status || m[3] == "0" {
			t.Errorf("line %q; want POST %s %s with its bytes", l, want[i].path, want[i].status)
		}
	}
}

// At MaxSessions a new session is refused with 503 session_limit and the
// sessions there are kept (none is evicted); a client with a session goes
// on working.
func TestSessionCapRefusesNewSessions(t *testing.T) {
	srv, err := New(Config{Mode: Stateful, MaxSessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var tokens []string
	for range 2 {
		rec := do(srv, "POST", "/session", "", "", "")
		if rec.Code != http.StatusCreated {
			t.Fatalf("session under the cap: %d %s", rec.Code, rec.Body)
		}
		tokens = append(tokens, sessionCookieOf(rec))
	}
	tests := []struct {
		name, method, path, cookie, ctype, body string
		status                                  int
		code                                    string
	}{
		{"a third POST /session", "POST", "/session", "", "", "", 503, "session_limit"},
		{"an anonymous form page stores nothing", "GET", "/form", "", "", "", 200, ""},
		{"a first form calculation", "POST", "/form", "", "application/x-www-form-urlencoded", "a=1&op=add&b=2", 503, "session_limit"},
		{"a held session computes", "POST", "/calculate", tokens[0], "application/json", `{"op":"add","a":1,"b":2}`, 200, ""},
		{"a held session restarts", "POST", "/session", tokens[1], "", "", 201, ""},
		{"stateless calculation needs no session", "POST", "/calculate", "", "application/json", `{"op":"add","a":1,"b":2}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(srv, tt.method, tt.path, tt.cookie, tt.ctype, tt.body)
			if rec.Code != tt.status || (tt.code != "" && !strings.Contains(rec.Body.String(), tt.code)) {
				t.Errorf("got %d %s; want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
			if rec.Code == 503 && rec.Header().Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
	if n := srv.SessionCount(); n != 2 {
		t.Errorf("%d sessions held, want 2", n)
	}
}

// Anonymous form pages store nothing, so they take no room under the cap:
// however many are served, the sessions the cap allows can still start.
func TestAnonymousFormPagesTakeNoRoomUnderTheCap(t *testing.T) {
	srv, err := New(Config{Mode: Stateful, MaxSessions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for range 10 {
		if rec := do(srv, "GET", "/form", "", "", ""); rec.Code != http.StatusOK {
			t.Fatalf("GET /form: %d %s", rec.Code, rec.Body)
		}
	}
	for i := range 2 {
		if rec := do(srv, "POST", "/session", "", "", ""); rec.Code != http.StatusCreated {
			t.Fatalf("session %d of 2 after 10 form pages: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	if rec := do(srv, "POST", "/session", "", "", ""); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a third session: %d %s, want 503", rec.Code, rec.Body)
	}
}

// listingStore counts how often the store is listed (All): on Redis a
// listing is one read per stored session.
type listingStore struct {
	*memstore.MemStore
	listings atomic.Int64
}

func (l *listingStore) All() (map[string][]byte, error) {
	l.listings.Add(1)
	return l.MemStore.All()
}

// A flood of session starts at the cap is refused without listing the
// store each time: at most once a second (before, every refused start
// listed every session, so an anonymous flood cost the store one read per
// stored session per request).
func TestSessionCapDoesNotListTheStorePerRequest(t *testing.T) {
	tests := []struct {
		name, path, ctype, body string
	}{
		{"POST /session", "/session", "", ""},
		{"a first POST /form", "/form", "application/x-www-form-urlencoded", "a=1&op=add&b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &listingStore{MemStore: memstore.NewWithCleanupInterval(0)}
			srv, err := New(Config{Mode: StoreBacked, Store: st, MaxSessions: 3})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			start := time.Now()
			const flood = 500
			created := 0
			for range flood {
				switch rec := do(srv, "POST", tt.path, "", tt.ctype, tt.body); rec.Code {
				case http.StatusCreated, http.StatusOK:
					created++
				case http.StatusServiceUnavailable:
				default:
					t.Fatalf("got %d %s", rec.Code, rec.Body)
				}
			}
			allowed := 2 + int64(time.Since(start)/capRecount)
			if n := st.listings.Load(); created != 3 || n > allowed {
				t.Errorf("%d sessions created, the store listed %d times for %d starts in %v; want 3 created and at most %d listings",
					created, n, flood, time.Since(start).Round(time.Millisecond), allowed)
			}
		})
	}
}

// An SQLite store's files are created 0600, and an existing file others
// can read is warned about.
func TestSQLiteStoreFileMode(t *testing.T) {
	dir := t.TempDir()
	u := StoreURL{Kind: StoreSQLite, Path: filepath.Join(dir, "s.db")}
	st, closeStore, err := OpenStore(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Mode: StoreBacked, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(srv, "POST", "/session", "", "", ""); rec.Code != http.StatusCreated {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{u.Path, u.Path + "-wal", u.Path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", p, perm)
		}
	}
	if w := StoreFileWarnings(u); len(w) != 0 {
		t.Errorf("warnings on 0600 files: %q", w)
	}
	closeStore()
	if err := os.Chmod(u.Path, 0o644); err != nil {
		t.Fatal(err)
	}
	if w := StoreFileWarnings(u); len(w) != 1 || !strings.Contains(w[0], "0644") || !strings.Contains(w[0], "chmod 600") {
		t.Errorf("warnings on a 0644 file: %q", w)
	}
}

// An anonymous GET /form stores nothing; the first POST that computes
// stores the session under the page's token, and the next one uses it.
func TestAnonymousFormPageStoresNoSession(t *testing.T) {
	srv, err := New(Config{Mode: Stateful})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for range 100 {
		if rec := do(srv, "GET", "/form", "", "", ""); rec.Code != 200 || FormToken(rec.Body.Bytes()) == "" || sessionCookieOf(rec) != "" {
			t.Fatalf("form page: %d, token %q, cookie %q", rec.Code, FormToken(rec.Body.Bytes()), sessionCookieOf(rec))
		}
	}
	if n := srv.SessionCount(); n != 0 {
		t.Fatalf("100 anonymous form pages stored %d sessions", n)
	}
	tok := FormToken(do(srv, "GET", "/form", "", "", "").Body.Bytes())
	forged := []byte(tok)
	forged[30] = 'A' // in the MAC: it no longer matches
	if forged[30] == tok[30] {
		forged[30] = 'B'
	}
	spelled := []byte(tok) // its last character changed (padding bits or data)
	spelled[42] ^= 1
	if spelled[42] == '@' || spelled[42] == '^' || spelled[42] == '`' {
		spelled[42] ^= 3
	}
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name, cookie, body string
		status             int
		result             float64
		sessions           int
	}{
		{"a forged page token is no session", "", "session=" + string(forged) + "&a=1&op=add&b=2", 401, 0, 0},
		{"a page token with its last character changed is no session", "", "session=" + string(spelled) + "&a=1&op=add&b=2", 401, 0, 0},
		{"the first calculation stores the session", "", "session=" + tok + "&a=10&op=add&b=5", 200, 15, 1},
		{"the next one uses its last result", "", "session=" + tok + "&op=multiply&b=2", 200, 30, 1},
		{"a stale cookie beside a new page token", strings.Repeat("B", 43), "session=" + FormToken(do(srv, "GET", "/form", "", "", "").Body.Bytes()) + "&a=1&op=add&b=1", 200, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(srv, "POST", "/form", tt.cookie, form, tt.body)
			res, _ := FormResult(rec.Body.Bytes())
			if rec.Code != tt.status || (tt.status == 200 && res != tt.result) {
				t.Errorf("got %d result %g; want %d %g\n%s", rec.Code, res, tt.status, tt.result, rec.Body)
			}
			if n := srv.SessionCount(); n != tt.sessions {
				t.Errorf("%d sessions stored, want %d", n, tt.sessions)
			}
			if tt.cookie != "" && sessionCookieOf(rec) != FormToken(rec.Body.Bytes()) {
				t.Errorf("stale cookie not replaced by the stored token: cookie %q, page %q", sessionCookieOf(rec), FormToken(rec.Body.Bytes()))
			}
		})
	}
	if st, ok, _ := srv.Session(context.Background(), tok); !ok || st.LastResult != 30 {
		t.Errorf("session under the page's token: %+v %v", st, ok)
	}
}
