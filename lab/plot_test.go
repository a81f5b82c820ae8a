package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPlotsAndTimedLaddersTravelInJSON(t *testing.T) {
	e := Experiment{Name: "g/plot", Run: func(env *Env) error {
		p := env.Plot("seq", PlotXY, "time (ms)", "bytes")
		p.Add("segments", SeriesRanges).Put(Point{X: 1, Y: 0, Y2: 100, Fate: FateRetransmit, Detail: "lab ESTABLISHED"})
		p.Add("ack", SeriesStep).At(0, 0).At(math.NaN(), 3).At(2, math.Inf(1)).At(3, 100)
		l := env.Ladder("t", "a", "b")
		l.Send("SYN", "SYN-SENT", "")
		l.At(1500 * time.Microsecond)
		l.Tag(FateLost)
		l.Explain("dropped by the link")
		env.Check("ok", true, "")
		return nil
	}}
	r := RunOne(context.Background(), e, Options{OutDir: t.TempDir(), Seed: 3})
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Plots) != 1 || back.Plots[0].Kind != PlotXY || len(back.Plots[0].Series) != 2 {
		t.Fatalf("plots %+v", back.Plots)
	}
	if got := back.Plots[0].Find("ack").Points; len(got) != 2 {
		t.Errorf("ack points %v: NaN and Inf must be left out", got)
	}
	if pt := back.Plots[0].Series[0].Points[0]; pt.Fate != FateRetransmit || pt.Y2 != 100 || pt.Detail == "" {
		t.Errorf("segment point %+v", pt)
	}
	row := back.Ladders[0].Rows[0]
	if !back.Ladders[0].Timed || row.AtMS != 1.5 || row.Kind != FateLost || row.Detail != "dropped by the link" {
		t.Errorf("ladder %+v row %+v", back.Ladders[0], row)
	}
	for _, key := range []string{`"plots"`, `"kind":"xy"`, `"fate":"retransmit"`, `"kind":"lost"`, `"at_ms":1.5`, `"timed":true`} {
		if !strings.Contains(b.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestLadderMarksOnAnEmptyLadderDoNothing(t *testing.T) {
	var l Ladder
	l.Tag(FateLost)
	l.At(time.Second)
	l.Explain("x")
	if l.Timed || len(l.Rows) != 0 {
		t.Errorf("%+v", l)
	}
	var b strings.Builder
	l.Send("a", "", "")
	l.Tag(FateForged)
	l.Render(&b)
	if !strings.Contains(b.String(), "── a ") {
		t.Errorf("the text ladder changed: %q", b.String())
	}
}

func TestRunHTMLWithoutAWriterIsAUsageError(t *testing.T) {
	c := MustCatalogue([]Experiment{{Name: "g/x", Run: func(*Env) error { return nil }}})
	var out, errOut bytes.Buffer
	code := c.RunTargets([]string{"g/x"}, RunFlags{Out: t.TempDir(), Timeout: time.Minute, HTML: t.TempDir()}, &out, &errOut)
	if code != ExitUsage || !strings.Contains(errOut.String(), "without an HTML report writer") {
		t.Errorf("exit %d, %q", code, errOut.String())
	}
}

func TestLadderWhenCountsFromTheFirstReading(t *testing.T) {
	var l Ladder
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.When(t0) // no row yet: nothing to time
	l.Send("a", "", "")
	l.When(t0.Add(time.Second))
	l.Reply("b", "", "")
	l.When(t0.Add(1250 * time.Millisecond))
	if !l.Timed || l.Rows[0].AtMS != 0 || l.Rows[1].AtMS != 250 {
		t.Errorf("%+v", l.Rows)
	}
}
