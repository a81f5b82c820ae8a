package httpexp

import (
	"context"
	"strings"
	"testing"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// The comparison table shows only cells measured in its own run: the run's
// state holds them, so a cell measured in another run (another test's
// experiment, an earlier `statelab run`) is "not measured", not stale text;
// and an experiment run again in the same run measures afresh.
func TestEvidenceTableShowsOnlyThisRunsCells(t *testing.T) {
	tests := []struct {
		name      string
		otherRun  bool // the table is drawn in another run than the one that measured
		restarted bool // http/crash started again after measuring
		want      string
		measured  int
	}{
		{"cell measured in this run", false, false, "measured", 1},
		{"cell of another run", true, false, "not measured (run http/crash)", 0},
		{"experiment started again in this run", false, true, "not measured (run http/crash)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := &lab.RunState{}
			ev := evidenceOf(run)
			ev.start("http/crash")
			ev.record("http/crash", rowCrash, httpstate.Stateless, "measured")
			if tt.restarted {
				ev.start("http/crash")
			}
			if tt.otherRun {
				run = &lab.RunState{}
			}
			rows, tl := evidenceOf(run).rows(func(string) bool { return false })
			filled := tl.filled
			var got string
			for _, row := range rows {
				if row[0] == rowCrash {
					got = row[1]
				}
			}
			if got != tt.want || filled != tt.measured {
				t.Fatalf("cell %q, %d measured; want %q, %d", got, filled, tt.want, tt.measured)
			}
		})
	}
}

// statelab run http ends with the table, every cell measured in that run
// and worded from its measurements (no "(true)" tacked onto fixed text).
func TestRunHTTPFillsEveryEvidenceCellFromItsMeasurements(t *testing.T) {
	var exps []lab.Experiment
	for _, e := range Experiments() {
		if e.Group() == "http" {
			exps = append(exps, e)
		}
	}
	reports := lab.MustCatalogue(Experiments()).Run(context.Background(), exps, lab.Options{OutDir: t.TempDir(), Seed: 1}, nil)
	var last *lab.Report
	for _, r := range reports {
		if !r.Passed {
			t.Errorf("%s failed: %s %+v", r.Experiment, r.Error, r.Failed())
		}
		if _, ok := r.Metrics["evidence.cells_measured_count"]; ok {
			last = r // the last report of the run that prints the table
		}
	}
	all := float64(len(evidenceRows) * len(evidenceCols))
	if last == nil || last.Experiment != "http/signed-token" || last.Metrics["evidence.cells_measured_count"] != all || len(last.Tables) == 0 {
		t.Fatalf("the last report with the table: %+v", last)
	}
	table := last.Tables[len(last.Tables)-1]
	for _, row := range table.Rows[1:] {
		for _, cell := range row[1:] {
			if strings.Contains(cell, "not measured") || strings.Contains(cell, "(true)") || strings.Contains(cell, "(false)") {
				t.Errorf("%s: cell %q", row[0], cell)
			}
		}
		t.Logf("%s | %s", row[0], strings.Join(row[1:], " | "))
	}
}

// http/mechanisms' table is honest about the cells still empty: when the
// experiments that fill them run later in this run, it says so; when one
// does not run, it tells the reader to run `statelab run http`.
func TestEvidenceTableSaysWhatThisRunStillFills(t *testing.T) {
	all := func() []string {
		var names []string
		for _, r := range evidenceRows {
			names = append(names, r.from)
		}
		return names
	}
	tests := []struct {
		name     string
		planned  []string // after http/mechanisms
		wantCell string   // the signed-token column's crash cell
		wantNote string
	}{
		{"every filler ran before; signed-token later in this run", []string{"http/signed-token"},
			"to be measured later in this run by http/signed-token, whose report repeats this table",
			"18 of 24 cells measured so far in this run: http/signed-token, later in this run, is to fill the rest and repeat this table"},
		{"signed-token not in this run", nil,
			"not measured (run http/signed-token)", "18 of 24 cells measured: run `statelab run http` to fill them all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := &lab.RunState{}
			run.SetPlanned(append([]string{"http/mechanisms"}, tt.planned...))
			ev := evidenceOf(run)
			for _, name := range all() {
				for _, r := range evidenceRows {
					if r.from == name {
						for _, m := range evidenceCols[:3] {
							ev.record(name, r.row, m, "measured")
						}
					}
				}
			}
			rows, tl := ev.rows(func(exp string) bool { return run.After("http/mechanisms", exp) })
			var cell string
			for _, row := range rows {
				if row[0] == rowCrash {
					cell = row[4]
				}
			}
			if note := tl.note(); cell != tt.wantCell || !strings.Contains(note, tt.wantNote) {
				t.Errorf("cell %q\nnote %q\nwant cell %q, note with %q", cell, note, tt.wantCell, tt.wantNote)
			}
		})
	}
}
