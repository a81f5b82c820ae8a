package httpstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// concurrentPlusOne sends n concurrent use_last "+1" requests for one
// session, and as many bad ones (division by zero) among them, alternating
// between the given backends, and returns the status counts.
func concurrentPlusOne(t *testing.T, urls []string, token string, n int) map[int]int {
	t.Helper()
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 64, MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Go(func() {
			body := `{"op":"add","b":1}`
			if i%2 == 1 {
				body = `{"op":"divide","b":0}` // bad input: must change nothing
			}
			req, _ := http.NewRequest("POST", urls[(i/2)%len(urls)]+"/use_last", bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
			st := -1
			if resp, err := hc.Do(req); err == nil {
				st = resp.StatusCode
				resp.Body.Close()
			}
			mu.Lock()
			statuses[st]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// Two server processes share one store; 40 concurrent "+1" on one session
// through both must all count: the per-session lock (SQLite) or the
// compare-and-set writes (Redis) have to work across processes, not just
// inside one.
func TestConcurrentUpdatesThroughTwoProcessesOnOneStoreLoseNothing(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "s.db") }},
		{"redis", func(t *testing.T) string { return startRedis(t).URL() }},
	}
	const n = 40
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := tt.store(t)
			var urls []string
			for range 2 {
				urls = append(urls, startProcess(t, ServeSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: store}))
			}
			c := NewClient(urls[0], true)
			defer c.Close()
			token := startSession(t, c) // last_result 15, operations 1
			statuses := concurrentPlusOne(t, urls, token, n)
			if statuses[200] != n || statuses[400] != n {
				t.Fatalf("statuses %v: want %d × 200 and %d × 400", statuses, n, n)
			}
			var st SessionState
			req, _ := http.NewRequest("GET", urls[1]+"/state", nil)
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				t.Fatal(err)
			}
			if st.Operations != n+1 || st.LastResult != 15+n {
				t.Fatalf("operations=%d last_result=%g; want %d and %d (%s)", st.Operations, st.LastResult, n+1, 15+n,
					fmt.Sprint(statuses))
			}
		})
	}
}

// Every client-supplied token used to add an entry to the server's lock
// map, for ever; the in-process lock is a fixed array of stripes, so the
// lock state is the same size after thousands of distinct tokens, and every
// stripe is free once the requests are done.
func TestLockStateStaysBoundedWhateverTokensClientsSend(t *testing.T) {
	srv, err := New(Config{Mode: Stateful})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tests := []struct {
		name   string
		tokens int
		via    string
	}{
		{"cookie", 2000, "cookie"},
		{"url", 2000, "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.tokens {
				tok := fmt.Sprintf("made-up-token-%s-%d", tt.via, i)
				req := httptest.NewRequest("GET", "/state", nil)
				if tt.via == "url" {
					req = httptest.NewRequest("GET", "/state?session="+tok, nil)
				} else {
					req.AddCookie(&http.Cookie{Name: SessionCookie, Value: tok})
				}
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusUnauthorized {
					t.Fatalf("unknown token: %d %s", rec.Code, rec.Body)
				}
			}
			l, ok := srv.locker.(*stripedLocker)
			if !ok {
				t.Fatalf("in-process lock is %T, want fixed stripes", srv.locker)
			}
			for i, ch := range l.stripes {
				if len(ch) != 0 {
					t.Fatalf("stripe %d still held", i)
				}
			}
			if len(l.stripes) != lockStripes {
				t.Fatalf("%d stripes", len(l.stripes))
			}
		})
	}
}

// A request that cannot get its session's lock before its deadline is a
// 503 with a JSON error, not a request that waits for ever.
func TestBusySessionIsA503WithAJSONError(t *testing.T) {
	tests := []struct {
		name string
		path string
		via  string
	}{
		{"cookie", "/state", "cookie"},
		{"url rewriting", "/state?session=held", "url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Config{Mode: Stateful, LockWait: 30 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			unlock, err := srv.locker.Lock(context.Background(), "held")
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.via == "cookie" {
				req.AddCookie(&http.Cookie{Name: SessionCookie, Value: "held"})
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			var m map[string]string
			if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["code"] != "session_busy" {
				t.Fatalf("%d %s; want 503 session_busy JSON", rec.Code, rec.Body)
			}
		})
	}
}

// The shared lock: a held lock makes another process wait and then give up
// at its deadline (ErrSessionBusy); a lock left by a process that died (past
// its expiry) is taken over.
func TestSharedLockWaitsForAHolderAndTakesOverAStaleLock(t *testing.T) {
	stores := []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "l.db") }},
	}
	cases := []struct {
		name     string
		ttl      time.Duration
		wantBusy bool
	}{
		{"held lock: busy at the deadline", 10 * time.Second, true},
		{"stale lock of a dead holder: taken over", 50 * time.Millisecond, false},
	}
	for _, st := range stores {
		for _, tc := range cases {
			t.Run(st.name+"/"+tc.name, func(t *testing.T) {
				u, err := ParseStoreURL(st.url(t))
				if err != nil {
					t.Fatal(err)
				}
				// Two stores on one file or server: two processes' views.
				var lockers []*sharedLocker
				for range 2 {
					s, closeStore, err := OpenStore(context.Background(), u)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { closeStore() })
					l := s.(lockerStore).sessionLocker().(*sharedLocker)
					l.ttl = tc.ttl
					lockers = append(lockers, l)
				}
				if _, err := lockers[0].Lock(context.Background(), "tok"); err != nil { // never released: the holder "dies"
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
				defer cancel()
				unlock, err := lockers[1].Lock(ctx, "tok")
				if busy := errors.Is(err, ErrSessionBusy); busy != tc.wantBusy {
					t.Fatalf("second process: err %v; want busy %v", err, tc.wantBusy)
				}
				if err == nil {
					unlock()
				}
			})
		}
	}
}
