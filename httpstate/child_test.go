package httpstate

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// A server process of this very binary: it listens, answers, and dies of
// SIGKILL for real.
func TestChildServerDiesOfSIGKILL(t *testing.T) {
	ctx := context.Background()
	ch, err := StartChild(ctx, ChildSpec{Mode: Stateful, Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop()
	c := NewClient(ch.URL(), true)
	defer c.Close()
	startSession(t, c)
	killed, err := ch.Kill()
	if err != nil || !killed {
		t.Fatalf("kill -9: died of SIGKILL %v, %v", killed, err)
	}
	c.Close()
	if _, err := c.Post(ctx, "/calculate", CalcRequest{Op: Add, A: num(1), B: num(1)}); err == nil {
		t.Error("a killed server still answers")
	}
}

func TestChildRefusesABadSpec(t *testing.T) {
	tests := []struct {
		name string
		spec ChildSpec
	}{
		{"unknown mode", ChildSpec{Mode: "sometimes", Addr: "127.0.0.1:0"}},
		{"store mode without a store", ChildSpec{Mode: StoreBacked, Addr: "127.0.0.1:0"}},
		{"bad store URL", ChildSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: "ftp://x"}},
		{"address outside the lab", ChildSpec{Mode: Stateless, Addr: "192.0.2.1:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ch, err := StartChild(context.Background(), tt.spec); err == nil {
				ch.Stop()
				t.Fatal("started")
			}
		})
	}
}

func TestBenchMeasuresEveryKind(t *testing.T) {
	res, err := Bench(context.Background(), BenchOptions{Duration: 150 * time.Millisecond, Concurrency: 2, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Kind != "stateless" || res[0].RatioToStateless != 1 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res {
		if r.Requests == 0 || r.RPS <= 0 || r.P99MS < r.P50MS {
			t.Errorf("%s: %+v", r.Kind, r)
		}
	}
}

func TestRedisStoreKeepsSessionsAcrossServers(t *testing.T) {
	ctx := context.Background()
	rs := startRedis(t)
	for _, url := range []string{rs.URL(), "sqlite://" + filepath.Join(t.TempDir(), "s.db")} {
		run1, stop1, err := ServeMode(ctx, ChildSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: url})
		if err != nil {
			t.Fatal(err)
		}
		c := NewClient(run1.URL(), true)
		startSession(t, c)
		c.Close()
		stop1()
		run2, stop2, err := ServeMode(ctx, ChildSpec{Mode: StoreBacked, Addr: run1.Addr.String(), Store: url})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := c.Post(ctx, "/use_last", CalcRequest{Op: Multiply, B: num(2)})
		stop2()
		_ = run2
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
	if n := srv.SessionCount(); n != 1 {
		t.Errorf("SessionCount = %d, want 1", n)
	}
}

// The long-lived CLI server (statelab http serve) sweeps expired sessions
// out of memory; experiment children, killed anyway, do not.
func TestServeModeSweepsExpiredSessionsOnlyForTheLongLivedServer(t *testing.T) {
	tests := []struct {
		name  string
		spec  ChildSpec
		sweep bool
	}{
		{"http serve --mode stateful", LongLived(Stateful, "127.0.0.1:0", ""), true},
		{"experiment child", ChildSpec{Mode: Stateful, Addr: "127.0.0.1:0"}, false},
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

// bench compares kinds on workflows per second (the stateless workflow is 3
// requests, the others 4), each kind's median of alternating rounds, and
// states what a store-backed request costs: on Redis, with one process,
// exactly one round trip per request (the compare-and-set write) and no
// rerun.
func TestBenchReportsWorkflowsPerSecondAndStoreCostPerRequest(t *testing.T) {
	rs := startRedis(t)
	const rounds = 3
	res, err := Bench(context.Background(), BenchOptions{Duration: 300 * time.Millisecond, Rounds: rounds, Concurrency: 2, Dir: t.TempDir(), Redis: rs.URL()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind      string
		perFlow   int
		storeLock bool // SQLite: reads, writes and lock round trips
		redis     bool // Redis: one round trip a request
	}{
		{"stateless", 3, false, false},
		{"stateful", 4, false, false},
		{"store-sqlite", 4, true, false},
		{"store-redis", 4, false, true},
	}
	if len(res) != len(tests) {
		t.Fatalf("%d kinds measured, want %d", len(res), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			r := res[i]
			if r.Kind != tt.kind || r.RequestsPerWorkflow != tt.perFlow || r.Workflows == 0 || r.WPS <= 0 || r.WPS > r.RPS {
				t.Fatalf("%+v", r)
			}
			if len(r.RoundWPS) != rounds || !slices.Contains(r.RoundWPS, r.WPS) {
				t.Errorf("rounds %v: want %d, the reported figure among them", r.RoundWPS, rounds)
			}
			if want := r.WPS / res[0].WPS; r.RatioToStateless != want {
				t.Errorf("ratio to stateless %g, want workflows/s ratio %g", r.RatioToStateless, want)
			}
			if got := r.StoreReadsPerRequest > 0 && r.StoreWritesPerRequest > 0 && r.LockOpsPerRequest > 0; got != tt.storeLock {
				t.Errorf("store and lock cost measured %v (%+v), want %v", got, r, tt.storeLock)
			}
			if got := r.RoundTripsPerRequest; tt.redis != (got > 0) || (tt.redis && (got != 1 || r.RerunsPerRequest != 0)) {
				t.Errorf("%v Redis round trips and %v reruns per request (%d requests); want 1 and 0 for Redis, none otherwise", got, r.RerunsPerRequest, r.Requests)
			}
		})
	}
}
