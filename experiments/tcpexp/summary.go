package tcpexp

import (
	"fmt"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
)

// reachedMetric prefixes the metric each tcp experiment records for every
// state its lab connections went through ("reached.SYN-SENT" = 1).
const reachedMetric = "reached."

// tcpAcrossCatalogue is the tcp/* summary: the states table and its check,
// then the features table (features.go).
func tcpAcrossCatalogue(reports []*lab.Report, complete bool) ([]lab.Table, []lab.Check) {
	tables, checks := statesAcrossCatalogue(reports, complete)
	return append(tables, featuresAcrossCatalogue(reports)), checks
}

// statesAcrossCatalogue tables, for each of the 11 states, the experiments
// whose lab side reached it, and checks that all 11 were reached when every
// tcp experiment ran.
func statesAcrossCatalogue(reports []*lab.Report, complete bool) ([]lab.Table, []lab.Check) {
	rows := [][]string{{"lab state", "reached in"}}
	var missing []string
	for _, s := range tcpstate.States() {
		var by []string
		for _, r := range reports {
			if r.Metrics[reachedMetric+s.String()] == 1 {
				by = append(by, r.Experiment)
			}
		}
		cell := strings.Join(by, ", ")
		if len(by) == 0 {
			cell = "—"
			missing = append(missing, s.String())
		}
		rows = append(rows, []string{s.String(), cell})
	}
	tables := []lab.Table{{Title: "lab states reached across the tcp experiments", Rows: rows}}
	if !complete {
		return tables, nil // part of the group ran: the table informs, it does not judge
	}
	return tables, []lab.Check{{
		Name:   "all 11 TCP states reached across tcp/*",
		Passed: len(missing) == 0,
		Detail: fmt.Sprintf("%d of 11 reached in %d experiments; missing %s", 11-len(missing), len(reports), lab.List(missing)),
	}}
}
