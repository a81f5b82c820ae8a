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
			rows, filled := evidenceOf(run).rows()
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
		if r.Experiment == "http/mechanisms" {
			last = r
		}
	}
	if last == nil || last.Metrics["evidence.cells_measured_count"] != 18 || len(last.Tables) == 0 {
		t.Fatalf("mechanisms report: %+v", last)
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
