package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/statelab/statelab/experiments/httpexp"
	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/lab/sandbox"
)

// httpCommands: http serve and bench http (main.go lists every group).
func httpCommands() []*command {
	return []*command{
		{
			name: "http serve",
			args: "[--mode stateless|stateful|store|token] [--store URL] [--token-secret HEX] [--addr ADDR]",
			summary: "Serve the calculator for curl, a browser or wrk, in your own network namespace (loopback by default).\n" +
				"Stateless keeps nothing; stateful keeps sessions in memory; store keeps them in SQLite, Redis or a Redis group behind Sentinel;\n" +
				"token keeps nothing: the session rides in a signed token (JWT, HS256) the client carries, so every\n" +
				"backend given the same --token-secret serves any request (tokens over 4096 bytes are refused).\n" +
				"Open http://ADDR/form in a browser for the HTML form (its session rides in a hidden field).",
			examples: []string{
				"statelab http serve --mode stateful",
				"curl -c jar -b jar -X POST localhost:8080/session",
				`curl -c jar -b jar localhost:8080/calculate --json '{"op":"add","a":10,"b":5}'`,
				`curl -c jar -b jar localhost:8080/use_last --json '{"op":"multiply","b":2}'`,
				"curl -b jar localhost:8080/history; curl -b jar localhost:8080/stats; curl -b jar -X POST localhost:8080/undo",
				"statelab http serve --mode store --store sqlite:///tmp/sessions.db",
				"statelab http serve --mode store --store redis://127.0.0.1:6379",
				"statelab http serve --mode token --token-secret $(openssl rand -hex 32) --token-lifetime 10m",
				"statelab http serve --mode token --token-denylist    # POST /logout then revokes the session (state again)",
				"statelab http serve --mode store --store redis-sentinel://127.0.0.1:26379,127.0.0.2:26379/mymaster?wait=1",
			},
			flags: func(fs *flag.FlagSet) {
				f := &httpServeFlags
				fs.StringVar(&f.mode, "mode", "stateless", "how the server keeps state: `stateless`, stateful, store or token")
				fs.StringVar(&f.store, "store", "", "for --mode store: `URL` sqlite:///path.db, sqlite:rel.db, redis://host:port[/db] or "+
					"redis-sentinel://host:port[,host:port…]/master[?wait=N&wait_timeout=D] (the primary the Sentinels name; wait=N: each write confirmed by N replicas) "+
					"(default sqlite:statelab-sessions.db, created mode 0600)")
				fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "listen on `ADDR` (port 0 picks a free one)")
				fs.BoolVar(&f.quiet, "quiet", false, "no access log (by default one line per request on stderr: time, client, request, status, bytes, duration)")
				fs.StringVar(&f.tokenSecret, "token-secret", "", "for --mode token: the HMAC secret as `HEX`, at least 32 bytes (64 hex digits); every backend of one service "+
					"needs the same (default: a random one, good for this process only)")
				durationVar(fs, &f.tokenLifetime, "token-lifetime", 30*time.Minute, time.Second, 24*time.Hour, "for --mode token: a token is good for `D` after it was issued "+
					"(each request that changes the session issues a new one)")
				fs.BoolVar(&f.tokenDenylist, "token-denylist", false, "for --mode token: keep logged-out sessions in a denylist in memory, so POST /logout revokes "+
					"their tokens (per-client state again, lost when the process stops)")
				intVar(fs, &f.maxSessions, "max-sessions", 10000, 1, 10_000_000, "keep at most `N` live sessions; then a new session is refused with 503 session_limit "+
					"(none is evicted) until some expire (30 min idle)")
			},
			run: httpServeCmd,
		},
		{
			name: "bench http",
			args: "[--duration D] [--rounds R] [-c N] [--json]",
			summary: "Requests and workflows per second and p99 latency of the same calculator workflow against a stateless, a stateful,\n" +
				"a store-backed (SQLite) and, when redis-server is installed, a store-backed (Redis) server and two backed by a\n" +
				"Redis group behind Sentinel (writes replicated asynchronously, and confirmed by a replica: WAIT 1) in the same\n" +
				"run, with each one's ratio to stateless: the measured price of a store access on every request.",
			examples: []string{
				"statelab bench http",
				"statelab bench http --duration 9s --rounds 9 -c 16 --json",
			},
			flags: func(fs *flag.FlagSet) {
				f := &benchHTTPFlags
				durationVar(fs, &f.duration, "duration", 5*time.Second, time.Millisecond, 10*time.Minute, "measure each server kind for `D` in all")
				intVar(fs, &f.rounds, "rounds", benchcmp.DefaultRounds, 1, 100, "split each kind's time into `R` rounds, the kinds alternating in a rotated order")
				intVar(fs, &f.concurrency, "c", 8, 1, 1024, "`N` requests in flight (clients in parallel)")
				aliasVar(fs, "concurrency", "c", "`N` requests in flight; the same as -c")
				fs.BoolVar(&f.json, "json", false, "print the results as one JSON object")
			},
			run: benchHTTPCmd,
		},
	}
}

// httpServeFlags are http serve's flags.
var httpServeFlags struct {
	mode, store, addr string
	quiet             bool
	maxSessions       int
	tokenSecret       string
	tokenLifetime     time.Duration
	tokenDenylist     bool
}

// benchHTTPFlags are bench http's flags.
var benchHTTPFlags struct {
	duration    time.Duration
	rounds      int
	concurrency int
	json        bool
}

func httpServeCmd(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab http serve: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	f := httpServeFlags
	mode, store, addr := httpstate.Mode(f.mode), f.store, f.addr
	if mode != httpstate.Token {
		bad := ""
		fs.Visit(func(fl *flag.Flag) {
			if strings.HasPrefix(fl.Name, "token-") && bad == "" {
				bad = fl.Name
			}
		})
		if bad != "" {
			fmt.Fprintf(stderr, "statelab http serve: --%s is for --mode token\n", bad)
			return exitUsage
		}
	}
	switch mode {
	case httpstate.Token:
		if store != "" {
			fmt.Fprintf(stderr, "statelab http serve: --store is for --mode store (a token server keeps no store: the client carries the session)\n")
			return exitUsage
		}
		if f.tokenSecret == "" {
			fmt.Fprintf(stderr, "statelab http serve: warning: no --token-secret: a random one, so only this process can verify its tokens (a restart or another backend cannot)\n")
		} else if _, err := httpstate.ParseTokenSecret(f.tokenSecret); err != nil {
			fmt.Fprintf(stderr, "statelab http serve: --token-secret: %v\n", err)
			return exitUsage
		}
	case httpstate.Stateless, httpstate.Stateful:
		if store != "" {
			fmt.Fprintf(stderr, "statelab http serve: --store is for --mode store (a %s server keeps no store)\n", mode)
			return exitUsage
		}
	case httpstate.StoreBacked:
		if store == "" {
			store = "sqlite:statelab-sessions.db"
		}
		u, err := httpstate.ParseStoreURL(store)
		if err != nil {
			fmt.Fprintf(stderr, "statelab http serve: --store: %v\n", err)
			return exitUsage
		}
		for _, w := range httpstate.StoreFileWarnings(u) {
			fmt.Fprintf(stderr, "statelab http serve: warning: %s\n", w)
		}
		httpstate.QuietRedisLog() // its errors reach the user as statelab's
	default:
		fmt.Fprintf(stderr, "statelab http serve: --mode %q: want stateless, stateful, store or token\n", mode)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	spec := httpstate.LongLived(mode, addr, store)
	spec.MaxSessions = f.maxSessions
	spec.TokenSecret, spec.TokenLifetime, spec.TokenDenylist = f.tokenSecret, f.tokenLifetime, f.tokenDenylist
	if !f.quiet {
		spec.AccessLog = stderr
	}
	run, cleanup, err := httpstate.ServeMode(octx, spec)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "statelab http serve: %v\n", err)
		return exitUsage
	}
	defer cleanup()
	where := ""
	if u, err := httpstate.ParseStoreURL(store); err == nil && store != "" {
		where = " (sessions in " + u.String() + ")" // without a password
	}
	if mode == httpstate.Token {
		where = fmt.Sprintf(" (sessions in signed tokens the clients carry, good for %s; denylist: %t)", f.tokenLifetime, f.tokenDenylist)
	}
	fmt.Fprintf(stdout, "serving a %s calculator on %s%s; Ctrl-C stops\n", mode, run.URL(), where)
	if mode == httpstate.Token {
		fmt.Fprintf(stdout, "  curl -c jar -b jar -X POST %s/session; curl -c jar -b jar %s/calculate --json '{\"op\":\"add\",\"a\":10,\"b\":5}'\n", run.URL(), run.URL())
	} else {
		fmt.Fprintf(stdout, "  curl %s/calculate --json '{\"op\":\"add\",\"a\":10,\"b\":5}'\n  browser: %s/form\n", run.URL(), run.URL())
	}
	<-ctx.Done()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = run.Shutdown(sctx)
	return exitOK
}

// benchHTTP is what bench http was asked for.
type benchHTTP struct {
	opts   httpexp.BenchOptions
	asJSON bool
	// redisNote says why there are no Redis figures, if there are none.
	redisNote string
}

func benchHTTPCmd(fs *flag.FlagSet, args []string) int {
	b, ok := parseBenchHTTP(fs, args)
	if !ok {
		return exitUsage
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench http: %v\n", err)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	stopRedis, err := b.startRedis(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench http: %v\n", err)
		return exitUsage
	}
	defer stopRedis()
	res, err := httpexp.Bench(ctx, b.opts)
	if code := stopped(ctx, "bench http", benchCutShort); code != 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench http: %v\n", err)
		return exitFail
	}
	if b.asJSON {
		b.printJSON(res)
	} else {
		b.printText(res)
	}
	return exitOK
}

// parseBenchHTTP reads bench http's flags, refusing what is out of range.
// The flags' ranges are checked as they are parsed (flags.go).
func parseBenchHTTP(_ *flag.FlagSet, args []string) (benchHTTP, bool) {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench http: takes no arguments (got %q)\n", args)
		return benchHTTP{}, false
	}
	f := benchHTTPFlags
	return benchHTTP{opts: httpexp.BenchOptions{Duration: f.duration, Concurrency: f.concurrency, Rounds: f.rounds},
		asJSON: f.json}, true
}

// startRedis starts a redis-server for the Redis kind, or notes that
// redis-server is not installed; stop stops it.
func (b *benchHTTP) startRedis(ctx context.Context) (stop func(), err error) {
	rs, err := httpstate.StartRedis(ctx)
	switch {
	case err == nil:
		b.opts.Redis = rs.URL()
		// And a replicated group: a primary, two replicas, three Sentinels.
		g, err := httpexp.StartSentinelGroup(ctx)
		if err != nil {
			rs.Close()
			return nil, err
		}
		b.opts.Sentinel = g.URL(0)
		return func() { g.Close(); rs.Close() }, nil
	case errors.Is(err, httpstate.ErrNoRedis):
		b.redisNote = "redis-server is not installed: no Redis figures (apt-get install redis-server)"
		return func() {}, nil
	}
	return nil, err
}

// redisTarget is the Redis kind's target: at least half the workflows per
// second of in-memory stateful, the median of the rounds' ratios.
const redisTarget = 0.5

// printJSON prints the results as one JSON object.
func (b *benchHTTP) printJSON(res []httpexp.BenchResult) {
	redisVsStateful, roundRatios := httpexp.RedisVsStateful(res)
	_ = json.NewEncoder(stdout).Encode(map[string]any{
		"duration_s": b.opts.Duration.Seconds(), "concurrency": b.opts.Concurrency, "results": res,
		"redis_vs_stateful": redisVsStateful, "redis_vs_stateful_rounds": roundRatios, "rounds": b.opts.Rounds,
		"target_redis_vs_stateful": redisTarget, "target_met": redisVsStateful >= redisTarget,
		"ratio_basis": "workflows per second", "note": b.redisNote, "comparisons": httpexp.Comparisons(res),
	})
}

// printText prints the results as a table, what a store-backed request
// costs, and the Redis verdict. Kinds are compared on workflows per
// second: the stateful and store-backed workflow has 4 requests (it
// starts a session), the stateless one 3.
func (b *benchHTTP) printText(res []httpexp.BenchResult) {
	fmt.Fprintf(stdout, "calculator workflow ((10 + 5) × 2) − 3, %d clients, %s per server kind in %d alternating rounds (figures: each kind's median round)\n\n",
		b.opts.Concurrency, b.opts.Duration, b.opts.Rounds)
	fmt.Fprintf(stdout, "%-20s %9s %9s %9s %10s %9s %9s %12s\n", "kind", "req/flow", "requests", "req/s", "flows/s", "p50 ms", "p99 ms", "÷ stateless")
	for _, r := range res {
		fmt.Fprintf(stdout, "%-20s %9d %9d %9.0f %10.0f %9.3f %9.3f %12.2f\n", r.Kind, r.RequestsPerWorkflow, r.Requests, r.RPS, r.WPS, r.P50MS, r.P99MS, r.RatioToStateless)
	}
	fmt.Fprintf(stdout, "\n÷ stateless is the median of the rounds' ratios of workflows per second (stateless: 3 requests a workflow; the others 4, incl. POST /session).\n")
	fmt.Fprintf(stdout, "Round by round (CPU: this process's, clients and server; a Redis server's own is not counted):\n")
	for _, c := range httpexp.Comparisons(res) {
		fmt.Fprintf(stdout, "  %s\n", c)
	}
	for _, r := range res {
		if r.StoreReadsPerRequest == 0 && r.StoreWritesPerRequest == 0 {
			continue
		}
		if r.RoundTripsPerRequest > 0 {
			fmt.Fprintf(stdout, "%s costs, per request: %.2f round trips to Redis (session reads from the process's cache, checked by each write's compare-and-set), %.3f reruns on a changed session\n",
				r.Kind, r.RoundTripsPerRequest, r.RerunsPerRequest)
			continue
		}
		fmt.Fprintf(stdout, "%s costs, per request: %.2f store reads + %.2f store writes + %.2f lock round trips (take/release)\n",
			r.Kind, r.StoreReadsPerRequest, r.StoreWritesPerRequest, r.LockOpsPerRequest)
	}
	if redisVsStateful, roundRatios := httpexp.RedisVsStateful(res); len(roundRatios) > 0 {
		verdict := "met"
		if redisVsStateful < redisTarget {
			verdict = "NOT met"
		}
		each := make([]string, len(roundRatios))
		for i, r := range roundRatios {
			each[i] = fmt.Sprintf("%.0f%%", 100*r)
		}
		fmt.Fprintf(stdout, "\nstore-backed on Redis runs at %.0f%% of in-memory stateful, in workflows per second, median of rounds %s (target ≥ 50%%: %s)\n",
			100*redisVsStateful, strings.Join(each, ", "), verdict)
	}
	if b.redisNote != "" {
		fmt.Fprintf(stdout, "\n%s\n", b.redisNote)
	}
}

// httpExperiments are the http/ experiments of statelab's catalogue.
func httpExperiments() []lab.Experiment { return httpexp.Experiments() }
