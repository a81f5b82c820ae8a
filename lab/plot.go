package lab

import (
	"math"
	"time"
)

// Plot is a picture's data, drawn from what the run measured: a small,
// general form that the HTML report draws (lab/htmlreport) and --json
// carries. An experiment adds one with Env.Plot and fills its series.
//
// X is time in milliseconds from the start of what the plot shows unless
// the plot says otherwise; Y's meaning is the plot's YLabel. A plot holds
// what was measured only: no fitted or expected curve.
type Plot struct {
	Title string   `json:"title"`
	Kind  PlotKind `json:"kind"`
	// XLabel and YLabel name the axes with their units, e.g. "time (ms)".
	XLabel string `json:"x_label"`
	YLabel string `json:"y_label,omitempty"`
	// Machine, when set, names the state machine whose state names a
	// timeline's spans carry ("tcp": tcpstate's states), so a renderer can
	// draw that machine's diagram with the states and transitions the run
	// used highlighted.
	Machine string    `json:"machine,omitempty"`
	Series  []*Series `json:"series"`
}

// PlotKind says how a plot's axes read.
type PlotKind string

// The kinds of plot.
const (
	// PlotXY: numeric X and Y (a time–sequence graph, cwnd over time).
	PlotXY PlotKind = "xy"
	// PlotTimeline: numeric X; each series is a lane of its own, its
	// points spans (X..X2, Label) and events (X, Label). Y is unused.
	PlotTimeline PlotKind = "timeline"
	// PlotBars: one bar per point, its Label under it and its Y the
	// bar's height; X is unused.
	PlotBars PlotKind = "bars"
)

// SeriesKind says how a series' points are drawn.
type SeriesKind string

// The kinds of series.
const (
	// SeriesLine joins its points.
	SeriesLine SeriesKind = "line"
	// SeriesStep holds each point's Y until the next point's X.
	SeriesStep SeriesKind = "step"
	// SeriesPoints marks each point (X, Y) alone.
	SeriesPoints SeriesKind = "points"
	// SeriesRanges draws each point as a bar from (X, Y) to (X, Y2): a
	// segment's stretch of sequence space in a time–sequence graph.
	SeriesRanges SeriesKind = "ranges"
	// SeriesSpans (timelines) draws each point as an interval X..X2
	// labelled Label: a state held, a connection ID in use.
	SeriesSpans SeriesKind = "spans"
	// SeriesEvents (timelines) marks each point at X with its Label.
	SeriesEvents SeriesKind = "events"
)

// Series is one named set of points of a plot.
type Series struct {
	Name   string     `json:"name"`
	Kind   SeriesKind `json:"kind"`
	Points []Point    `json:"points"`
}

// Point is one measured value. Which fields count depends on the series'
// kind: X and Y always (Y unused on a timeline), X2 for spans, Y2 for
// ranges, Label for spans, events and bars.
type Point struct {
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	X2    float64 `json:"x2,omitempty"`
	Y2    float64 `json:"y2,omitempty"`
	Label string  `json:"label,omitempty"`
	// Fate marks a point drawn distinctly: lost, forged, late,
	// retransmitted, duplicate; "" for an ordinary one.
	Fate Fate `json:"fate,omitempty"`
	// Detail is the whole story of the point, shown on hover.
	Detail string `json:"detail,omitempty"`
}

// Fate is what became of a packet, for pictures that draw the unusual
// ones distinctly (a ladder's rows, a plot's points).
type Fate string

// The fates a picture draws distinctly; "" is a packet that went its way.
const (
	FateLost       Fate = "lost"       // never arrived (dropped by the link, or not in the capture)
	FateForged     Fate = "forged"     // sent by an attacker, not by the endpoint it claims
	FateLate       Fate = "late"       // arrived after its sender's peer had given up on it
	FateRetransmit Fate = "retransmit" // a copy of something sent before
	FateDuplicate  Fate = "duplicate"  // a second answer to what was already answered
	FateRejected   Fate = "rejected"   // refused by its receiver (a bad token, cookie or address)
)

// Plot adds a plot to the report and returns it for filling (Add, then
// the series' methods). Fill it from one goroutine.
func (e *Env) Plot(title string, kind PlotKind, xLabel, yLabel string) *Plot {
	p := &Plot{Title: title, Kind: kind, XLabel: xLabel, YLabel: yLabel}
	e.mu.Lock()
	e.report.Plots = append(e.report.Plots, p)
	e.mu.Unlock()
	return p
}

// Add adds a series and returns it for filling.
func (p *Plot) Add(name string, kind SeriesKind) *Series {
	s := &Series{Name: name, Kind: kind}
	p.Series = append(p.Series, s)
	return s
}

// Find returns the series called name, nil when there is none.
func (p *Plot) Find(name string) *Series {
	for _, s := range p.Series {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Len is the number of points across the plot's series.
func (p *Plot) Len() int {
	n := 0
	for _, s := range p.Series {
		n += len(s.Points)
	}
	return n
}

// At adds the point (x, y). Values that are not finite are left out: a
// plot holds measurements, and NaN measures nothing.
func (s *Series) At(x, y float64) *Series { return s.Put(Point{X: x, Y: y}) }

// Span adds the interval from..to labelled label.
func (s *Series) Span(from, to float64, label string) *Series {
	return s.Put(Point{X: from, X2: to, Label: label})
}

// Event adds an event at x labelled label.
func (s *Series) Event(x float64, label string) *Series { return s.Put(Point{X: x, Label: label}) }

// Put adds p as it is (finite values only).
func (s *Series) Put(p Point) *Series {
	for _, v := range []float64{p.X, p.Y, p.X2, p.Y2} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return s
		}
	}
	s.Points = append(s.Points, p)
	return s
}

// Last returns the last point added, nil when there is none, for setting
// its Fate or Detail.
func (s *Series) Last() *Point {
	if len(s.Points) == 0 {
		return nil
	}
	return &s.Points[len(s.Points)-1]
}

// MS is d in milliseconds, a plot's usual X.
func MS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
