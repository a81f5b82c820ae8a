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
}

// benchName is the i-th name of the bench's query list (as dnsperf reads it).
func benchName(i int) string { return fmt.Sprintf("b%d.%s", i%1000, udpdns.SynthSuffix) }

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

// benchDnsperf runs dnsperf (Debian's) against server for d with at most
// outstanding queries in flight from one socket and one thread (like the
// udpdns client's one socket), over the same query names. With verbose,
// dnsperf prints every query's latency (-v), from which p50 and p99 are
// computed; that printing costs dnsperf throughput, so the qps of a verbose
// run is not comparable: use separate runs for qps and for latency.
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
		"-l", strconv.Itoa(secs), "-q", strconv.Itoa(outstanding), "-c", "1", "-T", "1", "-t", "2"}
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

// BenchConfig is one `statelab bench dns` run: rounds of dnsperf then the
// udpdns client, each for Duration with InFlight queries in flight (the
// client over Sockets sockets), against one in-process server.
type BenchConfig struct {
	Duration time.Duration
	Rounds   int
	InFlight int
	Sockets  int
}

// BenchReport is what a bench run measured: each round of each tool, the
// per-round qps ratio (udpdns/dnsperf) and its median and spread, and
// dnsperf's latency percentiles from a verbose run of its own.
type BenchReport struct {
	Server                    string
	Dnsperf, Udpdns           BenchResult // the median rounds; Dnsperf with the verbose run's p50/p99
	DnsperfRounds, UdpRounds  []BenchResult
	Ratios                    []float64 // per round
	Ratio, RatioMin, RatioMax float64
}

// Bench runs the bench against an in-process server (the built-in zone)
// that it starts on a free loopback port. dnsperf and the client take
// turns, so drifting load on the machine hits both alike; both keep
// InFlight queries in flight from one thread on one socket (dnsperf -q
// InFlight -c 1 -T 1).
func Bench(ctx context.Context, c BenchConfig) (BenchReport, error) {
	c.Rounds, c.InFlight = max(1, c.Rounds), max(1, c.InFlight)
	srv, err := udpdns.StartServer(udpdns.ServerConfig{})
	if err != nil {
		return BenchReport{}, err
	}
	defer srv.Close()
	addr := srv.Addr()
	r := BenchReport{Server: addr.String()}
	for range c.Rounds {
		perf, err := benchDnsperf(ctx, addr.Addr().String(), addr.Port(), c.Duration, c.InFlight, false)
		if err != nil {
			return r, err
		}
		ours, err := benchClient(ctx, udpdns.Config{Server: addr, Sockets: c.Sockets, Timeout: 2 * time.Second}, c.Duration, c.InFlight)
		if err != nil {
			return r, err
		}
		r.DnsperfRounds, r.UdpRounds, r.Ratios = append(r.DnsperfRounds, perf), append(r.UdpRounds, ours), append(r.Ratios, ours.QPS/perf.QPS)
	}
	// dnsperf's percentiles come from its per-query latencies (-v), in a
	// run of their own: printing every query slows dnsperf down.
	lat, err := benchDnsperf(ctx, addr.Addr().String(), addr.Port(), c.Duration, c.InFlight, true)
	if err != nil {
		return r, err
	}
	r.Dnsperf, r.Udpdns = medianQPS(r.DnsperfRounds), medianQPS(r.UdpRounds)
	r.Dnsperf.P50MS, r.Dnsperf.P99MS = lat.P50MS, lat.P99MS
	sorted := slices.Clone(r.Ratios)
	slices.Sort(sorted)
	r.Ratio, r.RatioMin, r.RatioMax = sorted[len(sorted)/2], sorted[0], sorted[len(sorted)-1]
	return r, nil
}

// medianQPS is the run with the median qps.
func medianQPS(rs []BenchResult) BenchResult {
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool { return s[i].QPS < s[j].QPS })
	return s[len(s)/2]
}
