package httpstate

import (
	"fmt"
	"sync"

	"github.com/statelab/statelab/internal/lab"
)

// The seed's comparison table (crash recovery, scalability, data sent,
// features, complexity) is filled from measurements: every http experiment
// records its findings here, and the last experiment of the group in
// catalogue order (http/mechanisms) prints the table. A cell whose
// experiment did not run in this process says so instead of guessing.

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

var evidence = struct {
	sync.Mutex
	cells map[string]map[Mode]string
}{cells: map[string]map[Mode]string{}}

// recordEvidence fills one cell of the comparison table.
func recordEvidence(row string, mode Mode, format string, args ...any) {
	evidence.Lock()
	defer evidence.Unlock()
	if evidence.cells[row] == nil {
		evidence.cells[row] = map[Mode]string{}
	}
	evidence.cells[row][mode] = fmt.Sprintf(format, args...)
}

// evidenceTable adds the comparison table to env's report and returns how
// many cells were measured in this process.
func evidenceTable(env *lab.Env) int {
	evidence.Lock()
	defer evidence.Unlock()
	rows := [][]string{{"", "stateless", "stateful (memory)", "store-backed"}}
	filled := 0
	for _, r := range evidenceRows {
		row := []string{r.row}
		for _, m := range evidenceCols {
			c, ok := evidence.cells[r.row][m]
			if ok {
				filled++
			} else {
				c = "not measured (run " + r.from + ")"
			}
			row = append(row, c)
		}
		rows = append(rows, row)
	}
	env.Table("Stateless vs stateful, measured in this run (statelab run http fills every cell)", rows)
	return filled
}
