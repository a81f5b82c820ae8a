package benchcmp

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCompareRatiosPerRound(t *testing.T) {
	tests := []struct {
		name                 string
		rounds               []Round
		med, lo, hi, cpu     float64
		tooWide, cpuMeasured bool
	}{
		{"one round", []Round{{NewSide(2, 1, 1), NewSide(4, 1, 0.5)}}, 0.5, 0.5, 0.5, 2, false, true},
		{"odd count takes the middle", []Round{
			{NewSide(1, 1, 1), NewSide(1, 1, 1)},
			{NewSide(3, 1, 1), NewSide(2, 1, 1)},
			{NewSide(1, 1, 2), NewSide(1, 1, 1)},
		}, 1, 1, 1.5, 1, true, true},
		{"even count takes the mean of the middle two", []Round{
			{NewSide(1, 1, 0), NewSide(1, 1, 0)},
			{NewSide(1.1, 1, 0), NewSide(1, 1, 0)},
			{NewSide(1.2, 1, 0), NewSide(1, 1, 0)},
			{NewSide(1.3, 1, 0), NewSide(1, 1, 0)},
		}, 1.15, 1, 1.3, 0, false, false},
		{"ratios pair the same round, not the medians", []Round{
			{NewSide(10, 1, 0), NewSide(10, 1, 0)},
			{NewSide(1, 1, 0), NewSide(1, 1, 0)},
			{NewSide(5, 1, 0), NewSide(5, 1, 0)},
		}, 1, 1, 1, 0, false, false},
		{"a zero baseline gives no ratio", []Round{{NewSide(1, 1, 0), NewSide(0, 0, 0)}}, 0, 0, 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Compare("lab", "kernel", "Gbit/s", "GiB", tt.rounds)
			if !near(c.RatioMedian, tt.med) || !near(c.RatioMin, tt.lo) || !near(c.RatioMax, tt.hi) {
				t.Errorf("ratio %v (%v–%v), want %v (%v–%v)", c.RatioMedian, c.RatioMin, c.RatioMax, tt.med, tt.lo, tt.hi)
			}
			if !near(c.CPURatioMedian, tt.cpu) {
				t.Errorf("cpu ratio %v, want %v", c.CPURatioMedian, tt.cpu)
			}
			if c.TooWide != tt.tooWide {
				t.Errorf("too wide %v, want %v", c.TooWide, tt.tooWide)
			}
			if (len(c.CPURatios) > 0) != tt.cpuMeasured {
				t.Errorf("cpu ratios %v, measured want %v", c.CPURatios, tt.cpuMeasured)
			}
		})
	}
}

func TestStringSaysWhenTooWide(t *testing.T) {
	wide := Compare("a", "b", "qps", "query", []Round{{NewSide(1, 1, 1), NewSide(1, 1, 1)}, {NewSide(2, 1, 1), NewSide(1, 1, 1)}})
	narrow := Compare("a", "b", "qps", "query", []Round{{NewSide(1, 1, 1), NewSide(1, 1, 1)}, {NewSide(1.1, 1, 1), NewSide(1, 1, 1)}})
	if !strings.Contains(wide.String(), "TOO WIDE") {
		t.Errorf("wide: %s", wide)
	}
	if strings.Contains(narrow.String(), "TOO WIDE") {
		t.Errorf("narrow: %s", narrow)
	}
}

func TestInterleaveRotatesTheOrder(t *testing.T) {
	tests := []struct {
		rounds, sides int
		want          []int
	}{
		{3, 2, []int{0, 1, 1, 0, 0, 1}},
		{2, 3, []int{0, 1, 2, 1, 2, 0}},
		{0, 2, nil},
	}
	for _, tt := range tests {
		var got []int
		if err := Interleave(tt.rounds, tt.sides, func(_, s int) error { got = append(got, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%d×%d: %v, want %v", tt.rounds, tt.sides, got, tt.want)
		}
	}
}

func TestInterleaveStopsAtTheFirstError(t *testing.T) {
	errBoom := errors.New("boom")
	n := 0
	err := Interleave(5, 2, func(r, _ int) error {
		n++
		if r == 1 {
			return errBoom
		}
		return nil
	})
	if !errors.Is(err, errBoom) || n != 3 {
		t.Errorf("err %v after %d turns, want boom after 3", err, n)
	}
}

func TestMeasureCountsCPU(t *testing.T) {
	cpu, wall, err := Measure(func() error {
		for t0 := time.Now(); time.Since(t0) < 30*time.Millisecond; {
		}
		return nil
	})
	if err != nil || cpu <= 0 || wall < 30*time.Millisecond {
		t.Errorf("cpu %v wall %v err %v", cpu, wall, err)
	}
}
