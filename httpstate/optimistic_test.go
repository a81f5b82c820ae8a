package httpstate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alexedwards/scs/v2"
	"github.com/redis/go-redis/v9"
)

// startRedis starts a redis-server for the test (or skips it as
// needTool says) and stops it when the test ends.
func startRedis(tb testing.TB) *RedisServer {
	tb.Helper()
	needTool(tb, "redis-server")
	rs, err := StartRedis(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rs.Close)
	return rs
}

// redisStoreServer is a store-backed server on its own store (its own
// client and cache: one process's view) of the Redis at rs.
func redisStoreServer(tb testing.TB, rs *RedisServer) (*Server, *redisSessions) {
	tb.Helper()
	u, _ := ParseStoreURL(rs.URL())
	st, closeStore, err := OpenStore(context.Background(), u)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeStore() })
	srv, err := New(Config{Mode: StoreBacked, Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv, st.(*redisSessions)
}

func peekClient(tb testing.TB, rs *RedisServer) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: rs.Addr})
	tb.Cleanup(func() { c.Close() })
	return c
}

// serveOne serves one request with the session cookie (or, with a token
// starting "url:", the token in the URL) and returns the recorder.
func serveOne(srv *Server, method, path, body, token string) *httptest.ResponseRecorder {
	if tok, ok := strings.CutPrefix(token, "url:"); ok {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path, token = path+sep+SessionParam+"="+tok, ""
	}
	req := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

func sessionToken(tb testing.TB, rec *httptest.ResponseRecorder) string {
	tb.Helper()
	for _, c := range rec.Result().Cookies() {
		if c.Name == SessionCookie {
			return c.Value
		}
	}
	tb.Fatalf("no session cookie: %d %s", rec.Code, rec.Body)
	return ""
}

func mustCode(tb testing.TB, rec *httptest.ResponseRecorder, want int) {
	tb.Helper()
	if rec.Code != want {
		tb.Fatalf("%d %s; want %d", rec.Code, rec.Body, want)
	}
}

// A request whose session this process saw last costs one round trip to
// Redis, whatever it does: the compare-and-set that writes it (or renews
// its expiry); starting a session over an old one is one too (delete and
// write in one script).
func TestRedisRequestCostsOneRoundTrip(t *testing.T) {
	rs := startRedis(t)
	srv, st := redisStoreServer(t, rs)
	token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
	steps := []struct {
		name, method, path, body string
		code                     int
	}{
		{"calculate", "POST", "/calculate", `{"op":"add","a":10,"b":5}`, 200},
		{"use_last", "POST", "/use_last", `{"op":"add","b":1}`, 200},
		{"bad input", "POST", "/use_last", `{"op":"divide","b":0}`, 400},
		{"read state", "GET", "/state", "", 200},
		{"history", "GET", "/history", "", 200},
		{"undo", "POST", "/undo", "", 200},
		{"use_last again", "POST", "/use_last", `{"op":"multiply","b":2}`, 200},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := st.roundTrips()
			mustCode(t, serveOne(srv, s.method, s.path, s.body, token), s.code)
			if got := st.roundTrips() - before; got != 1 {
				t.Errorf("%d round trips, want 1", got)
			}
		})
	}
	got, ok, err := srv.Session(context.Background(), token)
	if err != nil || !ok || got.LastResult != 30 || got.Operations != 3 {
		t.Fatalf("state %+v %v %v; want last 30 after 3 operations (add, add undone, multiply)", got, ok, err)
	}
	t.Run("new session over the old one", func(t *testing.T) {
		before := st.roundTrips()
		fresh := sessionToken(t, serveOne(srv, "POST", "/session", "", token))
		if got := st.roundTrips() - before; got != 1 {
			t.Errorf("%d round trips, want 1", got)
		}
		if _, ok, _ := srv.Session(context.Background(), token); ok || fresh == token {
			t.Errorf("old token still has a session (new %q)", fresh)
		}
	})
	if n := st.conflicts.Load(); n != 0 {
		t.Errorf("%d reruns with one process", n)
	}
}

// Two processes (two stores, each with its own cache) on one Redis: what
// one writes, the other's next request sees — the write it computed on its
// stale cache is refused, and the request runs again on the current
// session, at the price of one more round trip. Reads are never stale
// either: a read answered from the cache is checked before it is sent.
func TestSessionChangedByAnotherProcessIsRunAgainOnTheCurrentOne(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		code                     int
		check                    func(SessionState, []byte) error
	}{
		{"use_last computes on the other's result", "POST", "/use_last", `{"op":"add","b":1}`, 200,
			func(st SessionState, body []byte) error {
				if !bytes.Contains(body, []byte(`"result":31`)) || st.LastResult != 31 || st.Operations != 3 {
					return fmt.Errorf("reply %s, stored %+v; want 30+1 after 3 operations", body, st)
				}
				return nil
			}},
		{"a read shows the other's write", "GET", "/state", "", 200,
			func(st SessionState, body []byte) error {
				var got SessionState
				if err := json.Unmarshal(body, &got); err != nil || got.LastResult != 30 || got.Operations != 2 {
					return fmt.Errorf("reply %s; want last 30 after 2 operations", body)
				}
				return nil
			}},
		{"undo sees the other's history", "POST", "/undo", "", 200,
			func(st SessionState, body []byte) error {
				if st.LastResult != 15 || len(st.History) != 1 {
					return fmt.Errorf("stored %+v; want the multiply undone", st)
				}
				return nil
			}},
		{"bad input leaves the other's write", "POST", "/use_last", `{"op":"divide","b":0}`, 400,
			func(st SessionState, body []byte) error {
				if st.LastResult != 30 || st.Operations != 2 {
					return fmt.Errorf("stored %+v; want the other's 30 kept", st)
				}
				return nil
			}},
	}
	for _, via := range []string{"cookie", "url"} {
		for _, tt := range tests {
			t.Run(via+"/"+tt.name, func(t *testing.T) {
				rs := startRedis(t)
				a, sa := redisStoreServer(t, rs)
				b, _ := redisStoreServer(t, rs)
				token := sessionToken(t, serveOne(a, "POST", "/session", "", ""))
				tok := token
				if via == "url" {
					tok = "url:" + token
				}
				mustCode(t, serveOne(a, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, tok), 200) // a caches 15
				mustCode(t, serveOne(b, "POST", "/use_last", `{"op":"multiply","b":2}`, tok), 200)    // b writes 30
				before, reruns := sa.roundTrips(), sa.conflicts.Load()
				rec := serveOne(a, tt.method, tt.path, tt.body, tok)
				mustCode(t, rec, tt.code)
				if got := sa.roundTrips() - before; got != 2 {
					t.Errorf("%d round trips, want 2 (refused write, rerun's write)", got)
				}
				if got := sa.conflicts.Load() - reruns; got != 1 {
					t.Errorf("%d reruns, want 1", got)
				}
				st, ok, err := a.Session(context.Background(), token)
				if err != nil || !ok {
					t.Fatalf("session: %v %v", ok, err)
				}
				if err := tt.check(st, rec.Body.Bytes()); err != nil {
					t.Error(err)
				}
				if n := jsonValues(rec.Body.Bytes()); n != 1 {
					t.Errorf("reply %q: %d JSON values, want one, not the refused run's too", rec.Body, n)
				}
			})
		}
	}
}

// jsonValues counts the JSON values in b (-1 if it is not JSON).
func jsonValues(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		var v any
		if err := dec.Decode(&v); err == io.EOF {
			return n
		} else if err != nil {
			return -1
		}
		n++
	}
}

// A session gone from Redis (idle timeout, deleted by another process) is
// gone for a process that still has it in its cache; and a token renewal
// over a session changed elsewhere deletes the current one.
func TestCachedSessionNeverOutlivesRedis(t *testing.T) {
	tests := []struct {
		name   string
		change func(ctx context.Context, peek *redis.Client, key string)
		path   string
		code   int
	}{
		{"expired in redis: no session", func(ctx context.Context, peek *redis.Client, key string) { peek.Del(ctx, key) },
			"/use_last", http.StatusUnauthorized},
		{"changed elsewhere, then renewed: old one deleted", func(ctx context.Context, peek *redis.Client, key string) {
			peek.Append(ctx, key, " ") // other bytes (the codec ignores trailing space)
		}, "/session", http.StatusCreated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := startRedis(t)
			srv, _ := redisStoreServer(t, rs)
			peek := peekClient(t, rs)
			ctx := context.Background()
			token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
			mustCode(t, serveOne(srv, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, token), 200)
			tt.change(ctx, peek, redisSessionPrefix+token)
			mustCode(t, serveOne(srv, "POST", tt.path, `{"op":"add","b":1}`, token), tt.code)
			if n := peek.Exists(ctx, redisSessionPrefix+token).Val(); n != 0 {
				t.Errorf("old session still in redis")
			}
		})
	}
}

// A session that changes under every run of a request is a 503
// session_busy after optimisticAttempts runs, and nothing the request
// computed is written.
func TestSessionThatKeepsChangingIsA503AfterBoundedReruns(t *testing.T) {
	rs := startRedis(t)
	srv, st := redisStoreServer(t, rs)
	peek := peekClient(t, rs)
	token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
	mustCode(t, serveOne(srv, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, token), 200)
	key := redisSessionPrefix + token
	st.writer = changeBeforeEachScript{st.writer, peek, key} // another writer before every compare
	before := st.conflicts.Load()
	rec := serveOne(srv, "POST", "/use_last", `{"op":"add","b":1}`, token)
	var m map[string]string
	if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["code"] != "session_busy" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("%d %s; want 503 session_busy JSON with Retry-After", rec.Code, rec.Body)
	}
	if got := st.conflicts.Load() - before; got != optimisticAttempts {
		t.Errorf("%d runs refused, want %d", got, optimisticAttempts)
	}
	if v := peek.Get(context.Background(), key).Val(); bytes.Contains([]byte(v), []byte(`"last_result":16`)) {
		t.Errorf("the refused computation was written: %s", v)
	}
}

// changeBeforeEachScript appends a byte to a session key before every
// script: a writer that always gets there first.
type changeBeforeEachScript struct {
	redis.Scripter
	peek *redis.Client
	key  string
}

func (c changeBeforeEachScript) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	c.peek.Append(ctx, c.key, " ")
	return c.Scripter.EvalSha(ctx, sha1, keys, args...)
}

func (c changeBeforeEachScript) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	c.peek.Append(ctx, c.key, " ")
	return c.Scripter.Eval(ctx, script, keys, args...)
}

// When Redis is gone, a request is a 503 with one JSON error, not a
// half-written reply.
func TestRedisGoneIsOneJSON503(t *testing.T) {
	rs := startRedis(t)
	srv, _ := redisStoreServer(t, rs)
	token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
	rs.Close()
	for _, path := range []string{"/use_last", "/calculate"} {
		rec := serveOne(srv, "POST", path, `{"op":"add","a":1,"b":1}`, token)
		var m map[string]string
		if rec.Code != http.StatusServiceUnavailable || jsonValues(rec.Body.Bytes()) != 1 || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["code"] != "store" {
			t.Errorf("%s: %d %q; want one 503 store JSON", path, rec.Code, rec.Body)
		}
	}
}

// The cache holds at most its entries and its bytes, whatever is put in
// it; the newest entry stays, a forgotten one goes, and a session larger
// than the whole cache is not cached at all.
func TestSessionCacheStaysBounded(t *testing.T) {
	tests := []struct {
		name              string
		entries, maxBytes int
		puts, size        int // puts of size-byte sessions (token "k<i>")
	}{
		{"under both bounds", 8, 1 << 10, 5, 10},
		{"at the entry bound", 8, 1 << 10, 8, 10},
		{"far over the entry bound", 8, 1 << 10, 1000, 10},
		{"over the byte bound", 1000, 200, 100, 40},
		{"one session larger than the cache", 8, 100, 1, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newSessionCache(tt.entries, tt.maxBytes)
			for i := range tt.puts {
				c.put(fmt.Sprint("k", i), make([]byte, tt.size), true)
				if n, b := c.size(); n > tt.entries || b > tt.maxBytes {
					t.Fatalf("after %d puts: %d entries, %d bytes; bounds %d, %d", i+1, n, b, tt.entries, tt.maxBytes)
				}
			}
			last := fmt.Sprint("k", tt.puts-1)
			_, cached := c.get(last)
			if fits := tt.size+len(last) <= tt.maxBytes; cached != fits {
				t.Errorf("newest entry cached %v, want %v", cached, fits)
			}
			c.put(last, nil, false)
			if _, ok := c.get(last); ok {
				t.Error("a forgotten entry is still there")
			}
			n, b := c.size()
			want := 0
			for i := range tt.puts {
				if v, ok := c.get(fmt.Sprint("k", i)); ok {
					want += len(fmt.Sprint("k", i)) + len(v)
				}
			}
			if b != want {
				t.Errorf("%d entries counted as %d bytes, want %d", n, b, want)
			}
		})
	}
}

// One use_last on a session this process saw last (1 round trip) and on
// one another process changed meanwhile (2 round trips and a rerun).
func BenchmarkRedisRequest(b *testing.B) {
	for _, bc := range []struct {
		name    string
		changed bool
	}{{"cached", false}, {"changed-elsewhere", true}} {
		b.Run(bc.name, func(b *testing.B) {
			rs := startRedis(b)
			srv, _ := redisStoreServer(b, rs)
			other, _ := redisStoreServer(b, rs)
			token := sessionToken(b, serveOne(srv, "POST", "/session", "", ""))
			serveOne(srv, "POST", "/calculate", `{"op":"add","a":1,"b":0}`, token)
			b.ResetTimer()
			for b.Loop() {
				if bc.changed {
					b.StopTimer()
					serveOne(other, "POST", "/use_last", `{"op":"multiply","b":1}`, token)
					b.StartTimer()
				}
				if rec := serveOne(srv, "POST", "/use_last", `{"op":"multiply","b":1}`, token); rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// replyDropper is a TCP proxy to Redis that, once armed, lets the next
// compare-and-set "set" reach Redis and then closes the client's connection
// instead of passing Redis's reply back: a write done, its reply lost.
type replyDropper struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	dropped atomic.Int32
}

func (p *replyDropper) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		var drop atomic.Bool
		go func() {
			defer s.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if bytes.Contains(buf[:n], []byte("\r\n$3\r\nset\r\n")) && p.armed.CompareAndSwap(true, false) {
						drop.Store(true)
					}
					_, _ = s.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && drop.Load() {
					p.dropped.Add(1)
					s.Close()
					return
				}
				if n > 0 {
					_, _ = c.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// go-redis sends a command again when its reply is lost. A compare-and-set
// sent again finds its own first write, not the bytes it read: its write id
// (redisWritePrefix) tells it the write is done, so the request is neither
// refused nor run a second time on its own result.
func TestLostReplyOfAWriteIsNotAppliedTwice(t *testing.T) {
	rs := startRedis(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &replyDropper{ln: ln, target: rs.Addr}
	go p.serve()
	u, _ := ParseStoreURL("redis://" + ln.Addr().String())
	st, closeStore, err := OpenStore(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	srv, err := New(Config{Mode: StoreBacked, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
	mustCode(t, serveOne(srv, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, token), 200)
	p.armed.Store(true)
	rec := serveOne(srv, "POST", "/use_last", `{"op":"add","b":1}`, token)
	if p.dropped.Load() != 1 {
		t.Fatalf("%d replies dropped, want 1", p.dropped.Load())
	}
	got, _, err := srv.Session(context.Background(), token)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"result":16`) || err != nil || got.LastResult != 16 || got.Operations != 2 {
		t.Fatalf("reply %d %s, stored last=%g after %d operations (%v); want 16 after 2, once", rec.Code, rec.Body, got.LastResult, got.Operations, err)
	}
	if n := st.(*redisSessions).conflicts.Load(); n != 0 {
		t.Errorf("%d reruns: the resent write was taken for another's", n)
	}
}

// hidingStore wraps the Redis store without passing on optimistic(): the
// server cannot run its requests optimistically.
type hidingStore struct{ scs.CtxStore }

// A write that bypasses the compare-and-set (a wrapper that hides it) is
// refused, never a silent overwrite that could lose another's update.
func TestWriteOutsideACompareAndSetIsRefused(t *testing.T) {
	rs := startRedis(t)
	u, _ := ParseStoreURL(rs.URL())
	st, closeStore, err := OpenStore(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	srv, err := New(Config{Mode: StoreBacked, Store: hidingStore{st.(*redisSessions)}})
	if err != nil {
		t.Fatal(err)
	}
	token := sessionToken(t, serveOne(srv, "POST", "/session", "", "")) // a new session: created
	rec := serveOne(srv, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, token)
	var m map[string]string
	if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &m) != nil || m["code"] != "store" {
		t.Fatalf("%d %s; want 503 store", rec.Code, rec.Body)
	}
	if got, ok, _ := srv.Session(context.Background(), token); !ok || got.Operations != 0 {
		t.Errorf("session %+v %v; want the new one, unchanged", got, ok)
	}
}

// A write sent again (go-redis resends a command whose reply it lost) is
// recognised by its id and done once, whatever other writes came between:
// the script answers it from the session's recent write ids before it
// compares anything.
func TestResentWriteIsDoneOnce(t *testing.T) {
	rs := startRedis(t)
	peek := peekClient(t, rs)
	ctx := context.Background()
	const token = "tok"
	key := redisSessionPrefix + token
	run := func(want, act, id string, b []byte) int64 {
		t.Helper()
		res, err := redisCompareAndSet.Run(ctx, peek, []string{key, redisWritePrefix + token}, want, act, 60000, b, id,
			writeIDLife.Milliseconds(), recentWrites-1).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return res[0].(int64)
	}
	digest := func(s string) string { return sessionDigest([]byte(s), true) }
	tests := []struct {
		name    string
		between func() // other writes after the first send, before the resend
		want    string // the session after the resend
	}{
		{"nothing between", func() {}, "b1"},
		{"another process wrote between", func() { run(digest("b1"), "set", "other", []byte("b2")) }, "b2"},
		{"another process wrote the old bytes back", func() { run(digest("b1"), "set", "other", []byte("b0")) }, "b0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peek.Del(ctx, key, redisWritePrefix+token)
			if run("", "set", "create", []byte("b0")) != 1 || run("", "set", "create", []byte("b0")) != 1 {
				t.Fatal("a creation, sent twice, was refused")
			}
			if run(digest("b0"), "set", "mine", []byte("b1")) != 1 {
				t.Fatal("first send refused")
			}
			tt.between()
			if got := run(digest("b0"), "set", "mine", []byte("b1")); got != 1 {
				t.Errorf("resend answered %d, want 1 (done already)", got)
			}
			if v := peek.Get(ctx, key).Val(); v != tt.want {
				t.Errorf("session %q after the resend, want %q", v, tt.want)
			}
			if run(digest("zz"), "set", "stranger", []byte("b9")) != 0 {
				t.Error("a write with a new id and a wrong digest was done")
			}
		})
	}
}
