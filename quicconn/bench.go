package quicconn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
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
	// in HandoverWindow around a path change (the longest over the
	// changes); for "none", around the moment half the bytes had arrived.
	StallMS float64 `json:"stall_ms"`
	// Changes are the path changes that happened, as the NAT (rebind) or
	// the server (migrate3) reported them, not as armed.
	Changes int `json:"path_changes"`
	// Ratio* are the min, median and max over the rounds of this
	// scenario's goodput divided by that of "none" in the same round.
	RatioMin    float64 `json:"ratio_min"`
	RatioMedian float64 `json:"ratio_median"`
	RatioMax    float64 `json:"ratio_max"`
	Rounds      int     `json:"rounds"`
}

// BenchScenarios are the benchmark's cases.
var BenchScenarios = []string{"none", "rebind", "migrate3"}

// HandoverWindow is where the handover stall is looked for: gaps between
// progress reports that overlap [change − Before, change + After].
var HandoverWindow = struct{ Before, After time.Duration }{50 * time.Millisecond, time.Second}

// Bench downloads size bytes through a NAT on loopback with no path
// change, with a NAT port rebinding halfway and with three client
// migrations, runs rounds after one discarded warm-up; each round runs
// every scenario once, the order rotated from round to round. It reports
// for each scenario the run with the median goodput and the spread of its
// ratio to "none". It must run inside the lab's namespace (127.0.0.2 and .3
// are used).
func Bench(ctx context.Context, size int64, runs int) ([]BenchResult, error) {
	sw := &switches{}
	tr := &Tracer{TuplesOnly: true, OnTuple: func(c *ConnTrace, t TupleEvent) {
		if c.Role == "server" && t.ID == "" { // the server's active path changed
			sw.add(t.Time)
		}
	}}
	srv, err := NewServer(ServerConfig{IdleTimeout: 10 * time.Second, Tracer: tr})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if _, err := benchOne(ctx, srv, sw, "none", min(size, 4<<20)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	rounds := max(runs, 1)
	all := make([][]BenchResult, len(BenchScenarios))
	for round := range rounds {
		for k := range BenchScenarios {
			i := (k + round) % len(BenchScenarios)
			r, err := benchOne(ctx, srv, sw, BenchScenarios[i], size)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", BenchScenarios[i], err)
			}
			all[i] = append(all[i], r)
		}
	}
	var out []BenchResult
	for _, rs := range all {
		var ratios []float64
		for k, r := range rs {
			ratios = append(ratios, r.GoodputMBs/all[0][k].GoodputMBs)
		}
		slices.Sort(ratios)
		byGoodput := slices.Clone(rs)
		slices.SortFunc(byGoodput, func(a, b BenchResult) int {
			if a.GoodputMBs < b.GoodputMBs {
				return -1
			}
			if a.GoodputMBs > b.GoodputMBs {
				return 1
			}
			return 0
		})
		m := byGoodput[len(byGoodput)/2]
		m.RatioMin, m.RatioMedian, m.RatioMax, m.Rounds = ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1], len(rs)
		out = append(out, m)
	}
	return out, nil
}

// switches are the times the server reported a change of active path.
type switches struct {
	mu sync.Mutex
	at []time.Time
}

func (s *switches) add(t time.Time) {
	s.mu.Lock()
	s.at = append(s.at, t)
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

func benchOne(ctx context.Context, srv *Server, sw *switches, scenario string, size int64) (BenchResult, error) {
	mb, err := NewMiddlebox("127.0.0.1:0", srv.Addr, loopback1)
	if err != nil {
		return BenchResult{}, err
	}
	defer mb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := Dial(ctx, ClientConfig{Server: mb.Front, Trust: srv.Cert, IdleTimeout: 10 * time.Second})
	if err != nil {
		return BenchResult{}, err
	}
	defer cl.Close()
	r := BenchResult{Scenario: scenario, Bytes: size}
	hops := []netip.Addr{loopback2, loopback3, loopback1}
	next := 0
	var rebound <-chan Rebinding
	var half time.Time
	progress := make([]time.Time, 0, 4096)
	// Migrations run in order beside the reader, so the reader is never
	// held by them: what stalls is the transport.
	hopCh := make(chan netip.Addr, len(hops))
	migrated := make(chan struct{})
	go func() {
		defer close(migrated)
		for to := range hopCh {
			migrate(ctx, func(string, ...any) {}, cl, to, nil)
		}
	}()
	defer func() { close(hopCh); <-migrated }()
	start := time.Now()
	got, sum, err := cl.Download(ctx, size, func(n int64) {
		now := time.Now()
		progress = append(progress, now)
		if half.IsZero() && n >= size/2 {
			half = now
		}
		switch scenario {
		case "rebind":
			if rebound == nil && n >= size/2 {
				rebound = mb.Rebind(loopback1, 0)
			}
		case "migrate3":
			if next < len(hops) && n >= size*int64(next+1)/int64(len(hops)+1) {
				hopCh <- hops[next]
				next++
			}
		}
	})
	end := time.Now()
	r.Seconds = end.Sub(start).Seconds()
	r.Lost = size - got
	r.Intact = err == nil && sum == PatternSum(size)
	r.GoodputMBs = float64(got) / r.Seconds / 1e6
	var changes []time.Time
	switch scenario {
	case "rebind":
		select {
		case rb := <-rebound:
			changes = append(changes, rb.At)
		default: // armed, but no datagram came to rebind
		}
	case "migrate3":
		changes = sw.between(start, end)
	case "none":
		if !half.IsZero() {
			r.StallMS = ms(HandoverStall(progress, half))
		}
	}
	r.Changes = len(changes)
	for _, c := range changes {
		r.StallMS = max(r.StallMS, ms(HandoverStall(progress, c)))
	}
	return r, err
}

// HandoverStall is the longest gap between consecutive progress times that
// overlaps HandoverWindow around change.
func HandoverStall(progress []time.Time, change time.Time) time.Duration {
	lo, hi := change.Add(-HandoverWindow.Before), change.Add(HandoverWindow.After)
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
