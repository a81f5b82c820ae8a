package htmlreport

import (
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
)

// svgStats parses one <svg> and counts its elements by name and by class.
type svgStats struct {
	viewBox  [4]float64
	elements map[string]int
	classes  map[string]int
	texts    []string
}

func parseSVG(t *testing.T, s string) svgStats {
	t.Helper()
	st := svgStats{elements: map[string]int{}, classes: map[string]int{}}
	d := xml.NewDecoder(strings.NewReader(s))
	d.Entity = xml.HTMLEntity
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v\n%s", err, s)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			st.elements[e.Name.Local]++
			for _, a := range e.Attr {
				switch a.Name.Local {
				case "class":
					for _, c := range strings.Fields(a.Value) {
						st.classes[c]++
					}
				case "viewBox":
					f := strings.Fields(a.Value)
					if len(f) != 4 {
						t.Fatalf("viewBox %q", a.Value)
					}
					for i, v := range f {
						st.viewBox[i], err = strconv.ParseFloat(v, 64)
						if err != nil {
							t.Fatalf("viewBox %q: %v", a.Value, err)
						}
					}
				}
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if s := strings.TrimSpace(string(e)); s != "" {
				st.texts = append(st.texts, s)
			}
		}
	}
	if depth != 0 {
		t.Fatalf("unbalanced SVG")
	}
	return st
}

// sane fails on NaN, Inf or a degenerate viewBox.
func sane(t *testing.T, s string, st svgStats) {
	t.Helper()
	for _, bad := range []string{"NaN", "Inf", "e+", "e-0"} {
		if regexp.MustCompile(`="[^"]*` + regexp.QuoteMeta(bad)).MatchString(s) {
			t.Errorf("an attribute holds %q", bad)
		}
	}
	if st.viewBox[2] <= 0 || st.viewBox[3] <= 0 || st.viewBox[2] > 5000 || st.viewBox[3] > 100000 {
		t.Errorf("viewBox %v is not sane", st.viewBox)
	}
}

func ladderOf(rows ...lab.Rung) *lab.Ladder {
	return &lab.Ladder{Title: "t", Left: "client", Right: "server", Rows: rows}
}

func TestLadderSVG(t *testing.T) {
	tests := []struct {
		name    string
		ladder  *lab.Ladder
		arrows  int
		classes map[string]int // class → at least this many
		texts   []string       // somewhere in the SVG's text
	}{
		{"every message is an arrow with its states", ladderOf(
			lab.Rung{Label: "SYN", ToRight: true, LeftState: "SYN-SENT", RightState: "SYN-RECEIVED"},
			lab.Rung{Label: "SYN|ACK", LeftState: "ESTABLISHED"},
			lab.Rung{LeftState: "closing"},
		), 2, map[string]int{"rung": 3, "state": 4, "dot": 2}, []string{"SYN-SENT", "SYN-RECEIVED", "SYN|ACK"}},
		{"a lost message stops short with a cross", ladderOf(
			lab.Rung{Label: "data", ToRight: true, Kind: lab.FateLost},
		), 1, map[string]int{"fate-lost": 1, "cross": 1}, []string{"lost (never arrived)"}},
		{"forged, late and retransmitted messages are marked apart", ladderOf(
			lab.Rung{Label: "a", Kind: lab.FateForged},
			lab.Rung{Label: "b", Kind: lab.FateLate},
			lab.Rung{Label: "c", ToRight: true, Kind: lab.FateRetransmit},
		), 3, map[string]int{"fate-forged": 1, "fate-late": 1, "fate-retransmit": 1}, []string{"forged (an attacker's)", "↻ c"}},
		{"a reported row says it is not in the capture", ladderOf(
			lab.Rung{Label: "x", ToRight: true, Reported: "engine records"},
		), 1, map[string]int{"reported-row": 1}, []string{"◇ x"}},
		{"a long label is cut on the arrow but whole in the title", ladderOf(
			lab.Rung{Label: strings.Repeat("word ", 40) + "END", ToRight: true, Detail: "the comment"},
		), 1, map[string]int{"rung": 1}, []string{"END", "the comment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			ladderSVG(&b, tt.ladder)
			st := parseSVG(t, b.String())
			sane(t, b.String(), st)
			if got := st.classes["arrow"]; got != tt.arrows {
				t.Errorf("%d arrows, want %d", got, tt.arrows)
			}
			for c, n := range tt.classes {
				if st.classes[c] < n {
					t.Errorf("class %s: %d, want at least %d", c, st.classes[c], n)
				}
			}
			all := strings.Join(st.texts, "\n")
			for _, s := range tt.texts {
				if !strings.Contains(all, s) {
					t.Errorf("no %q in the SVG's text", s)
				}
			}
		})
	}
}

func TestLadderTimeRunsDownAndJumpsAreMarked(t *testing.T) {
	l := ladderOf()
	for i, at := range []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 500} {
		l.Rows = append(l.Rows, lab.Rung{Label: "m" + strconv.Itoa(i), ToRight: i%2 == 0, AtMS: at})
	}
	l.Timed = true
	ys, jumps := ladderRows(l)
	for i := 1; i < len(ys); i++ {
		if ys[i] <= ys[i-1] {
			t.Fatalf("row %d at y=%v is not below row %d at %v", i, ys[i], i-1, ys[i-1])
		}
	}
	if len(jumps) != 1 || !strings.Contains(jumps[0].label, "490 ms later") {
		t.Errorf("jumps %+v, want one saying 490 ms later", jumps)
	}
	var b strings.Builder
	ladderSVG(&b, l)
	st := parseSVG(t, b.String())
	sane(t, b.String(), st)
	if st.classes["jump"] != 2 || st.classes["jumplabel"] != 1 {
		t.Errorf("jump marks: %d on the lifelines, %d labels; want 2 and 1", st.classes["jump"], st.classes["jumplabel"])
	}
	if st.classes["t"] != 12 {
		t.Errorf("%d time labels, want 12", st.classes["t"])
	}
}

func TestLadderUntimedRowsAreEvenlySpaced(t *testing.T) {
	l := ladderOf(lab.Rung{Label: "a"}, lab.Rung{Label: "b"}, lab.Rung{Label: "c"})
	ys, jumps := ladderRows(l)
	if len(jumps) != 0 || ys[1]-ys[0] != ys[2]-ys[1] {
		t.Errorf("ys %v jumps %v", ys, jumps)
	}
}

func TestPlotSVG(t *testing.T) {
	xy := &lab.Plot{Title: "ts", Kind: lab.PlotXY, XLabel: "time (ms)", YLabel: "seq"}
	seg := xy.Add("segments", lab.SeriesRanges)
	seg.Put(lab.Point{X: 0, Y: 0, Y2: 100})
	seg.Put(lab.Point{X: 1, Y: 100, Y2: 200, Fate: lab.FateRetransmit})
	seg.Put(lab.Point{X: 2, Y: 200, Y2: 300, Fate: lab.FateLost})
	xy.Add("ack", lab.SeriesStep).At(0, 0).At(1.5, 200).At(3, 300)
	xy.Add("window", lab.SeriesStep).At(0, 65535).At(math.NaN(), 1).At(3, 65835)

	tl := &lab.Plot{Title: "states", Kind: lab.PlotTimeline, XLabel: "time (ms)", Machine: "tcp"}
	tl.Add("lab", lab.SeriesSpans).Span(0, 1, "SYN-SENT").Span(1, 5, "ESTABLISHED")
	tl.Add("events", lab.SeriesEvents).Event(2, "late one").Put(lab.Point{X: 3, Label: "forged", Fate: lab.FateForged})

	bars := &lab.Plot{Title: "bytes", Kind: lab.PlotBars, YLabel: "bytes"}
	bars.Add("up", lab.SeriesPoints).Put(lab.Point{Label: "a:1", Y: 1000}).Put(lab.Point{Label: "b:2", Y: 0})

	one := &lab.Plot{Title: "one point", Kind: lab.PlotXY}
	one.Add("x", lab.SeriesLine).At(5, 5)

	tests := []struct {
		name  string
		plot  *lab.Plot
		class string
		marks int
		texts []string
	}{
		{"time–sequence: ranges, lines, fates, window clipped", xy, "xy", 5, []string{"retransmitted", "lost (never arrived)", "lines above the segments"}},
		{"timeline: spans and events", tl, "timeline", 4, []string{"ESTABLISHED", "forged (an attacker's)"}},
		{"bars: one per point, zero too", bars, "bars", 2, []string{"a:1", "1000"}},
		{"a single point still has a sane frame", one, "xy", 1, nil},
	}
	if n := len(xy.Find("window").Points); n != 2 {
		t.Fatalf("a NaN point was kept: %d points", n)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			plotSVG(&b, tt.plot)
			st := parseSVG(t, b.String())
			sane(t, b.String(), st)
			if st.classes[tt.class] != 1 {
				t.Errorf("classes %v, want %s", st.classes, tt.class)
			}
			if st.classes["mark"] != tt.marks {
				t.Errorf("%d marks, want %d", st.classes["mark"], tt.marks)
			}
			all := strings.Join(st.texts, "\n")
			for _, s := range tt.texts {
				if !strings.Contains(all, s) {
					t.Errorf("no %q in the SVG's text", s)
				}
			}
		})
	}
}

func TestEmptyPlotSaysSo(t *testing.T) {
	var b strings.Builder
	plotSVG(&b, &lab.Plot{Title: "nothing", Kind: lab.PlotXY})
	if strings.Contains(b.String(), "<svg") || !strings.Contains(b.String(), "no points were measured") {
		t.Errorf("got %q", b.String())
	}
}

func TestStateDiagramHighlightsWhatTheRunUsed(t *testing.T) {
	r := &lab.Report{Plots: []*lab.Plot{{Kind: lab.PlotTimeline, Machine: "tcp", Series: []*lab.Series{
		{Name: "lab", Kind: lab.SeriesSpans, Points: []lab.Point{{Label: "SYN-SENT"}, {Label: "ESTABLISHED"}, {Label: "FIN-WAIT-1"}}},
		{Name: "kernel", Kind: lab.SeriesSpans, Points: []lab.Point{{Label: "ESTABLISHED"}, {Label: "CLOSED"}}},
	}}}}
	u, ok := tcpUsed(r)
	if !ok {
		t.Fatal("no TCP states found")
	}
	var b strings.Builder
	stateDiagramSVG(&b, u)
	st := parseSVG(t, b.String())
	sane(t, b.String(), st)
	if st.classes["state-box"] != 12 {
		t.Errorf("%d states drawn, want 11 and the torn-down CLOSED", st.classes["state-box"])
	}
	// SYN-SENT, ESTABLISHED, FIN-WAIT-1, CLOSED, and the torn-down node
	// ESTABLISHED → CLOSED (an RST) reaches; three transitions.
	if got := st.classes["used"]; got != 5+3 {
		t.Errorf("%d highlighted, want 5 states and 3 transitions", got)
	}
	if _, ok := tcpUsed(&lab.Report{}); ok {
		t.Error("a report without TCP timelines gets a diagram")
	}
}

func TestRenderIsOnePageWithEverythingInline(t *testing.T) {
	l := ladderOf(lab.Rung{Label: "GET /", ToRight: true})
	reports := []*lab.Report{
		{Experiment: "g/one", Shows: "it shows <this>", Passed: true, Ladders: []*lab.Ladder{l},
			Plots:  []*lab.Plot{{Title: "t: states", Kind: lab.PlotTimeline, Series: []*lab.Series{{Name: "a", Kind: lab.SeriesSpans, Points: []lab.Point{{X: 0, X2: 1, Label: "x"}}}}}},
			Checks: []lab.Check{{Name: "works", Passed: true, Detail: "1 of 1"}}, Captures: []string{"/x/g/one.pcapng"}},
		{Experiment: "g/two", Checks: []lab.Check{{Name: "fails", Detail: "0 of 1"}, {Name: "later", NotJudged: "the capture x is incomplete"}},
			Tables: []lab.Table{{Title: "tab", Rows: [][]string{{"h1", "h2"}, {"a", "b"}}}}, Error: "boom"},
		{Experiment: "g/*", Summary: true},
	}
	var b strings.Builder
	err := Render(&b, reports, Options{Files: func(r *lab.Report) []Link {
		return []Link{{Name: "g/one.pcapng", Href: "../caps/g/one.pcapng", Kind: "capture"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<!DOCTYPE html>", "<style>", "<script>", `id="exp-g-one"`, `id="exp-g-summary"`, "it shows &lt;this&gt;",
		`href="../caps/g/one.pcapng"`, "1 passed, 1 failed", `class="experiment failed"`, "not judged, the capture x is incomplete",
		"Error: boom", "<th>h1</th>", `class="plot timeline"`, `class="ladder"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "src=", "@import", "url(http"} {
		if strings.Contains(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("the page refers outside itself: %q", bad)
		}
	}
	// The plot is drawn right after the ladder it belongs to? It has no
	// matching ladder title, so after every ladder.
	if strings.Index(page, `class="plot timeline"`) < strings.Index(page, `class="ladder"`) {
		t.Error("a plot of no ladder is drawn before the ladders")
	}
}

func TestPlotsFollowTheirLadder(t *testing.T) {
	r := &lab.Report{
		Ladders: []*lab.Ladder{{Title: "first conn (as captured)"}, {Title: "second conn (as captured)"}},
		Plots:   []*lab.Plot{{Title: "second conn: time–sequence"}, {Title: "first conn: states"}, {Title: "loose"}},
	}
	got := plotsAfter(r)
	if len(got[0]) != 1 || got[0][0].Title != "first conn: states" || len(got[1]) != 1 || len(got[-1]) != 1 {
		t.Errorf("placement %v", got)
	}
}

func TestLadderWithTimedRowsIsTimedWithoutTheFlag(t *testing.T) {
	l := ladderOf(lab.Rung{Label: "a"}, lab.Rung{Label: "b", AtMS: 2})
	var b strings.Builder
	ladderSVG(&b, l)
	if st := parseSVG(t, b.String()); st.classes["t"] != 2 {
		t.Errorf("%d time labels, want 2", st.classes["t"])
	}
}
