package httpstate

import (
	"fmt"
	"path/filepath"
	"sync"

	"github.com/statelab/statelab/lab"
)

// The seed's comparison table (crash recovery, scalability, data sent,
// features, complexity) is filled from measurements: every http experiment
// records the cells it measured, worded from the measured values, and the
// last experiment of the group in catalogue order (http/mechanisms) prints
// the table of its run. A cell whose experiment did not run in this run says
// so instead of guessing. (Not a lab.Summary: that would add a report to
// every partial run, which `statelab run http/calculator --json` must not.)

// Evidence rows and columns.
const (
	rowCrash    = "crash recovery"
	rowScale    = "scalability"
	rowData     = "data sent"
	rowFeatures = "features"
	rowComplex  = "complexity"
)

var evidenceRows = []struct{ row, from string }{
	{rowCrash, "http/crash"},
	{rowScale, "http/load-balancing"},
	{rowData, "http/calculator"},
	{rowFeatures, "http/features"},
	{rowComplex, "http/load-balancing"},
}

var evidenceCols = []Mode{Stateless, Stateful, StoreBacked}

// evidence holds the cells of the current run, keyed by run: a run is
// known by its output directory (all experiments of one `statelab run`
// share it; every labtest run has its own), and a new run drops the cells
// of earlier ones, so the table never prints a cell another run measured.
// An experiment also clears its own cells when it starts.
var evidence = struct {
	sync.Mutex
	run   string
	cells map[string]map[string]map[Mode]string // experiment → row → column
}{cells: map[string]map[string]map[Mode]string{}}

// runKey identifies the run an experiment belongs to.
func runKey(env *lab.Env) string { return filepath.Dir(env.CapturePath("x")) }

// startEvidence starts an experiment's cells afresh, and the whole table
// afresh when the experiment belongs to a new run.
func startEvidence(env *lab.Env) { startEvidenceIn(runKey(env), env.Name()) }

func startEvidenceIn(run, exp string) {
	evidence.Lock()
	defer evidence.Unlock()
	if run != evidence.run {
		evidence.run, evidence.cells = run, map[string]map[string]map[Mode]string{}
	}
	delete(evidence.cells, exp)
}

// recordEvidence fills one cell of the comparison table for env's
// experiment, in env's run.
func recordEvidence(env *lab.Env, row string, mode Mode, format string, args ...any) {
	recordEvidenceIn(runKey(env), env.Name(), row, mode, fmt.Sprintf(format, args...))
}

func recordEvidenceIn(run, exp, row string, mode Mode, cell string) {
	evidence.Lock()
	defer evidence.Unlock()
	if run != evidence.run {
		return // the experiment's run is over: a newer one has started
	}
	if evidence.cells[exp] == nil {
		evidence.cells[exp] = map[string]map[Mode]string{}
	}
	if evidence.cells[exp][row] == nil {
		evidence.cells[exp][row] = map[Mode]string{}
	}
	evidence.cells[exp][row][mode] = cell
}

// evidenceTable adds the comparison table to env's report and returns how
// many cells were measured in env's run.
func evidenceTable(env *lab.Env) int {
	rows, filled := evidenceRowsIn(runKey(env))
	env.Table("Stateless vs stateful, measured in this run (statelab run http fills every cell)", rows)
	return filled
}

func evidenceRowsIn(run string) ([][]string, int) {
	evidence.Lock()
	defer evidence.Unlock()
	rows := [][]string{{"", "stateless", "stateful (memory)", "store-backed"}}
	filled := 0
	for _, r := range evidenceRows {
		row := []string{r.row}
		for _, m := range evidenceCols {
			c, ok := "", false
			if run == evidence.run {
				for _, byRow := range evidence.cells {
					if v, has := byRow[r.row][m]; has {
						c, ok = v, true
					}
				}
			}
			if ok {
				filled++
			} else {
				c = "not measured (run " + r.from + ")"
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	return rows, filled
}
