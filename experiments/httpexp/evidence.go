package httpexp

import (
	"fmt"
	"sync"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// The seed's comparison table (crash recovery, scalability, data sent,
// features, complexity) is filled from measurements: every http experiment
// records the cells it measured, worded from the measured values, in the
// run's state (lab.RunState), and http/mechanisms prints the table of its
// run; http/signed-token, which fills a column of its own and runs after it
// in name order, prints it again, so the last table of `statelab run http`
// has every cell. A cell
// whose experiment did not run in this run says so instead of guessing.
// (Not a lab.Summary: that would add a report to every partial run, which
// `statelab run http/calculator --json` must not.)

// Evidence rows.
const (
	rowCrash    = "crash recovery"
	rowScale    = "scalability"
	rowData     = "data sent"
	rowFeatures = "features"
	rowComplex  = "complexity"
	// rowStoreFailure: what a failure of the store itself loses, under
	// each replication choice (http/store-failover, failover_report.go).
	rowStoreFailure = "store failure"
)

// evidenceRows are the table's rows, each with the experiment that
// measures it.
var evidenceRows = []struct{ row, from string }{
	{rowCrash, "http/crash"},
	{rowScale, "http/load-balancing"},
	{rowData, "http/calculator"},
	{rowFeatures, "http/features"},
	{rowComplex, "http/load-balancing"},
	{rowStoreFailure, "http/mechanisms"},
}

// evidenceCols are the table's columns.
var evidenceCols = []httpstate.Mode{httpstate.Stateless, httpstate.Stateful, httpstate.StoreBacked, httpstate.Token}

// evidenceColFrom names the experiment that measures a whole column, where
// one does: http/signed-token runs after http/mechanisms in name order, so
// in a full run its report repeats the table with its column filled.
var evidenceColFrom = map[httpstate.Mode]string{httpstate.Token: "http/signed-token"}

// evidenceKey is the run state's key for the table.
type evidenceKey struct{}

// evidence is the table's cells measured in one run: experiment → row →
// column.
type evidence struct {
	mu    sync.Mutex
	cells map[string]map[string]map[httpstate.Mode]string
}

// evidenceOf returns the run's table, made on first use.
func evidenceOf(run *lab.RunState) *evidence {
	return run.LoadOrStore(evidenceKey{}, func() any {
		return &evidence{cells: map[string]map[string]map[httpstate.Mode]string{}}
	}).(*evidence)
}

// start drops the cells an experiment recorded earlier in the run, so a
// second run of it in one run measures afresh.
func (ev *evidence) start(exp string) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	delete(ev.cells, exp)
}

// record fills one cell for an experiment.
func (ev *evidence) record(exp, row string, mode httpstate.Mode, cell string) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.cells[exp] == nil {
		ev.cells[exp] = map[string]map[httpstate.Mode]string{}
	}
	if ev.cells[exp][row] == nil {
		ev.cells[exp][row] = map[httpstate.Mode]string{}
	}
	ev.cells[exp][row][mode] = cell
}

// rows returns the table, header first, and how many cells were measured.
func (ev *evidence) rows() ([][]string, int) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	rows := [][]string{{"", "stateless", "stateful (memory)", "store-backed", "signed token (client-held)"}}
	filled := 0
	for _, r := range evidenceRows {
		row := []string{r.row}
		for _, m := range evidenceCols {
			c, ok := "", false
			for _, byRow := range ev.cells {
				if v, has := byRow[r.row][m]; has {
					c, ok = v, true
				}
			}
			switch f, byCol := evidenceColFrom[m]; {
			case ok:
				filled++
			case byCol:
				c = "not measured yet: " + f + " fills this column, and its report repeats this table"
			default:
				c = "not measured (run " + r.from + ")"
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	return rows, filled
}

// startEvidence starts env's experiment's cells afresh in its run.
func startEvidence(env *lab.Env) { evidenceOf(env.RunState()).start(env.Name()) }

// recordEvidence fills one cell of the comparison table for env's
// experiment, in env's run.
func recordEvidence(env *lab.Env, row string, mode httpstate.Mode, format string, args ...any) {
	evidenceOf(env.RunState()).record(env.Name(), row, mode, fmt.Sprintf(format, args...))
}

// evidenceTable adds the comparison table of env's run to env's report and
// notes how many of its cells were measured.
func evidenceTable(env *lab.Env) {
	rows, filled := evidenceOf(env.RunState()).rows()
	env.Table("Stateless vs stateful, measured in this run (statelab run http fills every cell)", rows)
	env.Metric("evidence.cells_measured_count", float64(filled))
	if all := len(evidenceRows) * len(evidenceCols); filled < all {
		env.Note("the comparison table has %d of %d cells measured: run `statelab run http` to fill them all", filled, all)
	}
}
