package benchcmp

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// DefaultRounds is every bench's default --rounds.
const DefaultRounds = 5

// WideSpread is the spread, (max − min) ÷ median of the per-round ratios,
// above which a comparison is too wide to judge.
const WideSpread = 0.3

// Side is one side's figures in one round.
type Side struct {
	// Value is the compared figure (Gbit/s, queries/s, workflows/s…);
	// higher is better.
	Value float64 `json:"value"`
	// Work is the units of work done in the round (GiB, queries…), and
	// CPUSeconds the CPU time (user + system) spent on it.
	Work       float64 `json:"work"`
	CPUSeconds float64 `json:"cpu_s"`
	// CPUPerUnit is CPUSeconds ÷ Work (0 when either is unmeasured).
	CPUPerUnit float64 `json:"cpu_s_per_unit"`
}

// NewSide is a Side with its CPU per unit computed.
func NewSide(value, work, cpuSeconds float64) Side {
	s := Side{Value: value, Work: work, CPUSeconds: cpuSeconds}
	if work > 0 && cpuSeconds > 0 {
		s.CPUPerUnit = cpuSeconds / work
	}
	return s
}

// Round is one round's figures for both sides.
type Round struct {
	Lab      Side `json:"lab"`
	Baseline Side `json:"baseline"`
}

// Comparison is the lab against a baseline over the rounds.
type Comparison struct {
	Name     string  `json:"name"`
	Baseline string  `json:"baseline"`
	Unit     string  `json:"unit"`      // of Side.Value
	WorkUnit string  `json:"work_unit"` // of Side.Work
	Rounds   []Round `json:"rounds"`
	// Ratios are lab ÷ baseline of Value per round (higher is better for
	// the lab).
	Ratios      []float64 `json:"ratios"`
	RatioMedian float64   `json:"ratio_median"`
	RatioMin    float64   `json:"ratio_min"`
	RatioMax    float64   `json:"ratio_max"`
	// CPURatios are lab ÷ baseline of CPU per unit of work per round
	// (lower is better for the lab); empty when CPU was not measured.
	CPURatios      []float64 `json:"cpu_ratios,omitempty"`
	CPURatioMedian float64   `json:"cpu_ratio_median"`
	CPURatioMin    float64   `json:"cpu_ratio_min"`
	CPURatioMax    float64   `json:"cpu_ratio_max"`
	// TooWide is set when the ratios' spread exceeds WideSpread, and
	// CPUTooWide likewise for the CPU ratios.
	TooWide    bool `json:"spread_too_wide"`
	CPUTooWide bool `json:"cpu_spread_too_wide"`
	// Flags say why a comparison may mean less than it seems (such as a
	// baseline that idled).
	Flags []string `json:"flags,omitempty"`
}

// Compare summarises rounds of name against baseline. Rounds where the
// baseline's figure is 0 give no ratio.
func Compare(name, baseline, unit, workUnit string, rounds []Round) Comparison {
	c := Comparison{Name: name, Baseline: baseline, Unit: unit, WorkUnit: workUnit, Rounds: rounds}
	for _, r := range rounds {
		if r.Baseline.Value > 0 {
			c.Ratios = append(c.Ratios, r.Lab.Value/r.Baseline.Value)
		}
		if r.Baseline.CPUPerUnit > 0 && r.Lab.CPUPerUnit > 0 {
			c.CPURatios = append(c.CPURatios, r.Lab.CPUPerUnit/r.Baseline.CPUPerUnit)
		}
	}
	c.RatioMedian, c.RatioMin, c.RatioMax = Summary(c.Ratios)
	c.CPURatioMedian, c.CPURatioMin, c.CPURatioMax = Summary(c.CPURatios)
	c.TooWide = tooWide(c.RatioMedian, c.RatioMin, c.RatioMax)
	c.CPUTooWide = tooWide(c.CPURatioMedian, c.CPURatioMin, c.CPURatioMax)
	return c
}

func tooWide(med, lo, hi float64) bool { return med > 0 && (hi-lo)/med > WideSpread }

// Summary is the median (of an even count, the mean of the middle two),
// minimum and maximum of xs; zeros when xs is empty.
func Summary(xs []float64) (median, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return Median(s), s[0], s[len(s)-1]
}

// Median is the median of xs (of an even count, the mean of the middle
// two); 0 when xs is empty.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

// MedianSide is the median of each of the sides' figures (not one round's).
func MedianSide(rounds []Round, lab bool) Side {
	var v, w, cpu, per []float64
	for _, r := range rounds {
		s := r.Baseline
		if lab {
			s = r.Lab
		}
		v, w, cpu, per = append(v, s.Value), append(w, s.Work), append(cpu, s.CPUSeconds), append(per, s.CPUPerUnit)
	}
	return Side{Value: Median(v), Work: Median(w), CPUSeconds: Median(cpu), CPUPerUnit: Median(per)}
}

// String is the comparison on one line for people: the median ratio with
// its spread, the CPU ratio, and a warning when the spread is too wide to
// judge.
func (c Comparison) String() string {
	var b strings.Builder
	if len(c.Ratios) == 0 {
		fmt.Fprintf(&b, "%s ÷ %s: no round measured", c.Name, c.Baseline)
		return b.String()
	}
	fmt.Fprintf(&b, "%s ÷ %s: %s %.2f× (%.2f–%.2f, %d rounds)", c.Name, c.Baseline, c.Unit, c.RatioMedian, c.RatioMin, c.RatioMax, len(c.Ratios))
	if c.TooWide {
		b.WriteString(" SPREAD TOO WIDE TO JUDGE")
	}
	if len(c.CPURatios) > 0 {
		lab, base := MedianSide(c.Rounds, true), MedianSide(c.Rounds, false)
		fmt.Fprintf(&b, "; CPU per %s %.2f× (%.2f–%.2f; %s vs %s)", c.WorkUnit, c.CPURatioMedian, c.CPURatioMin, c.CPURatioMax,
			fmtCPU(lab.CPUPerUnit), fmtCPU(base.CPUPerUnit))
		if c.CPUTooWide {
			b.WriteString(" CPU SPREAD TOO WIDE TO JUDGE")
		}
	}
	for _, f := range c.Flags {
		fmt.Fprintf(&b, "\n    note: %s", f)
	}
	return b.String()
}

// fmtCPU prints CPU seconds with a readable unit.
func fmtCPU(s float64) string {
	switch a := math.Abs(s); {
	case a == 0:
		return "0"
	case a < 1e-3:
		return fmt.Sprintf("%.2f µs", s*1e6)
	case a < 1:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
	return fmt.Sprintf("%.3f s", s)
}
