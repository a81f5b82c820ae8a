package quicconn

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// BenchResult is one download of the benchmark.
type BenchResult struct {
	Scenario   string  `json:"scenario"` // none, rebind, migrate3
	Bytes      int64   `json:"bytes"`
	Lost       int64   `json:"lost_bytes"` // asked minus received
	Intact     bool    `json:"sha256_match"`
	Seconds    float64 `json:"seconds"`
	GoodputMBs float64 `json:"goodput_mb_s"` // 10^6 bytes per second
	StallMS    float64 `json:"stall_ms"`     // longest time without progress
	Changes    int     `json:"path_changes"`
}

// BenchScenarios are the benchmark's cases, in order.
var BenchScenarios = []string{"none", "rebind", "migrate3"}

// Bench downloads size bytes through a NAT on loopback with no path
// change, with a NAT port rebinding halfway and with three client
// migrations, interleaved, runs times each after one discarded warm-up,
// and reports for each scenario the run with the median goodput. It must
// run inside the lab's namespace (127.0.0.2 and .3 are used).
func Bench(ctx context.Context, size int64, runs int) ([]BenchResult, error) {
	srv, err := NewServer(ServerConfig{IdleTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if _, err := benchOne(ctx, srv, "none", min(size, 4<<20)); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	all := make([][]BenchResult, len(BenchScenarios))
	for range max(runs, 1) {
		for i, sc := range BenchScenarios {
			r, err := benchOne(ctx, srv, sc, size)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc, err)
			}
			all[i] = append(all[i], r)
		}
	}
	var out []BenchResult
	for _, rs := range all {
		slices.SortFunc(rs, func(a, b BenchResult) int { return cmp.Compare(a.GoodputMBs, b.GoodputMBs) })
		out = append(out, rs[len(rs)/2])
	}
	return out, nil
}

func benchOne(ctx context.Context, srv *Server, scenario string, size int64) (BenchResult, error) {
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
	var last time.Time
	var stall time.Duration
	start := time.Now()
	got, sum, err := cl.Download(ctx, size, func(n int64) {
		now := time.Now()
		if !last.IsZero() {
			stall = max(stall, now.Sub(last))
		}
		last = now
		switch scenario {
		case "rebind":
			if next == 0 && n >= size/2 {
				mb.Rebind(loopback1, 0)
				next++
				r.Changes++
			}
		case "migrate3":
			if next < len(hops) && n >= size*int64(next+1)/int64(len(hops)+1) {
				h := migrate(ctx, func(string, ...any) {}, cl, hops[next])
				next++
				if h.probe == nil && h.sw == nil {
					r.Changes++
				}
			}
		}
	})
	r.Seconds = time.Since(start).Seconds()
	r.Lost = size - got
	r.Intact = err == nil && sum == PatternSum(size)
	r.GoodputMBs = float64(got) / r.Seconds / 1e6
	r.StallMS = ms(stall)
	return r, err
}
