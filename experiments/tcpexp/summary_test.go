package tcpexp

import (
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
)

func TestStatesAcrossCatalogue(t *testing.T) {
	reached := func(name string, states ...tcpstate.State) *lab.Report {
		r := &lab.Report{Experiment: name, Metrics: map[string]float64{}}
		for _, s := range states {
			r.Metrics[reachedMetric+s.String()] = 1
		}
		return r
	}
	all := tcpstate.States()
	tests := []struct {
		name       string
		reports    []*lab.Report
		complete   bool
		wantChecks int
		wantPass   bool
	}{
		{"every state reached by the group", []*lab.Report{reached("tcp/a", all[:6]...), reached("tcp/b", all[5:]...)}, true, 1, true},
		{"a state missing fails", []*lab.Report{reached("tcp/a", all[:10]...)}, true, 1, false},
		{"part of the group informs without judging", []*lab.Report{reached("tcp/a", tcpstate.Established)}, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tables, checks := statesAcrossCatalogue(tt.reports, tt.complete)
			if len(tables) != 1 || len(tables[0].Rows) != 12 {
				t.Fatalf("want one table with a header and 11 states, got %v", tables)
			}
			if len(checks) != tt.wantChecks || (len(checks) == 1 && checks[0].Passed != tt.wantPass) {
				t.Errorf("checks = %+v", checks)
			}
		})
	}
}
