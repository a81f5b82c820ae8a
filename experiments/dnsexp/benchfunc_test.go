package dnsexp

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/statelab/statelab/udpdns"
)

func TestBenchSummary(t *testing.T) {
	tests := []struct {
		name   string
		lat    []float64
		lost   int
		el     float64
		inTime int
		want   BenchResult
	}{
		{"no answer: zero latencies, the losses counted", nil, 4, 2, 0,
			BenchResult{Tool: "udpdns", Lost: 4, Seconds: 2}},
		{"the rate counts the answers in time, the latencies every answer", []float64{3, 1, 2, 4}, 1, 2, 2,
			BenchResult{Tool: "udpdns", Completed: 4, Lost: 1, Seconds: 2, QPS: 1, P50MS: 2, P99MS: 3, AvgMS: 2.5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := benchSummary(tt.lat, tt.lost, tt.el, tt.inTime); got != tt.want {
				t.Errorf("benchSummary = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The bench's client half runs without dnsperf: against an in-process
// server on loopback every query is answered and counted.
func TestBenchClientFuncAnswersEveryQuery(t *testing.T) {
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: "127.0.0.1:0", Handler: udpdns.BuiltinZone()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for _, inFlight := range []int{1, 50} {
		t.Run(fmt.Sprintf("%d in flight", inFlight), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			r, err := benchClientFunc(ctx, udpdns.Config{Server: srv.Addr(), Timeout: 2 * time.Second}, 300*time.Millisecond, inFlight)
			if err != nil {
				t.Fatal(err)
			}
			if r.Completed == 0 || r.Lost != 0 || r.QPS <= 0 || r.P50MS <= 0 || r.P50MS > r.P99MS {
				t.Errorf("result %+v: want answers, none lost, a rate, ordered percentiles", r)
			}
		})
	}
}
