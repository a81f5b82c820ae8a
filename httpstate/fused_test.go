package httpstate

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/statelab/statelab/internal/labtest"
)

// redisStoreServer starts redis-server and a store-backed server on it;
// fused false gives the 4-round-trip path (lock, load, save, unlock).
func redisStoreServer(tb testing.TB, fused bool) (*Server, *redisSessions, *redis.Client) {
	tb.Helper()
	labtest.NeedTool(tb, "redis-server")
	rs, err := StartRedis(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rs.Close)
	u, _ := ParseStoreURL(rs.URL())
	st, closeStore, err := OpenStore(context.Background(), u)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { closeStore() })
	rstore := st.(*redisSessions)
	if !fused {
		rstore.locker.tryLoad = nil
	}
	srv, err := New(Config{Mode: StoreBacked, Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	peek := redis.NewClient(&redis.Options{Addr: rs.Addr})
	tb.Cleanup(func() { peek.Close() })
	return srv, rstore, peek
}

// serveOne serves one request with the session cookie and returns the recorder.
func serveOne(srv *Server, method, path, body, token string) *httptest.ResponseRecorder {
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

// A store-backed request on Redis costs 2 round trips with lock-and-load
// and save-and-unlock, 4 without; both leave the same state and no lock.
func TestRedisRequestCostsTwoRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fused bool
		want  int64
	}{{"fused", true, 2}, {"lock, load, save, unlock", false, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, st, peek := redisStoreServer(t, tc.fused)
			token := sessionToken(t, serveOne(srv, "POST", "/session", "", ""))
			if rec := serveOne(srv, "POST", "/calculate", `{"op":"add","a":10,"b":5}`, token); rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			for i, body := range []string{`{"op":"add","b":1}`, `{"op":"divide","b":0}`, `{"op":"multiply","b":2}`} {
				before := st.roundTrips()
				rec := serveOne(srv, "POST", "/use_last", body, token)
				if got := st.roundTrips() - before; got != tc.want {
					t.Errorf("request %d (%d): %d round trips, want %d", i, rec.Code, got, tc.want)
				}
			}
			got, ok, err := srv.Session(context.Background(), token)
			if err != nil || !ok || got.LastResult != 32 || got.Operations != 3 {
				t.Fatalf("state %+v %v %v; want last 32 after 3 operations", got, ok, err)
			}
			if n := peek.Exists(context.Background(), redisLockPrefix+token).Val(); n != 0 {
				t.Fatal("lock left behind")
			}
		})
	}
}

// Save-and-unlock writes only while the lock is ours: a request whose lock
// expired and was taken over by another writes nothing (ErrLockLost) and
// leaves the other's lock alone; an unchanged session only has its expiry
// renewed.
func TestSaveAndUnlockWritesOnlyWhileTheLockIsOurs(t *testing.T) {
	_, st, peek := redisStoreServer(t, true)
	ctx := context.Background()
	key := redisSessionPrefix + "tok"
	if err := peek.Set(ctx, key, "v1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	h, unlock, err := st.locker.lockAndLoad(ctx, "tok")
	if err != nil || !h.found || string(h.data) != "v1" {
		t.Fatalf("lock-and-load: %+v %v", h, err)
	}
	hctx := context.WithValue(ctx, heldLockKey{}, h)
	if b, found, err := st.FindCtx(hctx, "tok"); err != nil || !found || string(b) != "v1" {
		t.Fatalf("find under the lock: %q %v %v", b, found, err)
	}
	// The lock is taken over (as after its TTL, by another process).
	peek.Set(ctx, redisLockPrefix+"tok", "someone-else", time.Minute)
	if err := st.CommitCtx(hctx, "tok", []byte("v2"), time.Now().Add(time.Hour)); !errors.Is(err, ErrLockLost) {
		t.Fatalf("commit after losing the lock: %v, want ErrLockLost", err)
	}
	unlock()
	if v := peek.Get(ctx, key).Val(); v != "v1" {
		t.Fatalf("session %q after a lost lock; want v1 untouched", v)
	}
	if v := peek.Get(ctx, redisLockPrefix+"tok").Val(); v != "someone-else" {
		t.Fatalf("the other's lock is %q", v)
	}
	peek.Del(ctx, redisLockPrefix+"tok")

	// Unchanged bytes: the expiry is renewed, the value is as it was.
	h, unlock, err = st.locker.lockAndLoad(ctx, "tok")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	hctx = context.WithValue(ctx, heldLockKey{}, h)
	if err := st.CommitCtx(hctx, "tok", []byte("v1"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ttl := peek.PTTL(ctx, key).Val(); ttl < 59*time.Minute || peek.Get(ctx, key).Val() != "v1" {
		t.Fatalf("after an unchanged commit: ttl %v, value %q", ttl, peek.Get(ctx, key).Val())
	}
	if n := peek.Exists(ctx, redisLockPrefix+"tok").Val(); n != 0 {
		t.Fatal("lock not released by save-and-unlock")
	}
}

// The same request through the 4-round-trip path and the 2-round-trip path,
// each against its own redis-server.
func BenchmarkRedisRequest(b *testing.B) {
	for _, bc := range []struct {
		name  string
		fused bool
	}{{"4rtt", false}, {"2rtt", true}} {
		b.Run(bc.name, func(b *testing.B) {
			srv, _, _ := redisStoreServer(b, bc.fused)
			token := sessionToken(b, serveOne(srv, "POST", "/session", "", ""))
			serveOne(srv, "POST", "/calculate", `{"op":"add","a":1,"b":0}`, token)
			b.ResetTimer()
			for b.Loop() {
				if rec := serveOne(srv, "POST", "/use_last", `{"op":"multiply","b":1}`, token); rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
