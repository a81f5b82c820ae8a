package httpstate

import (
	"context"
	"path/filepath"
	"testing"
)

func TestRedisStoreKeepsSessionsAcrossServers(t *testing.T) {
	ctx := context.Background()
	rs := startRedis(t)
	for _, url := range []string{rs.URL(), "sqlite://" + filepath.Join(t.TempDir(), "s.db")} {
		run1, stop1, err := ServeMode(ctx, ServeSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: url})
		if err != nil {
			t.Fatal(err)
		}
		c := NewClient(run1.URL(), true)
		startSession(t, c)
		c.Close()
		stop1()
		_, stop2, err := ServeMode(ctx, ServeSpec{Mode: StoreBacked, Addr: run1.Addr.String(), Store: url})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Post(ctx, "/use_last", CalcRequest{Op: Multiply, B: num(2)})
		stop2()
		if err != nil || rep.Status != 200 || rep.Result != 30 {
			t.Errorf("%s: after a new server on the same store: %+v %v", url, rep, err)
		}
	}
}

// The go-redis store has only context-aware methods (its Find panics): the
// server's own reads of the store must go through them.
func TestRedisStoreIsReadThroughItsContextMethods(t *testing.T) {
	ctx := context.Background()
	srv, _ := redisStoreServer(t, startRedis(t))
	run, _ := Listen("127.0.0.1:0", srv)
	defer run.Close()
	c := NewClient(run.URL(), true)
	defer c.Close()
	token := startSession(t, c)
	got, ok, err := srv.Session(ctx, token)
	if err != nil || !ok || got.LastResult != 15 {
		t.Errorf("Session = %+v %v %v", got, ok, err)
	}
	if raw, ok, err := srv.RawSession(ctx, token); err != nil || !ok || len(raw) == 0 {
		t.Errorf("RawSession = %d bytes, %v %v", len(raw), ok, err)
	}
	if n := srv.SessionCount(); n != 1 {
		t.Errorf("SessionCount = %d, want 1", n)
	}
}

// The long-lived CLI server (statelab http serve) sweeps expired sessions
// out of memory; servers that are closed or killed anyway do not.
func TestServeModeSweepsExpiredSessionsOnlyForTheLongLivedServer(t *testing.T) {
	tests := []struct {
		name  string
		spec  ServeSpec
		sweep bool
	}{
		{"http serve --mode stateful", LongLived(Stateful, "127.0.0.1:0", ""), true},
		{"a server process of an experiment", ServeSpec{Mode: Stateful, Addr: "127.0.0.1:0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run, cleanup, err := ServeMode(context.Background(), tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			srv := run.handler.(*Server)
			if got := srv.sweep > 0; got != tt.sweep {
				t.Fatalf("sweeps expired sessions every %v; want sweeping %v", srv.sweep, tt.sweep)
			}
		})
	}
}

// A server counts what it asks of the store it was given: session reads and
// writes on each, SQLite's lock round trips, and on Redis one round trip a
// request (the compare-and-set write) and no rerun; nothing on its own
// memory store.
func TestStoreStatsCountWhatTheServerAskedOfItsStore(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T) string // "" for the server's own memory
		// per request of the workflow (session, calculate, use_last)
		lock, redis bool
	}{
		{"own memory", func(*testing.T) string { return "" }, false, false},
		{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "s.db") }, true, false},
		{"redis", func(t *testing.T) string { return startRedis(t).URL() }, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := ServeSpec{Mode: Stateful, Addr: "127.0.0.1:0", Store: tt.store(t)}
			if spec.Store != "" {
				spec.Mode = StoreBacked
			}
			run, cleanup, err := ServeMode(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			c := NewClient(run.URL(), true)
			defer c.Close()
			startSession(t, c)
			if _, err := c.Post(context.Background(), "/use_last", CalcRequest{Op: Multiply, B: num(2)}); err != nil {
				t.Fatal(err)
			}
			st := run.handler.(*Server).StoreStats()
			counted := spec.Store != ""
			if (st.Reads > 0 && st.Writes > 0) != counted {
				t.Errorf("%+v: reads and writes counted %v, want %v", st, st.Reads > 0 && st.Writes > 0, counted)
			}
			if (st.LockOps > 0) != tt.lock {
				t.Errorf("%+v: lock round trips counted %v, want %v", st, st.LockOps > 0, tt.lock)
			}
			if tt.redis && (st.RoundTrips != 3 || st.Reruns != 0) || !tt.redis && st.RoundTrips+st.Reruns != 0 {
				t.Errorf("%+v: want 3 Redis round trips for 3 requests and no rerun on Redis, none elsewhere", st)
			}
		})
	}
}
