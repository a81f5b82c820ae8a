package htmlreport

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab"
)

// Ladder geometry: the time column, the left states, the two lifelines,
// the right states.
const (
	ladTimeW   = 64.0
	ladStateW  = 230.0
	ladLeftX   = ladTimeW + ladStateW + 10
	ladArrowW  = 420.0
	ladRightX  = ladLeftX + ladArrowW
	ladWidth   = ladRightX + 10 + ladStateW
	ladTop     = 46.0
	ladRowMin  = 26.0 // the least space between two rows
	ladRowMax  = 90.0 // the most a gap in time may take before it is compressed
	ladSlope   = 6.0  // how far an arrow falls while it crosses
	ladLabelCh = 64   // characters of an arrow's label shown on it
	ladStateCh = 36   // characters of a state shown beside a lifeline
)

// ladderSVG draws a ladder as a sequence diagram: time running down (to
// scale when the rows carry times, a gap too long to draw to scale
// compressed and marked with its length), both endpoints' states beside
// each arrow, lost, forged, late and retransmitted messages drawn
// distinctly, and each arrow's whole label and detail in its <title>.
func ladderSVG(b *strings.Builder, l *lab.Ladder) {
	ys, jumps := ladderRows(l)
	h := ladTop + 20
	if len(ys) > 0 {
		h = ys[len(ys)-1] + 30
	}
	var fates []lab.Fate
	reported := false
	for _, r := range l.Rows {
		if r.Kind != "" && !slices.Contains(fates, r.Kind) {
			fates = append(fates, r.Kind)
		}
		reported = reported || (r.Reported != "" && r.Label != "")
	}
	legendH := 0.0
	if len(fates) > 0 || reported {
		legendH = 24
	}
	svgOpen(b, "ladder", ladWidth, h+legendH, "ladder: "+l.Title)
	b.WriteString(`<defs><marker id="ah" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="context-stroke"/></marker></defs>`)
	fmt.Fprintf(b, `<text class="who" x="%s" y="18" text-anchor="middle">%s</text>`, num(ladLeftX), esc(clip(l.Left, 40)))
	fmt.Fprintf(b, `<text class="who" x="%s" y="18" text-anchor="middle">%s</text>`, num(ladRightX), esc(clip(l.Right, 40)))
	if timed(l) {
		fmt.Fprintf(b, `<text class="axis" x="2" y="18">time (ms)</text>`)
	}
	// Lifelines, broken where time jumps.
	y0 := ladTop - 14
	for _, j := range jumps {
		for _, x := range []float64{ladLeftX, ladRightX} {
			fmt.Fprintf(b, `<line class="life" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(x), num(y0), num(x), num(j.y-6))
			fmt.Fprintf(b, `<path class="jump" d="M%s,%s l-6,3 l12,3 l-6,3 l-6,3" fill="none"/>`, num(x), num(j.y-6))
		}
		fmt.Fprintf(b, `<text class="jumplabel" x="%s" y="%s" text-anchor="middle">%s</text>`, num((ladLeftX+ladRightX)/2), num(j.y+4), esc(j.label))
		y0 = j.y + 6
	}
	for _, x := range []float64{ladLeftX, ladRightX} {
		fmt.Fprintf(b, `<line class="life" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(x), num(y0), num(x), num(h-10))
	}
	for i, r := range l.Rows {
		rungSVG(b, l, r, ys[i], i)
	}
	if legendH > 0 {
		x := 8.0
		y := h + 12
		for _, f := range fates {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" %s/>`, num(x), num(y), num(x+22), num(y), fateColour(f), dashOf(f))
			fmt.Fprintf(b, `<text class="legend" x="%s" y="%s">%s</text>`, num(x+26), num(y+4), esc(fateWords(f)))
			x += 40 + float64(len(fateWords(f)))*charW
		}
		if reported {
			fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="reported"/>`, num(x), num(y), num(x+22), num(y))
			fmt.Fprintf(b, `<text class="legend" x="%s" y="%s">◇ not in the capture: an endpoint reported it</text>`, num(x+26), num(y+4))
		}
	}
	b.WriteString("</svg>")
}

// timed reports whether a ladder's rows carry times: it says so, or a
// row has one (rows copied from a ladder that was timed).
func timed(l *lab.Ladder) bool {
	if l.Timed {
		return true
	}
	for _, r := range l.Rows {
		if r.AtMS != 0 {
			return true
		}
	}
	return false
}

// jump is a gap in time drawn shorter than to scale.
type jump struct {
	y     float64
	label string
}

// ladderRows places the rows: evenly when the ladder has no times, else
// with gaps to scale (the median gap one row's height), a gap too long
// compressed and marked.
func ladderRows(l *lab.Ladder) ([]float64, []jump) {
	ys := make([]float64, len(l.Rows))
	var jumps []jump
	pxPerMS := 0.0
	// A row without a time (a state change, a "… n segments …" row)
	// takes the time of the row before it.
	at := make([]float64, len(l.Rows))
	for i, r := range l.Rows {
		at[i] = r.AtMS
		if i > 0 && (r.AtMS == 0 || r.AtMS < at[i-1]) {
			at[i] = at[i-1]
		}
	}
	if timed(l) {
		var gaps []float64
		for i := 1; i < len(l.Rows); i++ {
			if g := at[i] - at[i-1]; g > 0 {
				gaps = append(gaps, g)
			}
		}
		if len(gaps) > 0 {
			// The gap at the 90th percentile takes the most a row may;
			// smaller ones to scale (at least one row), larger ones
			// compressed and marked.
			sort.Float64s(gaps)
			pxPerMS = ladRowMax / gaps[len(gaps)*9/10]
		}
	}
	y := ladTop
	for i := range l.Rows {
		if i > 0 {
			step := ladRowMin
			if pxPerMS > 0 {
				g := at[i] - at[i-1]
				step = max(ladRowMin, g*pxPerMS)
				if step > ladRowMax*1.5 {
					jumps = append(jumps, jump{y: y + ladRowMax/2, label: fmt.Sprintf("%s ms later", num(g))})
					step = ladRowMax
				}
			}
			y += step
		}
		ys[i] = y
	}
	return ys, jumps
}

// dashOf is a fate's dash pattern.
func dashOf(f lab.Fate) string {
	switch f {
	case lab.FateLost:
		return `stroke-dasharray="6 3"`
	case lab.FateForged:
		return `stroke-dasharray="2 2"`
	case lab.FateLate:
		return `stroke-dasharray="8 2 2 2"`
	case lab.FateDuplicate:
		return `stroke-dasharray="1 3"`
	}
	return ""
}

// rungSVG draws one row: its arrow (or its state change alone), the
// states on both sides, and its whole story in a <title>.
func rungSVG(b *strings.Builder, l *lab.Ladder, r lab.Rung, y float64, i int) {
	cls := "rung"
	if r.Kind != "" {
		cls += " fate-" + string(r.Kind)
	}
	if r.Reported != "" && r.Label != "" {
		cls += " reported-row"
	}
	fmt.Fprintf(b, `<g class="%s" data-row="%d">`, cls, i)
	var tip []string
	if r.Label != "" {
		dir := "→"
		if !r.ToRight {
			dir = "←"
		}
		tip = append(tip, dir+" "+r.Label)
	}
	if r.Kind != "" {
		tip = append(tip, "("+fateWords(r.Kind)+")")
	}
	if r.Reported != "" && r.Label != "" {
		tip = append(tip, "◇ not in the capture: reported by "+r.Reported)
	}
	if r.LeftState != "" {
		tip = append(tip, l.Left+": "+r.LeftState)
	}
	if r.RightState != "" {
		tip = append(tip, l.Right+": "+r.RightState)
	}
	if r.Detail != "" {
		tip = append(tip, r.Detail)
	}
	if timed(l) && r.Label != "" {
		tip = append(tip, "at "+num(r.AtMS)+" ms")
	}
	b.WriteString(title(strings.Join(tip, "\n")))
	if timed(l) && r.Label != "" {
		fmt.Fprintf(b, `<text class="t" x="2" y="%s">%s</text>`, num(y+4), num(r.AtMS))
	}
	if r.Label != "" {
		x1, x2 := ladLeftX, ladRightX
		if !r.ToRight {
			x1, x2 = x2, x1
		}
		colour := fateColour(r.Kind)
		stroke := "#333"
		if colour != "" {
			stroke = colour
		}
		extra := dashOf(r.Kind)
		if r.Reported != "" {
			extra = `stroke-dasharray="4 4" opacity="0.6"`
		}
		width := "1.4"
		if r.Kind == lab.FateRetransmit {
			width = "2.4"
		}
		end := x2
		marker := `marker-end="url(#ah)"`
		if r.Kind == lab.FateLost {
			// A lost message stops short, with a cross where it died.
			end = x1 + (x2-x1)*0.7
			marker = ""
		}
		yEnd := y + ladSlope*(end-x1)/(x2-x1)
		fmt.Fprintf(b, `<line class="arrow" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s" %s %s/>`,
			num(x1), num(y-ladSlope/2), num(end), num(yEnd-ladSlope/2), stroke, width, extra, marker)
		if r.Kind == lab.FateLost {
			cx, cy := end, yEnd-ladSlope/2
			fmt.Fprintf(b, `<path class="cross" d="M%s,%s l8,8 m0,-8 l-8,8" stroke="%s" stroke-width="2"/>`, num(cx-4), num(cy-4), stroke)
		}
		label := r.Label
		if r.Reported != "" {
			label = "◇ " + label
		}
		if r.Kind == lab.FateRetransmit && !strings.Contains(label, "retrans") {
			label = "↻ " + label
		}
		fmt.Fprintf(b, `<text class="label" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>`,
			num((ladLeftX+ladRightX)/2), num(y-ladSlope/2-4), stroke, esc(clip(label, ladLabelCh)))
	} else {
		for _, x := range []float64{ladLeftX, ladRightX} {
			fmt.Fprintf(b, `<circle class="dot" cx="%s" cy="%s" r="2.5"/>`, num(x), num(y))
		}
	}
	if r.LeftState != "" {
		fmt.Fprintf(b, `<text class="state" x="%s" y="%s" text-anchor="end">%s</text>`, num(ladLeftX-8), num(y+4), esc(clip(r.LeftState, ladStateCh)))
	}
	if r.RightState != "" {
		fmt.Fprintf(b, `<text class="state" x="%s" y="%s">%s</text>`, num(ladRightX+8), num(y+4), esc(clip(r.RightState, ladStateCh)))
	}
	b.WriteString("</g>")
}
