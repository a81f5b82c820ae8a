package htmlreport

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
)

// tcpLayout places the TCP states as RFC 9293's figure does: opening at
// the top, ESTABLISHED in the middle, the active close down the left and
// the passive close down the right.
var tcpLayout = map[string][2]float64{
	"CLOSED":          {420, 34},
	"LISTEN":          {250, 104},
	"SYN-RECEIVED":    {150, 184},
	"SYN-SENT":        {650, 184},
	"ESTABLISHED":     {420, 264},
	"FIN-WAIT-1":      {150, 344},
	"CLOSE-WAIT":      {690, 344},
	"FIN-WAIT-2":      {110, 434},
	"CLOSING":         {380, 434},
	"LAST-ACK":        {690, 434},
	"TIME-WAIT":       {380, 514},
	tcpstate.TornDown: {690, 514},
}

const boxW, boxH = 128.0, 30.0

// used is what a run's TCP timelines show: the states held and the
// transitions made, per lane.
type used struct {
	states map[string]bool
	moves  map[[2]string]bool
}

// tcpUsed reads the states and transitions from the spans of the
// report's plots whose Machine is "tcp" (each lane's consecutive spans).
func tcpUsed(r *lab.Report) (used, bool) {
	u := used{states: map[string]bool{}, moves: map[[2]string]bool{}}
	found := false
	for _, p := range r.Plots {
		if p.Machine != "tcp" {
			continue
		}
		for _, s := range p.Series {
			if s.Kind != lab.SeriesSpans {
				continue
			}
			prev := ""
			for _, pt := range s.Points {
				if _, ok := tcpLayout[pt.Label]; !ok {
					continue
				}
				found = true
				u.states[pt.Label] = true
				if prev != "" && prev != pt.Label {
					u.moves[[2]string{prev, pt.Label}] = true
				}
				prev = pt.Label
			}
		}
	}
	return u, found
}

// stateDiagramSVG draws tcpstate's transition table (every arrow, from
// the same rows the engine runs) with the states and transitions this
// run used highlighted. A move to CLOSED that the table has only as a
// teardown (RST, ABORT) lights the arrow to the torn-down node.
func stateDiagramSVG(b *strings.Builder, u used) {
	edges := tcpstate.DiagramEdges()
	lit := func(e tcpstate.DiagramEdge) bool {
		to := e.To
		if e.Teardown {
			to = "CLOSED"
		}
		return u.moves[[2]string{e.From, to}]
	}
	const w, h = 840.0, 560.0
	svgOpen(b, "statediagram", w, h, "TCP state diagram, the states and transitions of this run highlighted")
	b.WriteString(`<defs><marker id="sd-ah" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto"><path d="M0,0L10,5L0,10z" fill="context-stroke"/></marker></defs>`)
	// Unused arrows first, so the used ones are drawn over them.
	for _, pass := range []bool{false, true} {
		for _, e := range edges {
			if lit(e) != pass {
				continue
			}
			a, okA := tcpLayout[e.From]
			z, okZ := tcpLayout[e.To]
			if !okA || !okZ || e.From == e.To {
				continue
			}
			d := edgePath(a, z)
			cls := "edge"
			if pass {
				cls += " used"
			}
			if e.Teardown {
				cls += " teardown"
			}
			fmt.Fprintf(b, `<path class="%s" d="%s" marker-end="url(#sd-ah)">%s</path>`, cls, d,
				title(e.From+" → "+e.To+"\n"+strings.Join(e.Labels, "\n")))
		}
	}
	names := make([]string, 0, len(tcpLayout))
	for n := range tcpLayout {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := tcpLayout[n]
		cls := "state-box"
		if u.states[n] || (n == tcpstate.TornDown && torn(u, edges)) {
			cls += " used"
		}
		fmt.Fprintf(b, `<g class="%s"><rect x="%s" y="%s" width="%s" height="%s" rx="8"/><text x="%s" y="%s" text-anchor="middle">%s</text>%s</g>`,
			cls, num(c[0]-boxW/2), num(c[1]-boxH/2), num(boxW), num(boxH), num(c[0]), num(c[1]+4), esc(n), title(n))
	}
	fmt.Fprintf(b, `<text class="legend" x="10" y="%s">highlighted: the states and transitions this run's TCP endpoints (lab and kernel) went through; hover an arrow for its causes</text>`, num(h-8))
	b.WriteString("</svg>")
}

// torn reports whether the run used a move that the diagram draws to the
// torn-down node.
func torn(u used, edges []tcpstate.DiagramEdge) bool {
	for _, e := range edges {
		if e.Teardown && u.moves[[2]string{e.From, "CLOSED"}] {
			return true
		}
	}
	return false
}

// edgePath is a gently curved arrow between two boxes' borders, curved to
// one side so that A→B and B→A do not overlap.
func edgePath(a, z [2]float64) string {
	dx, dy := z[0]-a[0], z[1]-a[1]
	l := math.Hypot(dx, dy)
	if l == 0 {
		return ""
	}
	ux, uy := dx/l, dy/l
	// Leave each box at its border along the line between centres.
	cut := func(ux, uy float64) float64 {
		tx, ty := math.Inf(1), math.Inf(1)
		if ux != 0 {
			tx = (boxW / 2) / math.Abs(ux)
		}
		if uy != 0 {
			ty = (boxH / 2) / math.Abs(uy)
		}
		return min(tx, ty) + 2
	}
	c := cut(ux, uy)
	x1, y1 := a[0]+ux*c, a[1]+uy*c
	x2, y2 := z[0]-ux*c, z[1]-uy*c
	// Bend to the right of the direction of travel.
	mx, my := (x1+x2)/2-uy*l*0.12, (y1+y2)/2+ux*l*0.12
	return fmt.Sprintf("M%s,%sQ%s,%s %s,%s", num(x1), num(y1), num(mx), num(my), num(x2), num(y2))
}
