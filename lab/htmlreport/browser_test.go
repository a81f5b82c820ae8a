package htmlreport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/htmlreport/browsertest"
	"github.com/statelab/statelab/lab/labtest"
)

// TestProbeSeesWhatABrokenPageDoes proves the browser check can fail: a
// script error, a console error and a fetched image are each reported,
// and an empty picture measures empty.
func TestProbeSeesWhatABrokenPageDoes(t *testing.T) {
	chromium := labtest.NeedTool(t, "chromium")
	page := filepath.Join(t.TempDir(), "index.html")
	broken := `<!DOCTYPE html><html><head><title>x</title></head><body>
<section data-experiment="g/x"><svg class="ladder" width="0" height="0"></svg></section>
<img src="nothing-here.png">
<script>console.error("said no"); undefinedFunction();</script>
</body></html>`
	if err := os.WriteFile(page, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := browsertest.Probe(context.Background(), chromium, page)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(res.Errors, "\n")
	for _, want := range []string{"said no", "undefinedFunction"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors %q lack %q", all, want)
		}
	}
	if len(res.Fetched) == 0 || !strings.Contains(res.Fetched[0], "nothing-here.png") {
		t.Errorf("fetched %q, want the image", res.Fetched)
	}
	if len(res.Sections) != 1 || len(res.Sections[0].Pictures) != 1 || res.Sections[0].Pictures[0].Marks != 0 {
		t.Errorf("sections %+v, want one empty picture", res.Sections)
	}
}

// TestEveryPictureKindRendersInABrowser renders a page with every kind
// of picture from hand-made reports and checks each is laid out with
// marks, without errors.
func TestEveryPictureKindRendersInABrowser(t *testing.T) {
	chromium := labtest.NeedTool(t, "chromium")
	l := &lab.Ladder{Title: "c (as captured)", Left: "a", Right: "b", Timed: true, Rows: []lab.Rung{
		{Label: "SYN", ToRight: true, LeftState: "SYN-SENT", AtMS: 0},
		{Label: "SYN|ACK", LeftState: "ESTABLISHED", AtMS: 1, Kind: lab.FateLost},
		{Label: "SYN|ACK", LeftState: "ESTABLISHED", AtMS: 900, Kind: lab.FateRetransmit},
	}}
	xy := &lab.Plot{Title: "c: seq", Kind: lab.PlotXY, XLabel: "ms"}
	xy.Add("segs", lab.SeriesRanges).Put(lab.Point{X: 0, Y: 0, Y2: 10}).Put(lab.Point{X: 1, Y: 10, Y2: 20, Fate: lab.FateLost})
	tl := &lab.Plot{Title: "c: states", Kind: lab.PlotTimeline, XLabel: "ms", Machine: "tcp"}
	tl.Add("lab", lab.SeriesSpans).Span(0, 1, "SYN-SENT").Span(1, 9, "ESTABLISHED")
	bars := &lab.Plot{Title: "bytes", Kind: lab.PlotBars}
	bars.Add("up", lab.SeriesPoints).Put(lab.Point{Label: "x", Y: 3})
	r := &lab.Report{Experiment: "g/all", Passed: true, Ladders: []*lab.Ladder{l}, Plots: []*lab.Plot{xy, tl, bars},
		Checks: []lab.Check{{Name: "ok", Passed: true}}}
	dir := t.TempDir()
	if err := WriteDir(dir, []*lab.Report{r}); err != nil {
		t.Fatal(err)
	}
	res, err := browsertest.Probe(context.Background(), chromium, filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors)+len(res.Fetched) > 0 {
		t.Errorf("errors %q, fetched %q", res.Errors, res.Fetched)
	}
	if len(res.Sections) != 1 {
		t.Fatalf("sections %+v", res.Sections)
	}
	got := map[string]bool{}
	for _, p := range res.Sections[0].Pictures {
		got[p.Class] = true
		if p.Width <= 0 || p.Height <= 0 || p.Marks == 0 {
			t.Errorf("%s is empty: %+v", p.Class, p)
		}
	}
	for _, c := range []string{"ladder", "plot xy", "plot timeline", "plot bars", "statediagram"} {
		if !got[c] {
			t.Errorf("no %s picture laid out (got %v)", c, got)
		}
	}
}
