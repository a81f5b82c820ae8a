package httpexp

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

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab/benchcmp"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Duration is each server kind's measuring time in all, split evenly
	// across Rounds (default 5s).
	Duration time.Duration
	// Rounds alternate the kinds, each round in another order (rotated),
	// so that a slow moment of a shared machine falls on every kind;
	// default benchcmp.DefaultRounds. Each kind's figures are those of its
	// median round; every ratio is taken round by round.
	Rounds      int
	Concurrency int // clients in parallel; default 8
	// MaxRequests is per kind in all rounds, a bound whatever the
	// duration; default 1e6. A round's budget is spent a whole workflow
	// at a time and holds at least one workflow a client.
	MaxRequests int
	// Redis, when set, adds the store-backed kind on that Redis URL.
	Redis string
	// Sentinel, when set, adds the store-backed kinds on that
	// redis-sentinel URL (a primary with replicas): writes replicated
	// asynchronously, and writes each confirmed by a replica (wait=1).
	Sentinel string
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
	RatioToStateless        float64 `json:"ratio_to_stateless"` // workflows per second, median of the per-round ratios
	RequestRatioToStateless float64 `json:"request_ratio_to_stateless"`
	// RoundWPS is workflows per second in each round, in round order (the
	// same round of every kind ran at about the same time).
	RoundWPS []float64 `json:"round_workflows_per_second"`
	// RoundWorkflows and RoundCPU are each round's whole workflows and
	// the process's CPU time over it in seconds (clients and server; a
	// Redis server's own CPU is not counted), in round order.
	RoundWorkflows []int     `json:"round_workflows"`
	RoundCPU       []float64 `json:"round_cpu_s"`
	// CPU is the process's CPU time of the median round, seconds.
	CPU float64 `json:"cpu_s"`
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
// store-backed (Redis) server, and with opts.Sentinel two backed by a
// replicated Redis group (writes asynchronous, and confirmed by a replica),
// each on a loopback socket, and reports
// requests and workflows per second and latency. It measures the price of
// "a store read and write on every request" (and the cross-process lock or
// compare-and-set that keeps concurrent requests from losing updates).
func Bench(ctx context.Context, opts BenchOptions) ([]BenchResult, error) {
	if opts.Duration <= 0 {
		opts.Duration = 5 * time.Second
	}
	if opts.Rounds <= 0 {
		opts.Rounds = benchcmp.DefaultRounds
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
	kinds := []benchKindSpec{
		{"stateless", httpstate.ServeSpec{Mode: httpstate.Stateless}},
		{"stateful", httpstate.ServeSpec{Mode: httpstate.Stateful}},
		{"store-sqlite", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Store: "sqlite://" + filepath.Join(dir, "bench.db")}},
	}
	if opts.Redis != "" {
		kinds = append(kinds, benchKindSpec{"store-redis", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Store: opts.Redis}})
	}
	if opts.Sentinel != "" {
		kinds = append(kinds,
			benchKindSpec{"store-sentinel", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Store: opts.Sentinel}},
			benchKindSpec{"store-sentinel-wait1", httpstate.ServeSpec{Mode: httpstate.StoreBacked, Store: opts.Sentinel + "?wait=1"}})
	}
	round := opts
	round.Duration = max(opts.Duration/time.Duration(opts.Rounds), time.Millisecond)
	round.MaxRequests = max(1, opts.MaxRequests/opts.Rounds)
	rounds := make([][]BenchResult, len(kinds)) // [kind][round]
	err := benchcmp.Interleave(opts.Rounds, len(kinds), func(_, k int) error {
		var r BenchResult
		cpu, _, err := benchcmp.Measure(func() error {
			var err error
			r, err = benchKind(ctx, kinds[k].spec, round)
			return err
		})
		if err != nil {
			return fmt.Errorf("httpexp: bench %s: %w", kinds[k].name, err)
		}
		r.Kind, r.CPU = kinds[k].name, cpu.Seconds()
		rounds[k] = append(rounds[k], r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return medianRounds(rounds), nil
}

// medianRounds gives each kind the figures of its median round (of an
// even count, the lower middle) by workflows per second, with every
// round's workflows per second, workflows and CPU, and the ratios to the
// first kind (stateless): the median of the ratios taken round by round
// (the same round of every kind ran at about the same time).
func medianRounds(rounds [][]BenchResult) []BenchResult {
	out := make([]BenchResult, len(rounds))
	for k, rs := range rounds {
		byWPS := slices.Clone(rs)
		slices.SortFunc(byWPS, func(a, b BenchResult) int { return cmp.Compare(a.WPS, b.WPS) })
		out[k] = byWPS[(len(byWPS)-1)/2]
		for _, r := range rs {
			out[k].RoundWPS = append(out[k].RoundWPS, r.WPS)
			out[k].RoundWorkflows = append(out[k].RoundWorkflows, r.Workflows)
			out[k].RoundCPU = append(out[k].RoundCPU, r.CPU)
		}
	}
	for k := range out {
		var wps, rps []float64
		for i := range min(len(rounds[k]), len(rounds[0])) {
			if b := rounds[0][i]; b.WPS > 0 && b.RPS > 0 {
				wps = append(wps, rounds[k][i].WPS/b.WPS)
				rps = append(rps, rounds[k][i].RPS/b.RPS)
			}
		}
		out[k].RatioToStateless, out[k].RequestRatioToStateless = benchcmp.Median(wps), benchcmp.Median(rps)
	}
	return out
}

// Comparisons are every kind against stateless and, when both ran, the
// store-backed Redis kind against in-memory stateful: workflows per second
// and CPU per workflow, round by round.
func Comparisons(res []BenchResult) []benchcmp.Comparison {
	find := func(kind string) *BenchResult {
		for i := range res {
			if res[i].Kind == kind {
				return &res[i]
			}
		}
		return nil
	}
	compare := func(lab, base *BenchResult) benchcmp.Comparison {
		var rounds []benchcmp.Round
		side := func(r *BenchResult, i int) benchcmp.Side {
			var cpu float64
			if i < len(r.RoundCPU) {
				cpu = r.RoundCPU[i]
			}
			var flows float64
			if i < len(r.RoundWorkflows) {
				flows = float64(r.RoundWorkflows[i])
			}
			return benchcmp.NewSide(r.RoundWPS[i], flows, cpu)
		}
		for i := range min(len(lab.RoundWPS), len(base.RoundWPS)) {
			rounds = append(rounds, benchcmp.Round{Lab: side(lab, i), Baseline: side(base, i)})
		}
		return benchcmp.Compare(lab.Kind, base.Kind, "workflows/s", "workflow", rounds)
	}
	var out []benchcmp.Comparison
	stateless := find("stateless")
	for i := range res {
		if stateless != nil && res[i].Kind != "stateless" {
			out = append(out, compare(&res[i], stateless))
		}
	}
	if redis, stateful := find("store-redis"), find("stateful"); redis != nil && stateful != nil {
		out = append(out, compare(redis, stateful))
	}
	return out
}

// RedisVsStateful compares the store-backed Redis kind with the in-memory
// stateful one round by round (the two ran seconds apart in a round) in
// workflows per second: each round's ratio, and their median, the
// verdict (of an even count, the mean of the middle two). Without both
// kinds there is none: 0 and nil.
func RedisVsStateful(res []BenchResult) (median float64, rounds []float64) {
	var stateful, redis *BenchResult
	for i := range res {
		switch res[i].Kind {
		case "stateful":
			stateful = &res[i]
		case "store-redis":
			redis = &res[i]
		}
	}
	if stateful == nil || redis == nil {
		return 0, nil
	}
	for i := range min(len(stateful.RoundWPS), len(redis.RoundWPS)) {
		if stateful.RoundWPS[i] > 0 {
			rounds = append(rounds, redis.RoundWPS[i]/stateful.RoundWPS[i])
		}
	}
	if len(rounds) == 0 {
		return 0, nil
	}
	sorted := slices.Clone(rounds)
	slices.Sort(sorted)
	mid := len(sorted) / 2
	if len(sorted)%2 == 0 {
		return (sorted[mid-1] + sorted[mid]) / 2, rounds
	}
	return sorted[mid], rounds
}

// benchKindSpec is a server kind the bench measures.
type benchKindSpec struct {
	name string
	spec httpstate.ServeSpec
}

// benchKind serves one kind on loopback and measures it, with what each
// request asked of the kind's store, if it has one.
func benchKind(ctx context.Context, spec httpstate.ServeSpec, opts BenchOptions) (BenchResult, error) {
	cfg := httpstate.Config{Mode: spec.Mode}
	if spec.Store != "" {
		u, err := httpstate.ParseStoreURL(spec.Store)
		if err != nil {
			return BenchResult{}, err
		}
		st, closeStore, err := httpstate.OpenStore(ctx, u)
		if err != nil {
			return BenchResult{}, err
		}
		defer closeStore()
		cfg.Store = st
	}
	srv, err := httpstate.New(cfg)
	if err != nil {
		return BenchResult{}, err
	}
	defer srv.Close()
	run, err := httpstate.Listen("127.0.0.1:0", srv)
	if err != nil {
		return BenchResult{}, err
	}
	defer run.Close()
	r, err := benchOne(ctx, run.URL(), spec.Mode, opts)
	if err != nil || spec.Store == "" {
		return r, err
	}
	st := srv.StoreStats()
	n := float64(max(1, r.Requests))
	r.StoreReadsPerRequest = float64(st.Reads) / n
	r.StoreWritesPerRequest = float64(st.Writes) / n
	r.LockOpsPerRequest = float64(st.LockOps) / n
	r.RoundTripsPerRequest = float64(st.RoundTrips) / n
	r.RerunsPerRequest = float64(st.Reruns) / n
	return r, nil
}

var errBenchStep = errors.New("httpexp: bench step failed")

// benchOne measures one kind at base: opts.Concurrency clients, each
// running the workflow again and again until opts.Duration is up.
//
// A round measures work done, not time: the clock stops new workflows,
// never one under way, and each client's first workflow runs whatever
// the clock says, so a round of a busy machine that scheduled a client
// late still measures at least one whole workflow a client (and its
// time). Requests are never cut short either, so no server sees a
// cancelled request mid-commit; ctx alone interrupts.
func benchOne(ctx context.Context, base string, mode httpstate.Mode, opts BenchOptions) (BenchResult, error) {
	deadline := time.Now().Add(opts.Duration)
	over := func() bool { return ctx.Err() != nil || time.Now().After(deadline) }
	steps := len(workflowFor(mode))
	tally := &benchTally{budget: max(opts.MaxRequests, opts.Concurrency*steps)}
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Go(func() { tally.add(benchClient(ctx, base, mode, over, tally.take)) })
	}
	wg.Wait()
	return tally.result(mode, time.Since(start))
}

// benchTally gathers the clients' measurements.
type benchTally struct {
	mu          sync.Mutex
	budget      int // requests left to send, taken a workflow at a time
	lat         []time.Duration
	errs, flows int
	firstErr    error
}

// take reserves n requests (a workflow's) of the budget, or none.
func (t *benchTally) take(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.budget < n {
		return false
	}
	t.budget -= n
	return true
}

// add counts one client's measurements.
func (t *benchTally) add(c clientTally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lat = append(t.lat, c.lat...)
	t.errs += c.bad
	t.flows += c.done
	if t.firstErr == nil {
		t.firstErr = c.err
	}
}

// result turns the measurements into figures: refused when no request
// completed or more than 1% failed.
func (t *benchTally) result(mode httpstate.Mode, elapsed time.Duration) (BenchResult, error) {
	lat := t.lat
	if len(lat) == 0 {
		return BenchResult{}, fmt.Errorf("no request completed: %v", t.firstErr)
	}
	if t.errs > len(lat)/100 {
		return BenchResult{}, fmt.Errorf("%d of %d requests failed, first: %v", t.errs, len(lat), t.firstErr)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	return BenchResult{Requests: len(lat), Errors: t.errs, RPS: float64(len(lat)) / elapsed.Seconds(),
		RequestsPerWorkflow: len(workflowFor(mode)), Workflows: t.flows, WPS: float64(t.flows) / elapsed.Seconds(),
		P50MS: q(0.50), P99MS: q(0.99)}, nil
}

// clientTally is what one bench client measured.
type clientTally struct {
	lat       []time.Duration
	bad, done int // failed requests; whole workflows
	err       error
}

// benchClient runs the workflow on one keep-alive connection, the first
// time whatever over says, then until over or until take refuses a
// workflow's requests; a workflow under way always runs to its end (or
// its first failed step). A stateful workflow starts a fresh session each
// time round.
func benchClient(ctx context.Context, base string, mode httpstate.Mode, over func() bool, take func(n int) bool) (out clientTally) {
	c := httpstate.NewClient(base, mode != httpstate.Stateless)
	defer c.Close()
	steps := workflowFor(mode)
	for first := true; ctx.Err() == nil && (first || !over()) && take(len(steps)); first = false {
		prev := 0.0
		for i, next := range steps {
			st := next(prev)
			var body any
			if st.body != nil {
				body = st.body
			}
			t0 := time.Now()
			rep, err := c.Post(ctx, st.path, body)
			if ctx.Err() != nil {
				return out // interrupted: not a measurement
			}
			out.lat = append(out.lat, time.Since(t0))
			if err != nil || rep.Status >= 300 {
				out.bad++
				if out.err == nil {
					out.err = fmt.Errorf("%w: %s: %d %v", errBenchStep, st.path, rep.Status, err)
				}
				break
			}
			prev = rep.Result
			if i == len(steps)-1 {
				out.done++ // a whole workflow, every step answered
			}
		}
	}
	return out
}
