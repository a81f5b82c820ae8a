package httpexp

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/benchcmp"
)

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

// A round's clock stops new workflows, never one under way, and every
// client finishes its first workflow however short the round (a busy
// machine may not schedule a client before the clock runs out): each
// round measures work done.
func TestBenchRoundCompletesAWorkflowPerClient(t *testing.T) {
	tests := []struct {
		name        string
		duration    time.Duration
		maxRequests int
	}{
		{"a round over before it starts", time.Nanosecond, 0},
		{"a request budget under a workflow a client", time.Nanosecond, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const clients = 2
			res, err := Bench(context.Background(), BenchOptions{Duration: tt.duration, Rounds: 1, Concurrency: clients, MaxRequests: tt.maxRequests, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Workflows < clients || r.Requests != r.Workflows*r.RequestsPerWorkflow || r.WPS <= 0 {
					t.Errorf("%s: %d workflows in %d requests (%g a second), want at least %d, whole", r.Kind, r.Workflows, r.Requests, r.WPS, clients)
				}
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
			var ratios []float64
			for k := range rounds {
				ratios = append(ratios, r.RoundWPS[k]/res[0].RoundWPS[k])
			}
			if want := benchcmp.Median(ratios); r.RatioToStateless != want {
				t.Errorf("ratio to stateless %g, want the median of the rounds' workflows/s ratios %g", r.RatioToStateless, want)
			}
			if len(r.RoundCPU) != rounds || r.RoundCPU[0] <= 0 {
				t.Errorf("round CPU %v, want %d rounds measured", r.RoundCPU, rounds)
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

// Each kind's figures are those of its median round by workflows per
// second, beside every round's figure, and the ratios are to the first
// kind's (stateless) in the same round, their median.
func TestMedianRounds(t *testing.T) {
	r := func(wps, rps float64) BenchResult { return BenchResult{WPS: wps, RPS: rps} }
	tests := []struct {
		name       string
		rounds     [][]BenchResult
		wantWPS    []float64
		wantRatios []float64
	}{
		{"odd rounds: the middle", [][]BenchResult{{r(10, 30), r(30, 90), r(20, 60)}, {r(5, 20), r(4, 16), r(6, 24)}}, []float64{20, 5}, []float64{1, 0.3}},
		{"even rounds: the lower middle", [][]BenchResult{{r(10, 30), r(40, 120)}, {r(8, 32), r(2, 8)}}, []float64{10, 2}, []float64{1, 0.425}},
		{"one round", [][]BenchResult{{r(10, 30)}, {r(5, 20)}}, []float64{10, 5}, []float64{1, 0.5}},
		{"ratios pair rounds, not medians", [][]BenchResult{{r(10, 30), r(100, 300), r(50, 150)}, {r(10, 30), r(100, 300), r(50, 150)}}, []float64{50, 50}, []float64{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := medianRounds(tt.rounds)
			for k := range out {
				if out[k].WPS != tt.wantWPS[k] || math.Abs(out[k].RatioToStateless-tt.wantRatios[k]) > 1e-9 || len(out[k].RoundWPS) != len(tt.rounds[k]) {
					t.Errorf("kind %d: %+v; want %g workflows/s, ratio %g, %d rounds", k, out[k], tt.wantWPS[k], tt.wantRatios[k], len(tt.rounds[k]))
				}
			}
		})
	}
}

// Redis against stateful is judged round by round, by the median of the
// rounds' ratios.
func TestRedisVsStateful(t *testing.T) {
	kind := func(name string, rounds ...float64) BenchResult { return BenchResult{Kind: name, RoundWPS: rounds} }
	tests := []struct {
		name   string
		res    []BenchResult
		median float64
		rounds int
	}{
		{"odd rounds", []BenchResult{kind("stateless", 9, 9, 9), kind("stateful", 10, 10, 10), kind("store-redis", 4, 6, 5)}, 0.5, 3},
		{"even rounds: the mean of the middle two", []BenchResult{kind("stateful", 10, 10), kind("store-redis", 4, 6)}, 0.5, 2},
		{"a slow round does not decide", []BenchResult{kind("stateful", 10, 10, 10), kind("store-redis", 6, 1, 6)}, 0.6, 3},
		{"no Redis kind", []BenchResult{kind("stateless", 9), kind("stateful", 10)}, 0, 0},
		{"a stateful round of zero is left out", []BenchResult{kind("stateful", 0, 10), kind("store-redis", 4, 5)}, 0.5, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			median, rounds := RedisVsStateful(tt.res)
			if median != tt.median || len(rounds) != tt.rounds {
				t.Fatalf("median %g of %v; want %g of %d rounds", median, rounds, tt.median, tt.rounds)
			}
		})
	}
}
