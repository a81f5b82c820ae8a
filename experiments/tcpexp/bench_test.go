package tcpexp

import (
	"context"
	"testing"
	"time"
)

func TestBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Bench(ctx, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%-14s %6.2f Gbit/s (%v)", r.Name, r.Gbps, r.Duration)
	}
}
