package dnsexp

import "testing"

func TestDnsperfLatencies(t *testing.T) {
	out := []byte("[Status] Sending queries\n> NOERROR b1.synth.lab A 0.000250\n> NOERROR b2.synth.lab A 0.001000\n> NXDOMAIN x.lab A 0.000500\n  Queries per second:   99.9\n")
	got := dnsperfLatencies(out)
	if len(got) != 3 || got[0] != 0.25 || got[1] != 1 || got[2] != 0.5 {
		t.Errorf("latencies %v, want [0.25 1 0.5] ms", got)
	}
}
