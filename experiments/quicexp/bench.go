package quicexp

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

// BenchResult is one scenario of the benchmark: the run with the median
// goodput, and the spread of its goodput ratio to "none" over the rounds.
type BenchResult struct {
	Scenario   string  `json:"scenario"` // none, rebind, migrate3
	Bytes      int64   `json:"bytes"`
	Lost       int64   `json:"lost_bytes"` // asked minus received
	Intact     bool    `json:"sha256_match"`
	Seconds    float64 `json:"seconds"`
	GoodputMBs float64 `json:"goodput_mb_s"` // 10^6 bytes per second
	// StallMS is the handover stall: the longest time without progress
	// from HandoverBefore before to HandoverAfter after a path change (the
	// longest over the changes); for "none", around the moment half the
	// bytes had arrived.
	StallMS float64 `json:"stall_ms"`
	// Changes are the path changes that happened during the measurement,
	// as the NAT (rebind) or the server (migrate3) reported them, not as
	// armed.
	Changes int `json:"path_changes"`
	// SettleMS is how long after the last byte the measurement waited for
	// the path changes armed during the download to complete (0 when all
	// had): the measurement (Seconds) ends only then.
	SettleMS float64 `json:"settle_ms"`
	// Ratio* are the min, median and max over the rounds of this
	// scenario's goodput divided by that of "none" in the same round.
	RatioMin    float64 `json:"ratio_min"`
	RatioMedian float64 `json:"ratio_median"`
	RatioMax    float64 `json:"ratio_max"`
	Rounds      int     `json:"rounds"`
	// RoundGoodput, RoundBytes and RoundCPU are each round's goodput
	// (MB/s), bytes received and the process's CPU time (client, server
	// and NAT, seconds), in round order.
	RoundGoodput []float64 `json:"round_goodput_mb_s"`
	RoundBytes   []int64   `json:"round_bytes"`
	RoundCPU     []float64 `json:"round_cpu_s"`
	CPU          float64   `json:"cpu_s"` // of this run
}

// benchScenarios are the benchmark's cases, in the order of its results.
var benchScenarios = []string{"none", "rebind", "migrate3"}

// The handover stall is looked for in gaps between progress reports that
// overlap [change − HandoverBefore, change + HandoverAfter].
const (
	HandoverBefore = 50 * time.Millisecond
	HandoverAfter  = time.Second
)

// Bench downloads size bytes through a NAT on loopback with no path
// change, with a NAT port rebinding halfway and with three client
// migrations (at 1/4, 2/4 and 3/4 of the bytes, one after the other), runs
// rounds after one discarded warm-up; each round runs every scenario once,
// the order rotated from round to round. A scenario's measurement ends
// once the last byte has arrived and every path change it armed has
// completed. It reports for each scenario the run with the median goodput
// and the spread of its ratio to "none". It must run inside the lab's
// namespace (127.0.0.2 and .3 are used).
func Bench(ctx context.Context, size int64, runs int) ([]BenchResult, error) {
	sw := &switches{}
	tr := &quicconn.Tracer{TuplesOnly: true, OnTuple: func(c *quicconn.ConnTrace, t quicconn.TupleEvent) {
		if c.Role == "server" && t.ID == "" { // the server's active path changed
			sw.add(t.Time)
		}
	}}
	srv, err := quicconn.NewServer(quicconn.ServerConfig{IdleTimeout: 10 * time.Second, Tracer: tr})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if _, err := benchOne(ctx, srv, sw, "none", min(size, 4<<20)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	rounds := max(runs, 1)
	all := make([][]BenchResult, len(benchScenarios))
	err = benchcmp.Interleave(rounds, len(benchScenarios), func(_, i int) error {
		var r BenchResult
		cpu, _, err := benchcmp.Measure(func() error {
			var err error
			r, err = benchOne(ctx, srv, sw, benchScenarios[i], size)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", benchScenarios[i], err)
		}
		r.CPU = cpu.Seconds()
		all[i] = append(all[i], r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return medians(all), nil
}

// medians picks each scenario's run with the median goodput and gives it
// the spread of the scenario's ratio to "none" (all[0]) round by round.
func medians(all [][]BenchResult) []BenchResult {
	var out []BenchResult
	for _, rs := range all {
		var ratios []float64
		for k, r := range rs {
			ratios = append(ratios, r.GoodputMBs/all[0][k].GoodputMBs)
		}
		slices.Sort(ratios)
		byGoodput := slices.Clone(rs)
		slices.SortFunc(byGoodput, func(a, b BenchResult) int { return cmp.Compare(a.GoodputMBs, b.GoodputMBs) })
		m := byGoodput[len(byGoodput)/2]
		m.RatioMedian, m.RatioMin, m.RatioMax = benchcmp.Summary(ratios)
		m.Rounds = len(rs)
		for _, r := range rs {
			m.RoundGoodput, m.RoundBytes, m.RoundCPU = append(m.RoundGoodput, r.GoodputMBs), append(m.RoundBytes, r.Bytes-r.Lost), append(m.RoundCPU, r.CPU)
		}
		out = append(out, m)
	}
	return out
}

// switches are the times the server reported a change of active path.
type switches struct {
	mu     sync.Mutex
	at     []time.Time
	notify chan struct{} // closed and replaced at every change
}

func (s *switches) add(t time.Time) {
	s.mu.Lock()
	s.at = append(s.at, t)
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	s.mu.Unlock()
}

func (s *switches) between(from, to time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, t := range s.at {
		if !t.Before(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	return out
}

// wait returns once the server reported n changes since from, or when ctx
// ends.
func (s *switches) wait(ctx context.Context, from time.Time, n int) {
	for {
		s.mu.Lock()
		got := 0
		for _, t := range s.at {
			if !t.Before(from) {
				got++
			}
		}
		if s.notify == nil {
			s.notify = make(chan struct{})
		}
		ch := s.notify
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// benchOne downloads size bytes through a fresh NAT in one scenario.
func benchOne(ctx context.Context, srv *quicconn.Server, sw *switches, scenario string, size int64) (BenchResult, error) {
	mb, err := nat.NewUDP("127.0.0.1:0", srv.Addr, loopback1)
	if err != nil {
		return BenchResult{}, err
	}
	defer mb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := quicconn.Dial(ctx, quicconn.ClientConfig{Server: mb.Front, Trust: srv.Cert, IdleTimeout: 10 * time.Second})
	if err != nil {
		return BenchResult{}, err
	}
	defer cl.Close()
	start := time.Now()
	ch := newChanger(ctx, scenario, size, cl, mb, sw, start)
	progress := make([]time.Time, 0, 4096)
	got, sum, err := cl.Download(ctx, size, func(n int64) {
		progress = append(progress, time.Now())
		ch.at(n, progress[len(progress)-1])
	})
	last := time.Now()
	changes := ch.settle(ctx)
	end := time.Now()
	r := BenchResult{Scenario: scenario, Bytes: size, Lost: size - got, Intact: err == nil && sum == quicconn.PatternSum(size),
		Seconds: end.Sub(start).Seconds(), SettleMS: ms(end.Sub(last)), Changes: len(changes)}
	r.GoodputMBs = float64(got) / r.Seconds / 1e6
	if scenario == "none" && !ch.half.IsZero() {
		r.StallMS = ms(HandoverStall(progress, ch.half))
	}
	for _, c := range changes {
		r.StallMS = max(r.StallMS, ms(HandoverStall(progress, c)))
	}
	return r, err
}

// changer makes a scenario's path changes during a download: the reader
// calls at after every read, which arms them and never blocks; settle,
// after the last byte, waits for every armed change to complete and
// returns when each happened, as the NAT or the server reported it.
type changer struct {
	scenario string
	size     int64
	cl       *quicconn.Client
	mb       *nat.UDP
	sw       *switches
	start    time.Time
	half     time.Time // when half the bytes had arrived

	rebound <-chan nat.Rebinding // rebind: armed

	hops     chan netip.Addr // migrate3: requested hops, made in order
	armed    int
	migrated chan struct{} // closed when the migrator is done
}

// benchHops are migrate3's hops.
var benchHops = []netip.Addr{loopback2, loopback3, loopback1}

func newChanger(ctx context.Context, scenario string, size int64, cl *quicconn.Client, mb *nat.UDP, sw *switches, start time.Time) *changer {
	c := &changer{scenario: scenario, size: size, cl: cl, mb: mb, sw: sw, start: start}
	if scenario == "migrate3" {
		c.hops = make(chan netip.Addr, len(benchHops))
		c.migrated = make(chan struct{})
		go c.migrator(ctx)
	}
	return c
}

// at arms the changes due when n bytes have arrived (at now).
func (c *changer) at(n int64, now time.Time) {
	if c.half.IsZero() && n >= c.size/2 {
		c.half = now
	}
	switch c.scenario {
	case "rebind":
		if c.rebound == nil && n >= c.size/2 {
			c.rebound = c.mb.Rebind(loopback1, 0)
		}
	case "migrate3":
		if c.armed < len(benchHops) && n >= c.size*int64(c.armed+1)/int64(len(benchHops)+1) {
			c.hops <- benchHops[c.armed] // buffered for every hop: never blocks
			c.armed++
		}
	}
}

// migrator makes the requested hops one after the other, beside the
// reader (which they never hold: what stalls is the transport). A hop is
// complete when the server has moved to the new path: after the client's
// Switch, an echo makes sure the server hears from it even when no more
// data flows, and the next hop starts only then.
func (c *changer) migrator(ctx context.Context) {
	defer close(c.migrated)
	done := 0
	for to := range c.hops {
		h := migrate(ctx, func(string, ...any) {}, c.cl, to, nil)
		if !h.ok() {
			continue
		}
		done++
		if _, err := c.cl.Echo(ctx, []byte("path")); err != nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c.sw.wait(wctx, c.start, done)
		cancel()
	}
}

// settle waits for the armed changes and returns when each happened.
func (c *changer) settle(ctx context.Context) []time.Time {
	switch c.scenario {
	case "rebind":
		if c.rebound == nil {
			return nil
		}
		select {
		case rb := <-c.rebound:
			return []time.Time{rb.At}
		default:
		}
		// Armed, but no client datagram came after: one round trip
		// carries the rebinding.
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		c.cl.Echo(wctx, []byte("rebind"))
		select {
		case rb := <-c.rebound:
			return []time.Time{rb.At}
		case <-wctx.Done():
			return nil
		}
	case "migrate3":
		close(c.hops)
		<-c.migrated
		return c.sw.between(c.start, time.Now())
	}
	return nil
}

// HandoverStall is the longest gap between consecutive progress times that
// overlaps [change − HandoverBefore, change + HandoverAfter].
func HandoverStall(progress []time.Time, change time.Time) time.Duration {
	lo, hi := change.Add(-HandoverBefore), change.Add(HandoverAfter)
	var worst time.Duration
	for i := 1; i < len(progress); i++ {
		a, b := progress[i-1], progress[i]
		if b.Before(lo) || a.After(hi) {
			continue
		}
		worst = max(worst, b.Sub(a))
	}
	return worst
}

// Comparisons are every scenario with a path change against "none", round
// by round: goodput and CPU per MB received.
func Comparisons(res []BenchResult) []benchcmp.Comparison {
	if len(res) == 0 {
		return nil
	}
	side := func(r BenchResult, i int) benchcmp.Side {
		return benchcmp.NewSide(r.RoundGoodput[i], float64(r.RoundBytes[i])/1e6, r.RoundCPU[i])
	}
	var out []benchcmp.Comparison
	for _, r := range res[1:] {
		var rounds []benchcmp.Round
		for i := range min(len(r.RoundGoodput), len(res[0].RoundGoodput)) {
			rounds = append(rounds, benchcmp.Round{Lab: side(r, i), Baseline: side(res[0], i)})
		}
		out = append(out, benchcmp.Compare(r.Scenario, res[0].Scenario, "MB/s", "MB", rounds))
	}
	return out
}
