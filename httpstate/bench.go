package httpstate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Duration is each server kind's measuring time in all, split evenly
	// across Rounds (default 3s).
	Duration time.Duration
	// Rounds alternate the kinds, each round in another order (rotated),
	// so that a slow moment of a shared machine falls on every kind;
	// default 3. Each kind's figures are those of its median round.
	Rounds      int
	Concurrency int // clients in parallel; default 8
	MaxRequests int // per kind in all rounds, a bound whatever the duration; default 1e6
	// Redis, when set, adds the store-backed kind on that Redis URL.
	Redis string
	// Dir holds the SQLite file; default a temporary directory.
	Dir string
}

// BenchResult is one server kind's figures. The stateful and store-backed
// workflow is 4 requests (it starts a session), the stateless one 3, so
// kinds are compared on workflows per second: RatioToStateless is that
// ratio, RequestRatioToStateless the per-request one.
type BenchResult struct {
	Kind                    string  `json:"kind"`
	Requests                int     `json:"requests"`
	Errors                  int     `json:"errors"`
	RPS                     float64 `json:"requests_per_second"`
	RequestsPerWorkflow     int     `json:"requests_per_workflow"`
	Workflows               int     `json:"workflows"`
	WPS                     float64 `json:"workflows_per_second"`
	P50MS                   float64 `json:"p50_ms"`
	P99MS                   float64 `json:"p99_ms"`
	RatioToStateless        float64 `json:"ratio_to_stateless"` // workflows per second
	RequestRatioToStateless float64 `json:"request_ratio_to_stateless"`
	// RoundWPS is workflows per second in each round, in round order (the
	// same round of every kind ran at about the same time).
	RoundWPS []float64 `json:"round_workflows_per_second"`
	// What a store-backed request costs, measured: session reads and
	// writes through scs, and SQLite's lock round trips (take attempts and
	// releases) per request.
	StoreReadsPerRequest  float64 `json:"store_reads_per_request,omitempty"`
	StoreWritesPerRequest float64 `json:"store_writes_per_request,omitempty"`
	LockOpsPerRequest     float64 `json:"lock_ops_per_request,omitempty"`
	// RoundTripsPerRequest is every command sent to Redis; its reads are
	// answered from the process's cache and checked by the write's
	// compare-and-set, so most requests cost that one write.
	// RerunsPerRequest is how often a compare-and-set found the session
	// changed by another request and the request ran again.
	RoundTripsPerRequest float64 `json:"store_round_trips_per_request,omitempty"`
	RerunsPerRequest     float64 `json:"reruns_per_request,omitempty"`
}

// Bench runs the same calculator workflow ((10 + 5) × 2) − 3 against a
// stateless, a stateful, a store-backed (SQLite) and, with opts.Redis, a
// store-backed (Redis) server, each on a loopback socket, and reports
// requests and workflows per second and latency. It measures the price of
// "a store read and write on every request" (and the cross-process lock or
// compare-and-set that keeps concurrent requests from losing updates).
func Bench(ctx context.Context, opts BenchOptions) ([]BenchResult, error) {
	if opts.Duration <= 0 {
		opts.Duration = 3 * time.Second
	}
	if opts.Rounds <= 0 {
		opts.Rounds = 3
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.MaxRequests <= 0 {
		opts.MaxRequests = 1_000_000
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "statelab-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	kinds := []struct {
		name string
		spec ChildSpec
	}{
		{"stateless", ChildSpec{Mode: Stateless}},
		{"stateful", ChildSpec{Mode: Stateful}},
		{"store-sqlite", ChildSpec{Mode: StoreBacked, Store: "sqlite://" + filepath.Join(dir, "bench.db")}},
	}
	if opts.Redis != "" {
		kinds = append(kinds, struct {
			name string
			spec ChildSpec
		}{"store-redis", ChildSpec{Mode: StoreBacked, Store: opts.Redis}})
	}
	round := opts
	round.Duration = max(opts.Duration/time.Duration(opts.Rounds), time.Millisecond)
	round.MaxRequests = max(1, opts.MaxRequests/opts.Rounds)
	rounds := make([][]BenchResult, len(kinds)) // [kind][round]
	for i := range opts.Rounds {
		for j := range kinds {
			k := (i + j) % len(kinds)
			r, err := benchKind(ctx, kinds[k].spec, round)
			if err != nil {
				return nil, fmt.Errorf("httpstate: bench %s: %w", kinds[k].name, err)
			}
			r.Kind = kinds[k].name
			rounds[k] = append(rounds[k], r)
		}
	}
	out := make([]BenchResult, len(kinds))
	for k, rs := range rounds {
		byWPS := slices.Clone(rs)
		slices.SortFunc(byWPS, func(a, b BenchResult) int { return cmp.Compare(a.WPS, b.WPS) })
		out[k] = byWPS[(len(byWPS)-1)/2] // the median round; of an even count, the lower middle
		for _, r := range rs {
			out[k].RoundWPS = append(out[k].RoundWPS, r.WPS)
		}
	}
	for i := range out {
		if out[0].WPS > 0 {
			out[i].RatioToStateless = out[i].WPS / out[0].WPS
		}
		if out[0].RPS > 0 {
			out[i].RequestRatioToStateless = out[i].RPS / out[0].RPS
		}
	}
	return out, nil
}

// benchKind serves one kind on loopback, its store (if any) counted, and
// measures it.
func benchKind(ctx context.Context, spec ChildSpec, opts BenchOptions) (BenchResult, error) {
	cfg := Config{Mode: spec.Mode}
	var counted *countingStore
	if spec.Store != "" {
		u, err := ParseStoreURL(spec.Store)
		if err != nil {
			return BenchResult{}, err
		}
		st, closeStore, err := OpenStore(ctx, u)
		if err != nil {
			return BenchResult{}, err
		}
		defer closeStore()
		counted = &countingStore{Store: st}
		cfg.Store = counted
	}
	srv, err := New(cfg)
	if err != nil {
		return BenchResult{}, err
	}
	defer srv.Close()
	run, err := Listen("127.0.0.1:0", srv)
	if err != nil {
		return BenchResult{}, err
	}
	defer run.Close()
	r, err := benchOne(ctx, run.URL(), spec.Mode, opts)
	if err != nil || counted == nil {
		return r, err
	}
	n := float64(max(1, r.Requests))
	r.StoreReadsPerRequest = float64(counted.finds.Load()) / n
	r.StoreWritesPerRequest = float64(counted.commits.Load()) / n
	if sl, ok := srv.locker.(*sharedLocker); ok {
		r.LockOpsPerRequest = float64(sl.ops.Load()) / n
	}
	if rs := counted.optimistic(); rs != nil {
		r.RoundTripsPerRequest = float64(rs.roundTrips()) / n
		r.RerunsPerRequest = float64(rs.conflicts.Load()) / n
	}
	return r, nil
}

var errBenchStep = errors.New("httpstate: bench step failed")

func benchOne(ctx context.Context, base string, mode Mode, opts BenchOptions) (BenchResult, error) {
	// Requests are never cut short: the clock stops new ones, so every
	// measured request ran to completion and no server sees a cancelled
	// request mid-commit.
	deadline := time.Now().Add(opts.Duration)
	over := func() bool { return ctx.Err() != nil || time.Now().After(deadline) }
	var (
		mu       sync.Mutex
		lat      []time.Duration
		errs     int
		flows    int
		budget   = opts.MaxRequests
		firstErr error
	)
	take := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if budget <= 0 {
			return false
		}
		budget--
		return true
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < opts.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad, done := 0, 0
			var werr error
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				errs += bad
				flows += done
				if firstErr == nil {
					firstErr = werr
				}
				mu.Unlock()
			}()
			// One keep-alive connection per client; a stateful workflow
			// starts a fresh session each time round.
			c := NewClient(base, mode != Stateless)
			defer c.Close()
			for !over() {
				prev := 0.0
				steps := workflowFor(mode)
				for i, next := range steps {
					if over() || !take() {
						return
					}
					st := next(prev)
					var body any
					if st.body != nil {
						body = st.body
					}
					t0 := time.Now()
					rep, err := c.Post(ctx, st.path, body)
					if ctx.Err() != nil {
						return // interrupted: not a measurement
					}
					mine = append(mine, time.Since(t0))
					if err != nil || rep.Status >= 300 {
						bad++
						if werr == nil {
							werr = fmt.Errorf("%w: %s: %d %v", errBenchStep, st.path, rep.Status, err)
						}
						break
					}
					prev = rep.Result
					if i == len(steps)-1 {
						done++ // a whole workflow, every step answered
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(lat) == 0 {
		return BenchResult{}, fmt.Errorf("no request completed: %v", firstErr)
	}
	if errs > len(lat)/100 {
		return BenchResult{}, fmt.Errorf("%d of %d requests failed, first: %v", errs, len(lat), firstErr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	return BenchResult{Requests: len(lat), Errors: errs, RPS: float64(len(lat)) / elapsed.Seconds(),
		RequestsPerWorkflow: len(workflowFor(mode)), Workflows: flows, WPS: float64(flows) / elapsed.Seconds(),
		P50MS: q(0.50), P99MS: q(0.99)}, nil
}
