package tcpexp

import (
	"context"
	"testing"
	"time"
)

func TestBenchSmallComparesEachRound(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Bench(ctx, 16<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Comparisons) != 2 {
		t.Fatalf("comparisons %d, want 2", len(rep.Comparisons))
	}
	for _, c := range rep.Comparisons {
		if len(c.Rounds) != 2 || len(c.Ratios) != 2 || c.RatioMedian <= 0 || c.CPURatioMedian <= 0 {
			t.Errorf("%s: %+v", c.Name, c)
		}
		t.Log(c)
	}
}
