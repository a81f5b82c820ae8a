package dnsexp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/udpdns"
)

// ErrNoDnsperf: dnsperf is not installed.
var ErrNoDnsperf = errors.New("dnsexp: dnsperf not found (apt-get install dnsperf)")

// BenchResult is one load run against a server.
type BenchResult struct {
	Tool      string  `json:"tool"`
	Completed int     `json:"completed"`
	Lost      int     `json:"lost"`
	Seconds   float64 `json:"seconds"`
	QPS       float64 `json:"qps"`
	P50MS     float64 `json:"p50_ms,omitempty"`
	P99MS     float64 `json:"p99_ms,omitempty"`
	AvgMS     float64 `json:"avg_ms"`
	// CPUSeconds is the client's CPU time (user + system) over the run:
	// dnsperf's from its rusage, udpdns's this process's (the server runs
	// in a process of its own, counted on neither side).
	CPUSeconds float64 `json:"cpu_s"`
	// CPUPerQueryUS is CPUSeconds per completed query, in µs.
	CPUPerQueryUS float64 `json:"cpu_us_per_query"`
}

// benchName is the i-th name of the bench's query list (as dnsperf reads it).
func benchName(i int) string { return benchNames[i%len(benchNames)] }

// benchNames are the bench's 1000 query names, formatted once (dnsperf too
// reads them from a file made once).
var benchNames = func() []string {
	n := make([]string, 1000)
	for i := range n {
		n[i] = fmt.Sprintf("b%d.%s", i, udpdns.SynthSuffix)
	}
	return n
}()

// benchClient drives udpdns's client (configured by server) for d with
// concurrency goroutines, each keeping one query in flight.
func benchClient(ctx context.Context, server udpdns.Config, d time.Duration, concurrency int) (BenchResult, error) {
	c, err := udpdns.NewClient(server)
	if err != nil {
		return BenchResult{}, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []float64
	lost := 0
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			myLost := 0
			m := new(dns.Msg)
			for i := w; ctx.Err() == nil; i += concurrency {
				m.SetQuestion(benchName(i), dns.TypeA)
				t0 := time.Now()
				if _, err := c.Exchange(ctx, m); err != nil {
					if ctx.Err() == nil {
						myLost++
					}
					continue
				}
				mine = append(mine, float64(time.Since(t0).Nanoseconds())/1e6)
			}
			mu.Lock()
			lat = append(lat, mine...)
			lost += myLost
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	sort.Float64s(lat)
	r := BenchResult{Tool: "udpdns", Completed: len(lat), Lost: lost, Seconds: el, QPS: float64(len(lat)) / el,
		P50MS: percentileMS(lat, 0.5), P99MS: percentileMS(lat, 0.99)}
	var sum float64
	for _, v := range lat {
		sum += v
	}
	if len(lat) > 0 {
		r.AvgMS = sum / float64(len(lat))
	}
	return r, nil
}

var (
	rePerfQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	rePerfDone = regexp.MustCompile(`Queries completed:\s+([0-9]+)`)
	rePerfLost = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
	rePerfAvg  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
	rePerfRun  = regexp.MustCompile(`Run time \(s\):\s+([0-9.]+)`)
)

// benchSocketBufferKiB is the socket buffer dnsperf is given (-b), the
// udpdns client's own (udpdns/socket.go sets 4 MiB both ways): with its
// default 208 KiB, dnsperf loses queries at high in-flight counts.
const benchSocketBufferKiB = 4096

// benchDnsperf runs dnsperf (Debian's) against server for d with at most
// outstanding queries in flight from one socket and one thread (like the
// udpdns client's one socket), over the same query names, with the same
// socket buffers as the udpdns client. With verbose, dnsperf prints every
// query's latency (-v), from which p50 and p99 are computed; that printing
// costs dnsperf throughput, so the bench does not use it.
func benchDnsperf(ctx context.Context, server string, port uint16, d time.Duration, outstanding int, verbose bool) (BenchResult, error) {
	bin, err := exec.LookPath("dnsperf")
	if err != nil {
		return BenchResult{}, ErrNoDnsperf
	}
	dir, err := os.MkdirTemp("", "udpdns-bench")
	if err != nil {
		return BenchResult{}, err
	}
	defer os.RemoveAll(dir)
	qf := filepath.Join(dir, "queries")
	var b []byte
	for i := range 1000 {
		b = append(b, benchName(i)+" A\n"...)
	}
	if err := os.WriteFile(qf, b, 0o600); err != nil {
		return BenchResult{}, err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	args := []string{"-s", server, "-p", strconv.Itoa(int(port)), "-d", qf,
		"-l", strconv.Itoa(secs), "-q", strconv.Itoa(outstanding), "-c", "1", "-T", "1", "-t", "2", "-b", strconv.Itoa(benchSocketBufferKiB)}
	if verbose {
		args = append(args, "-v")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return BenchResult{}, fmt.Errorf("dnsexp: dnsperf: %w\n%.2000s", err, out)
	}
	num := func(re *regexp.Regexp) float64 {
		m := re.FindSubmatch(out)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	r := BenchResult{Tool: "dnsperf", QPS: num(rePerfQPS), Completed: int(num(rePerfDone)), Lost: int(num(rePerfLost)),
		AvgMS: num(rePerfAvg) * 1000, Seconds: num(rePerfRun)}
	if ps := cmd.ProcessState; ps != nil {
		r.CPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds()
		if r.Completed > 0 {
			r.CPUPerQueryUS = r.CPUSeconds / float64(r.Completed) * 1e6
		}
	}
	if r.QPS == 0 {
		return r, fmt.Errorf("dnsexp: dnsperf output not understood:\n%.2000s", out)
	}
	if verbose {
		lat := dnsperfLatencies(out)
		if len(lat) == 0 {
			return r, fmt.Errorf("dnsexp: dnsperf -v printed no per-query latencies:\n%.2000s", out)
		}
		sort.Float64s(lat)
		r.P50MS, r.P99MS = percentileMS(lat, 0.5), percentileMS(lat, 0.99)
	}
	return r, nil
}

// rePerfQuery is one line of dnsperf -v: "> NOERROR name A 0.000123"
// (latency in seconds).
var rePerfQuery = regexp.MustCompile(`(?m)^> [A-Z]+ \S+ \S+ ([0-9]+\.[0-9]+)$`)

// dnsperfLatencies are the per-query latencies of dnsperf -v output, in ms.
func dnsperfLatencies(out []byte) []float64 {
	var lat []float64
	for _, m := range rePerfQuery.FindAllSubmatch(out, -1) {
		if v, err := strconv.ParseFloat(string(m[1]), 64); err == nil {
			lat = append(lat, v*1000)
		}
	}
	return lat
}

// BenchConfig is one `statelab bench dns` run: rounds of dnsperf and the
// udpdns client (benchcmp.Interleave), each for Duration with InFlight
// queries in flight (the client over Sockets sockets), against one
// server process.
type BenchConfig struct {
	Duration time.Duration
	Rounds   int
	InFlight int
	Sockets  int
}

// BenchReport is what a bench run measured: each round of each tool, and
// the comparison of udpdns with dnsperf (qps and CPU per query per round).
type BenchReport struct {
	Server                   string        `json:"server"`
	InFlight                 int           `json:"concurrency"`
	Dnsperf, Udpdns          BenchResult   `json:"-"` // the median rounds
	DnsperfRounds, UdpRounds []BenchResult `json:"-"`
	// FuncRounds are udpdns driven through SendFunc (completions on the
	// reader, no goroutine per query), UdpRounds through Exchange from
	// InFlight goroutines.
	FuncRounds  []BenchResult         `json:"-"`
	Comparisons []benchcmp.Comparison `json:"comparisons"`
}

// benchWarmUp is how long each side runs, unmeasured, before the rounds
// (dnsperf takes whole seconds).
const benchWarmUp = time.Second

// benchIdleShare: dnsperf counts as idle when its rate is under this share
// of what its in-flight count and measured latency allow (Little's law,
// in-flight ÷ average latency).
const benchIdleShare = 0.5

// Bench runs the bench against a server process (the built-in zone, this
// binary again as serverRole) that it starts on a free loopback port, so
// that this process's CPU time over udpdns's turn is the client's alone. dnsperf and the client take
// turns (benchcmp.Interleave), so drifting load on the machine hits both
// alike; both keep InFlight queries in flight from one thread on one
// socket (dnsperf -q InFlight -c 1 -T 1) with the same socket buffers.
// Latencies come from the same rounds as the rates: average for both,
// p50/p99 for udpdns (dnsperf prints percentiles only with -v, which slows
// it). Rounds where dnsperf idled (its rate under benchIdleShare of
// InFlight ÷ its latency) are flagged: their ratio says nothing.
func Bench(ctx context.Context, c BenchConfig) (BenchReport, error) {
	c.Rounds, c.InFlight = max(1, c.Rounds), max(1, c.InFlight)
	srv, addr, err := startServerProcess(ctx, serverProc{})
	if err != nil {
		return BenchReport{}, err
	}
	defer func() { _ = srv.Stop(5 * time.Second) }()
	r := BenchReport{Server: addr.String(), InFlight: c.InFlight,
		DnsperfRounds: make([]BenchResult, c.Rounds), UdpRounds: make([]BenchResult, c.Rounds), FuncRounds: make([]BenchResult, c.Rounds)}
	turn := func(side int, d time.Duration) (BenchResult, error) {
		if side == 0 {
			return benchDnsperf(ctx, addr.Addr().String(), addr.Port(), d, c.InFlight, false)
		}
		c0 := benchcmp.ProcessCPU()
		cfg := udpdns.Config{Server: addr, Sockets: c.Sockets, Timeout: 2 * time.Second}
		var ours BenchResult
		var err error
		if side == 1 {
			ours, err = benchClientFunc(ctx, cfg, d, c.InFlight)
			ours.Tool = "udpdns-func"
		} else {
			ours, err = benchClient(ctx, cfg, d, c.InFlight)
		}
		ours.CPUSeconds = (benchcmp.ProcessCPU() - c0).Seconds()
		if ours.Completed > 0 {
			ours.CPUPerQueryUS = ours.CPUSeconds / float64(ours.Completed) * 1e6
		}
		return ours, err
	}
	// One turn of each side first, not measured: a process's first turn
	// (its heap and the server's still growing) ran 1.5× the CPU per
	// query of its later ones.
	for side := range 3 {
		if _, err := turn(side, benchWarmUp); err != nil {
			return r, fmt.Errorf("warm-up: %w", err)
		}
	}
	err = benchcmp.Interleave(c.Rounds, 3, func(round, side int) error {
		res, err := turn(side, c.Duration)
		switch side {
		case 0:
			r.DnsperfRounds[round] = res
		case 1:
			r.FuncRounds[round] = res
		default:
			r.UdpRounds[round] = res
		}
		return err
	})
	if err != nil {
		return r, err
	}
	idle := 0
	for _, p := range r.DnsperfRounds {
		if p.AvgMS > 0 && p.QPS < benchIdleShare*float64(c.InFlight)/(p.AvgMS/1000) {
			idle++
		}
	}
	for _, lab := range []struct {
		name   string
		rounds []BenchResult
	}{{"udpdns-func", r.FuncRounds}, {"udpdns-exchange", r.UdpRounds}} {
		var rounds []benchcmp.Round
		for i, u := range lab.rounds {
			p := r.DnsperfRounds[i]
			rounds = append(rounds, benchcmp.Round{
				Lab:      benchcmp.NewSide(u.QPS, float64(u.Completed), u.CPUSeconds),
				Baseline: benchcmp.NewSide(p.QPS, float64(p.Completed), p.CPUSeconds)})
		}
		cmp := benchcmp.Compare(fmt.Sprintf("%s@%d", lab.name, c.InFlight), fmt.Sprintf("dnsperf@%d", c.InFlight), "qps", "query", rounds)
		if idle > 0 {
			cmp.Flags = append(cmp.Flags, fmt.Sprintf("dnsperf idled in %d of %d rounds (rate under %.0f%% of in-flight ÷ latency): the ratio says nothing about the client", idle, c.Rounds, 100*benchIdleShare))
		}
		r.Comparisons = append(r.Comparisons, cmp)
	}
	r.Dnsperf, r.Udpdns = medianQPS(r.DnsperfRounds), medianQPS(r.UdpRounds)
	return r, nil
}

// medianQPS is the run with the median qps.
func medianQPS(rs []BenchResult) BenchResult {
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].QPS < s[j].QPS })
	return s[len(s)/2]
}
