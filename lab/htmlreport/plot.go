package htmlreport

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/statelab/statelab/lab"
)

// plotSVG draws a plot by its kind; a plot with no points draws nothing
// and says so.
func plotSVG(b *strings.Builder, p *lab.Plot) {
	if p.Len() == 0 {
		fmt.Fprintf(b, `<p class="empty">%s: no points were measured.</p>`, esc(p.Title))
		return
	}
	switch p.Kind {
	case lab.PlotTimeline:
		timelineSVG(b, p)
	case lab.PlotBars:
		barsSVG(b, p)
	default:
		xySVG(b, p)
	}
}

// XY plot geometry.
const (
	xyW, xyH                      = 900.0, 340.0
	xyLeft, xyRight, xyTop, xyBot = 78.0, 20.0, 14.0, 62.0
)

// xyScales maps an XY plot's data onto the frame: X over every point,
// Y over every point with 4% headroom, unless a time–sequence graph's
// segments (ranges) are far below its lines, which are then clipped
// (clipped reports it).
func xyScales(p *lab.Plot) (sx, sy scale, clipped bool) {
	xlo, xhi, ylo, yhi := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	// A time–sequence graph's segments (ranges) set the Y range, with
	// headroom; lines far above them (a window edge 64 KiB beyond 100
	// bytes of data) are clipped at the frame rather than squash the
	// segments into a line.
	rlo, rhi := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			xlo, xhi = min(xlo, pt.X), max(xhi, pt.X)
			ylo, yhi = min(ylo, pt.Y), max(yhi, pt.Y)
			if s.Kind == lab.SeriesRanges {
				ylo, yhi = min(ylo, pt.Y2), max(yhi, pt.Y2)
				rlo, rhi = min(rlo, pt.Y, pt.Y2), max(rhi, pt.Y, pt.Y2)
			}
		}
	}
	if rhi > math.Inf(-1) {
		if top := rhi + max((rhi-rlo)*0.3, 1); yhi > top {
			yhi, clipped = top, true
		}
	}
	if xhi == xlo {
		xlo, xhi = xlo-1, xhi+1
	}
	if yhi == ylo {
		ylo, yhi = ylo-1, yhi+1
	}
	pad := (yhi - ylo) * 0.04
	ylo, yhi = ylo-pad, yhi+pad
	return scale{xlo, xhi, xyLeft, xyW - xyRight}, scale{ylo, yhi, xyH - xyBot, xyTop}, clipped
}

// xySVG draws numeric X against numeric Y: lines, steps, points and
// ranges (a time–sequence graph's segments), each series in its colour,
// points with a fate in the fate's colour, a legend below.
func xySVG(b *strings.Builder, p *lab.Plot) {
	sx, sy, clipped := xyScales(p)
	svgOpen(b, "plot xy", xyW, xyH, p.Title)
	axes(b, sx, sy, p.XLabel, p.YLabel)
	clipID := fmt.Sprintf("clip%d", clipSeq.Add(1))
	fmt.Fprintf(b, `<clipPath id="%s"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath><g clip-path="url(#%s)">`,
		clipID, num(sx.a), num(sy.b-3), num(sx.b-sx.a), num(sy.a-sy.b+6), clipID)
	var fates []lab.Fate
	// Segments (ranges) last, so that the ACK line a segment's ACK
	// follows at once does not hide it.
	order := make([]int, 0, len(p.Series))
	for _, ranges := range []bool{false, true} {
		for i, s := range p.Series {
			if (s.Kind == lab.SeriesRanges) == ranges {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		s := p.Series[i]
		colour := palette[i%len(palette)]
		fmt.Fprintf(b, `<g class="series" data-series="%s">`, esc(s.Name))
		switch s.Kind {
		case lab.SeriesLine, lab.SeriesStep:
			var d strings.Builder
			for j, pt := range s.Points {
				x, y := sx.at(pt.X), sy.at(pt.Y)
				switch {
				case j == 0:
					fmt.Fprintf(&d, "M%s,%s", num(x), num(y))
				case s.Kind == lab.SeriesStep:
					fmt.Fprintf(&d, "H%sV%s", num(x), num(y))
				default:
					fmt.Fprintf(&d, "L%s,%s", num(x), num(y))
				}
			}
			fmt.Fprintf(b, `<path class="mark" d="%s" fill="none" stroke="%s" stroke-width="1.5">%s</path>`, d.String(), colour, title(s.Name))
		}
		for _, pt := range s.Points {
			c := colour
			if fc := fateColour(pt.Fate); fc != "" {
				c = fc
				if !slices.Contains(fates, pt.Fate) {
					fates = append(fates, pt.Fate)
				}
			}
			tip := pointTip(s, pt, p)
			switch s.Kind {
			case lab.SeriesRanges:
				x, y1, y2 := sx.at(pt.X), sy.at(pt.Y), sy.at(pt.Y2)
				w := "1.6"
				if pt.Fate != "" {
					w = "3"
				}
				fmt.Fprintf(b, `<g class="mark"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"/><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/>%s</g>`,
					num(x), num(y1), num(x), num(y2), c, w, num(x-2.5), num(y2), num(x+2.5), num(y2), c, title(tip))
				if pt.Fate == lab.FateLost {
					fmt.Fprintf(b, `<path d="M%s,%s l6,6 m0,-6 l-6,6" stroke="%s" stroke-width="1.5"/>`, num(x-3), num(y2-3), c)
				}
			case lab.SeriesPoints:
				fmt.Fprintf(b, `<circle class="mark" cx="%s" cy="%s" r="2.8" fill="%s">%s</circle>`, num(sx.at(pt.X)), num(sy.at(pt.Y)), c, title(tip))
			default:
				if pt.Fate != "" || pt.Detail != "" {
					fmt.Fprintf(b, `<circle class="mark" cx="%s" cy="%s" r="2.5" fill="%s">%s</circle>`, num(sx.at(pt.X)), num(sy.at(pt.Y)), c, title(tip))
				}
			}
		}
		b.WriteString("</g>")
	}
	b.WriteString("</g>")
	if clipped {
		fmt.Fprintf(b, `<text class="tick" x="%s" y="%s" text-anchor="end">lines above the segments run on above the frame (hover a line for its name)</text>`, num(sx.b-4), num(sy.b+12))
	}
	legend(b, p.Series, fates, xyH-20)
	b.WriteString("</svg>")
}

// clipSeq numbers the plots' clip paths, unique on a page.
var clipSeq atomic.Uint64

// pointTip is a point's hover text.
func pointTip(s *lab.Series, pt lab.Point, p *lab.Plot) string {
	t := fmt.Sprintf("%s: x=%s", s.Name, num(pt.X))
	switch s.Kind {
	case lab.SeriesRanges:
		t += fmt.Sprintf(", %s..%s", num(pt.Y), num(pt.Y2))
	case lab.SeriesSpans:
		t += fmt.Sprintf("..%s", num(pt.X2))
	case lab.SeriesEvents:
	default:
		t += ", y=" + num(pt.Y)
	}
	if pt.Label != "" {
		t += "\n" + pt.Label
	}
	if pt.Fate != "" {
		t += "\n(" + fateWords(pt.Fate) + ")"
	}
	if pt.Detail != "" {
		t += "\n" + pt.Detail
	}
	return t
}

// axes draws the frame, the ticks and the axis labels.
func axes(b *strings.Builder, sx, sy scale, xLabel, yLabel string) {
	fmt.Fprintf(b, `<rect class="frame" x="%s" y="%s" width="%s" height="%s"/>`, num(sx.a), num(sy.b), num(sx.b-sx.a), num(sy.a-sy.b))
	for _, v := range ticks(sx.lo, sx.hi, 8) {
		x := sx.at(v)
		fmt.Fprintf(b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`,
			num(x), num(sy.b), num(x), num(sy.a), num(x), num(sy.a+14), tickLabel(v))
	}
	for _, v := range ticks(sy.lo, sy.hi, 6) {
		y := sy.at(v)
		fmt.Fprintf(b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="end">%s</text>`,
			num(sx.a), num(y), num(sx.b), num(y), num(sx.a-4), num(y+4), tickLabel(v))
	}
	fmt.Fprintf(b, `<text class="axis" x="%s" y="%s" text-anchor="middle">%s</text>`, num((sx.a+sx.b)/2), num(sy.a+30), esc(xLabel))
	if yLabel != "" {
		fmt.Fprintf(b, `<text class="axis" transform="translate(14,%s) rotate(-90)" text-anchor="middle">%s</text>`, num((sy.a+sy.b)/2), esc(yLabel))
	}
}

// legend names each series by its colour, then the fates drawn, on a
// second line when the first is full.
func legend(b *strings.Builder, series []*lab.Series, fates []lab.Fate, y float64) {
	x := xyLeft
	wrap := func(w float64) {
		if x+w > xyW-10 && x > xyLeft {
			x, y = xyLeft, y+15
		}
	}
	for i, s := range series {
		wrap(28 + float64(len([]rune(s.Name)))*charW)
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="12" height="4" fill="%s"/><text class="legend" x="%s" y="%s">%s</text>`,
			num(x), num(y-4), palette[i%len(palette)], num(x+16), num(y), esc(s.Name))
		x += 28 + float64(len([]rune(s.Name)))*charW
	}
	for _, f := range fates {
		wrap(24 + float64(len(fateWords(f)))*charW)
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="4" fill="%s"/><text class="legend" x="%s" y="%s">%s</text>`,
			num(x+4), num(y-2), fateColour(f), num(x+12), num(y), esc(fateWords(f)))
		x += 24 + float64(len(fateWords(f)))*charW
	}
}

// Timeline geometry.
const (
	tlW, tlLabelW, tlLane, tlTop, tlRight = 900.0, 190.0, 30.0, 10.0, 20.0
)

// timelineSVG draws one lane per series: spans as labelled bars (one
// colour per label, so a state or a connection ID has the same colour in
// every lane), events as marks, with a time axis below.
func timelineSVG(b *strings.Builder, p *lab.Plot) {
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range p.Series {
		for _, pt := range s.Points {
			xlo, xhi = min(xlo, pt.X), max(xhi, pt.X)
			if s.Kind == lab.SeriesSpans {
				xhi = max(xhi, pt.X2)
			}
		}
	}
	if xhi <= xlo {
		xlo, xhi = xlo-1, xhi+1
	}
	h := tlTop + float64(len(p.Series))*tlLane + 70
	sx := scale{xlo, xhi, tlLabelW, tlW - tlRight}
	svgOpen(b, "plot timeline", tlW, h, p.Title)
	bottom := tlTop + float64(len(p.Series))*tlLane
	for _, v := range ticks(xlo, xhi, 8) {
		x := sx.at(v)
		fmt.Fprintf(b, `<line class="grid" x1="%s" y1="%s" x2="%s" y2="%s"/><text class="tick" x="%s" y="%s" text-anchor="middle">%s</text>`,
			num(x), num(tlTop), num(x), num(bottom), num(x), num(bottom+14), tickLabel(v))
	}
	fmt.Fprintf(b, `<text class="axis" x="%s" y="%s" text-anchor="middle">%s</text>`, num((sx.a+sx.b)/2), num(bottom+32), esc(p.XLabel))
	var fates []lab.Fate
	for i, s := range p.Series {
		y := tlTop + float64(i)*tlLane
		fmt.Fprintf(b, `<g class="series lane" data-series="%s"><text class="lanelabel" x="%s" y="%s" text-anchor="end">%s%s</text>`,
			esc(s.Name), num(tlLabelW-8), num(y+tlLane/2+4), esc(clip(s.Name, 30)), title(s.Name))
		fmt.Fprintf(b, `<line class="lane-rule" x1="%s" y1="%s" x2="%s" y2="%s"/>`, num(tlLabelW), num(y+tlLane), num(tlW-tlRight), num(y+tlLane))
		for _, pt := range s.Points {
			tip := pointTip(s, pt, p)
			if s.Kind == lab.SeriesSpans {
				x1, x2 := sx.at(pt.X), sx.at(max(pt.X2, pt.X))
				w := max(x2-x1, 1.5)
				c := colourOf(pt.Label)
				fmt.Fprintf(b, `<g class="mark span"><rect x="%s" y="%s" width="%s" height="%s" fill="%s" fill-opacity="0.75" stroke="#fff" stroke-width="0.5"/>`,
					num(x1), num(y+5), num(w), num(tlLane-10), c)
				if n := int(w / charW); n >= 3 {
					fmt.Fprintf(b, `<text class="spanlabel" x="%s" y="%s">%s</text>`, num(x1+3), num(y+tlLane/2+4), esc(clip(pt.Label, n)))
				}
				b.WriteString(title(tip) + "</g>")
				continue
			}
			c := "#333"
			if fc := fateColour(pt.Fate); fc != "" {
				c = fc
				if !slices.Contains(fates, pt.Fate) {
					fates = append(fates, pt.Fate)
				}
			}
			x := sx.at(pt.X)
			cy := y + tlLane/2
			fmt.Fprintf(b, `<path class="mark event" d="M%s,%s l4,6 l-4,6 l-4,-6z" fill="%s" fill-opacity="0.8">%s</path>`, num(x), num(cy-6), c, title(tip))
		}
		b.WriteString("</g>")
	}
	x := tlLabelW
	for _, f := range fates {
		fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="4" fill="%s"/><text class="legend" x="%s" y="%s">%s</text>`,
			num(x+4), num(h-14), fateColour(f), num(x+12), num(h-10), esc(fateWords(f)))
		x += 24 + float64(len(fateWords(f)))*charW
	}
	b.WriteString("</svg>")
}

// barsSVG draws one horizontal bar per point: its label on the left, its
// value at the bar's end.
func barsSVG(b *strings.Builder, p *lab.Plot) {
	type bar struct {
		series string
		pt     lab.Point
		colour string
	}
	var bars []bar
	hi := 0.0
	for i, s := range p.Series {
		for _, pt := range s.Points {
			bars = append(bars, bar{s.Name, pt, palette[i%len(palette)]})
			hi = max(hi, pt.Y)
		}
	}
	if hi <= 0 {
		hi = 1
	}
	const rowH, labelW, w = 26.0, 260.0, 900.0
	h := 16 + float64(len(bars))*rowH + 30
	sx := scale{0, hi, labelW, w - 120}
	svgOpen(b, "plot bars", w, h, p.Title)
	for i, br := range bars {
		y := 10 + float64(i)*rowH
		label := br.pt.Label
		if len(p.Series) > 1 {
			label = br.series + ": " + label
		}
		c := br.colour
		if fc := fateColour(br.pt.Fate); fc != "" {
			c = fc
		}
		fmt.Fprintf(b, `<g class="mark bar"><text class="lanelabel" x="%s" y="%s" text-anchor="end">%s</text><rect x="%s" y="%s" width="%s" height="%s" fill="%s"/><text class="tick" x="%s" y="%s">%s</text>%s</g>`,
			num(labelW-8), num(y+rowH/2+4), esc(clip(label, 40)), num(labelW), num(y+4), num(max(sx.at(br.pt.Y)-labelW, 1)), num(rowH-8), c,
			num(sx.at(br.pt.Y)+6), num(y+rowH/2+4), tickLabel(br.pt.Y), title(label+": "+num(br.pt.Y)+" "+p.YLabel+detailOf(br.pt)))
	}
	fmt.Fprintf(b, `<text class="axis" x="%s" y="%s" text-anchor="middle">%s</text>`, num((labelW+w-120)/2), num(h-8), esc(p.YLabel))
	b.WriteString("</svg>")
}

func detailOf(pt lab.Point) string {
	if pt.Detail == "" {
		return ""
	}
	return "\n" + pt.Detail
}
