package quicexp

import (
	"context"
	"testing"
	"time"
)

// The handover stall is the longest gap near the path change, not the
// longest of the whole transfer.
func TestHandoverStallLooksAroundTheChange(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// A 300 ms gap at the start (slow start, not the handover), a 40 ms
	// gap spanning the change at 2000 ms, 5 ms gaps elsewhere.
	progress := []time.Time{at(0)}
	for ms := 300; ms <= 1995; ms += 5 {
		progress = append(progress, at(ms))
	}
	progress = append(progress, at(2035), at(2040), at(2045))
	if got := HandoverStall(progress, at(2000)); got != 40*time.Millisecond {
		t.Errorf("stall around 2000 ms = %v, want 40ms", got)
	}
	if got := HandoverStall(progress, at(300)); got != 300*time.Millisecond {
		t.Errorf("stall around 300 ms = %v, want 300ms (the gap overlapping the window)", got)
	}
}

// Each scenario reports its median-goodput run with the spread of its
// ratio to "none" round by round.
func TestMediansPairRoundsWithNone(t *testing.T) {
	r := func(s string, g float64) BenchResult { return BenchResult{Scenario: s, GoodputMBs: g} }
	all := [][]BenchResult{
		{r("none", 100), r("none", 50), r("none", 80)},
		{r("rebind", 90), r("rebind", 50), r("rebind", 40)},
	}
	got := medians(all)
	if len(got) != 2 || got[0].GoodputMBs != 80 || got[0].RatioMedian != 1 || got[0].Rounds != 3 {
		t.Fatalf("none: %+v", got)
	}
	if g := got[1]; g.GoodputMBs != 50 || g.RatioMin != 0.5 || g.RatioMedian != 0.9 || g.RatioMax != 1 {
		t.Errorf("rebind: goodput %v, ratios %v/%v/%v; want 50, 0.5/0.9/1", g.GoodputMBs, g.RatioMin, g.RatioMedian, g.RatioMax)
	}
}

// The bench waits for the server's report of a path change: switches.wait
// returns once n changes since from were reported, or when its context
// ends.
func TestSwitchesWait(t *testing.T) {
	var s switches
	s.add(t0) // before from: not counted
	from := t0.Add(time.Second)
	go func() {
		time.Sleep(5 * time.Millisecond)
		s.add(from.Add(time.Millisecond))
		s.add(from.Add(2 * time.Millisecond))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.wait(ctx, from, 2)
	if ctx.Err() != nil {
		t.Fatal("wait gave up on two changes that came")
	}
	if n := len(s.between(from, from.Add(time.Second))); n != 2 {
		t.Errorf("%d changes between, want 2", n)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	s.wait(short, from, 3) // never comes: returns at the deadline
	if short.Err() == nil {
		t.Error("wait returned before a third change or its deadline")
	}
}
