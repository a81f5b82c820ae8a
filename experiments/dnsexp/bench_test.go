package dnsexp

import (
	"context"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/labtest"
)

func TestDnsperfLatencies(t *testing.T) {
	out := []byte("[Status] Sending queries\n> NOERROR b1.synth.lab A 0.000250\n> NOERROR b2.synth.lab A 0.001000\n> NXDOMAIN x.lab A 0.000500\n  Queries per second:   99.9\n")
	got := dnsperfLatencies(out)
	if len(got) != 3 || got[0] != 0.25 || got[1] != 1 || got[2] != 0.5 {
		t.Errorf("latencies %v, want [0.25 1 0.5] ms", got)
	}
}

// The bench gives dnsperf the client's socket buffers, measures both sides'
// CPU per query in every round, and flags rounds where dnsperf idled.
func TestBenchComparesRateAndCPUPerRound(t *testing.T) {
	labtest.NeedTool(t, "dnsperf")
	tests := []struct {
		name     string
		inFlight int
	}{
		{"100 in flight", 100},
		{"1 in flight", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := Bench(ctx, BenchConfig{Duration: time.Second, Rounds: 2, InFlight: tt.inFlight, Sockets: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Comparisons) != 2 {
				t.Fatalf("%d comparisons, want udpdns-func and udpdns-exchange against dnsperf", len(r.Comparisons))
			}
			for _, c := range r.Comparisons {
				if len(c.Rounds) != 2 || c.RatioMedian <= 0 || c.CPURatioMedian <= 0 {
					t.Errorf("comparison %+v", c)
				}
				if idle := len(c.Flags) > 0; idle != (tt.inFlight == 1) {
					t.Errorf("%s: flags %q; dnsperf idle expected only at 1 in flight", c.Name, c.Flags)
				}
				t.Log(c)
			}
			for i, p := range r.DnsperfRounds {
				if p.CPUPerQueryUS <= 0 || r.UdpRounds[i].CPUPerQueryUS <= 0 || r.FuncRounds[i].CPUPerQueryUS <= 0 || r.FuncRounds[i].Lost != 0 {
					t.Errorf("round %d: CPU per query dnsperf %v udpdns %v udpdns-func %v (lost %d)", i, p.CPUPerQueryUS, r.UdpRounds[i].CPUPerQueryUS, r.FuncRounds[i].CPUPerQueryUS, r.FuncRounds[i].Lost)
				}
			}
		})
	}
}
