package httpstate

import (
	"context"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
)

// The comparison table shows only cells measured in its own run: a cell
// left by an earlier run in the same process (another test's experiment) is
// "not measured", not stale text.
func TestEvidenceTableShowsOnlyThisRunsCells(t *testing.T) {
	tests := []struct {
		name      string
		recordRun string // the run that measured the crash cell
		tableRun  string // the run whose table is drawn
		want      string
	}{
		{"cell measured in this run", "run-A", "run-A", "measured in A"},
		{"cell of an earlier run", "run-A", "run-B", "not measured (run http/crash)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			startEvidenceIn(tt.recordRun, "http/crash")
			recordEvidenceIn(tt.recordRun, "http/crash", rowCrash, Stateless, "measured in A")
			startEvidenceIn(tt.tableRun, "http/mechanisms")
			rows, _ := evidenceRowsIn(tt.tableRun)
			var got string
			for _, row := range rows {
				if row[0] == rowCrash {
					got = row[1]
				}
			}
			if got != tt.want {
				t.Fatalf("cell %q; want %q", got, tt.want)
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
	if last == nil || last.Metrics["evidence.cells_measured_count"] != 15 || len(last.Tables) == 0 {
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
