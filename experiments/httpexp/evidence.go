package httpexp

import (
	"fmt"
	"slices"
	"strings"
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
// has every cell. A cell whose experiment runs later in this run says so
// (lab.RunState.After); one whose experiment does not run in this run says
// that instead of guessing.
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

// tally is how many of the table's cells were measured, which experiments
// later in this run fill others, and how many no experiment of this run
// fills.
type tally struct {
	filled int
	later  []string
	absent int
}

// rows returns the table, header first, and its tally; later(exp) reports
// whether exp runs later in this run.
func (ev *evidence) rows(later func(exp string) bool) ([][]string, tally) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	rows := [][]string{{"", "stateless", "stateful (memory)", "store-backed", "signed token (client-held)"}}
	var t tally
	for _, r := range evidenceRows {
		row := []string{r.row}
		for _, m := range evidenceCols {
			c, ok := "", false
			for _, byRow := range ev.cells {
				if v, has := byRow[r.row][m]; has {
					c, ok = v, true
				}
			}
			from, byCol := evidenceColFrom[m]
			if !byCol {
				from = r.from
			}
			switch {
			case ok:
				t.filled++
			case later(from):
				c = "to be measured later in this run by " + from + ", whose report repeats this table"
				if !slices.Contains(t.later, from) {
					t.later = append(t.later, from)
				}
			default:
				c = "not measured (run " + from + ")"
				t.absent++
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	slices.Sort(t.later)
	return rows, t
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
	rows, t := evidenceOf(env.RunState()).rows(func(exp string) bool { return env.RunState().After(env.Name(), exp) })
	env.Table("Stateless vs stateful, measured in this run (statelab run http fills every cell)", rows)
	env.Metric("evidence.cells_measured_count", float64(t.filled))
	if note := t.note(); note != "" {
		env.Note("%s", note)
	}
}

// note says how many cells the table has measured and who fills the rest:
// experiments later in this run, or a run of the whole group.
func (t tally) note() string {
	all := len(evidenceRows) * len(evidenceCols)
	switch {
	case t.filled >= all:
		return ""
	case t.absent == 0:
		return fmt.Sprintf("the comparison table has %d of %d cells measured so far in this run: %s, later in this run, is to fill the rest and repeat this table",
			t.filled, all, strings.Join(t.later, ", "))
	}
	return fmt.Sprintf("the comparison table has %d of %d cells measured: run `statelab run http` to fill them all", t.filled, all)
}
