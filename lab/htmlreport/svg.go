package htmlreport

import (
	"fmt"
	"hash/fnv"
	"html"
	"math"
	"strconv"
	"strings"

	"github.com/statelab/statelab/lab"
)

// esc escapes text for HTML and SVG text and attributes.
func esc(s string) string { return html.EscapeString(s) }

// num formats a coordinate: finite, at most two decimals, no exponent.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		v = 0
	}
	v = math.Round(v*100) / 100
	if v == 0 {
		v = 0 // not "-0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// clip shortens s to at most n runes, ending in "…" when cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n < 2 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// charW is the width the page's SVG text takes per character, roughly (11px
// sans-serif), for fitting labels.
const charW = 6.2

// svgOpen starts an <svg> of the given size with its viewBox.
func svgOpen(b *strings.Builder, class string, w, h float64, label string) {
	fmt.Fprintf(b, `<svg class="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s">`,
		class, num(w), num(h), num(w), num(h), esc(label))
}

// title is an SVG <title>, which browsers show on hover.
func title(s string) string { return "<title>" + esc(s) + "</title>" }

// palette is the series colours, in order.
// Red, purple, pink, orange and gold are the fates' (fateColour), so no
// series is mistaken for lost or forged packets.
var palette = []string{"#1f77b4", "#2ca02c", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#6b8e23", "#4682b4", "#a0522d", "#5f9ea0"}

// colourOf gives a label a stable colour (a state's, a connection ID's),
// the same across plots.
func colourOf(label string) string {
	h := fnv.New32a()
	h.Write([]byte(label))
	return palette[h.Sum32()%uint32(len(palette))]
}

// fateColour is how a fate is drawn; "" for an ordinary packet.
func fateColour(f lab.Fate) string {
	switch f {
	case lab.FateLost:
		return "#d62728"
	case lab.FateForged:
		return "#9c27b0"
	case lab.FateLate:
		return "#b8860b"
	case lab.FateRetransmit:
		return "#f57c00"
	case lab.FateDuplicate:
		return "#795548"
	case lab.FateRejected:
		return "#c2185b"
	}
	return ""
}

// fateWords explains a fate in a legend.
func fateWords(f lab.Fate) string {
	switch f {
	case lab.FateLost:
		return "lost (never arrived)"
	case lab.FateForged:
		return "forged (an attacker's)"
	case lab.FateLate:
		return "late (held back, or after its sender gave up)"
	case lab.FateRetransmit:
		return "retransmitted"
	case lab.FateDuplicate:
		return "duplicate"
	case lab.FateRejected:
		return "rejected by its receiver"
	}
	return string(f)
}

// ticks returns about n round values covering [lo, hi].
func ticks(lo, hi float64, n int) []float64 {
	if !(hi > lo) {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		out = append(out, v)
		if len(out) > 50 {
			break
		}
	}
	return out
}

// tickLabel formats a tick value: integers plainly, large values with k/M.
func tickLabel(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return num(v/1e9) + "G"
	case a >= 1e6:
		return num(v/1e6) + "M"
	case a >= 1e4:
		return num(v/1e3) + "k"
	}
	return num(v)
}

// scale maps [lo, hi] onto [a, b].
type scale struct{ lo, hi, a, b float64 }

func (s scale) at(v float64) float64 {
	if s.hi == s.lo {
		return (s.a + s.b) / 2
	}
	return s.a + (v-s.lo)/(s.hi-s.lo)*(s.b-s.a)
}
