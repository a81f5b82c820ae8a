package httpexp

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// The plugin reads the HTTP comments' blocks as fields: every packet has
// a side, the session state after each stateful request filters by mode
// and step, and behind a balancer each backend leg names its backend.
func TestWiresharkFieldsFromTheCaptures(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	tests := []struct {
		experiment string
		filters    []string
	}{
		{"http/calculator", []string{
			`statelab.side == "client" && statelab.kind == "request" && statelab.mode == "stateless" && statelab.step == 3`,
			`statelab.side == "server" && statelab.mode == "stateful" && statelab.session contains "last_result=15"`,
			`statelab.kind == "segment" && statelab.conn >= 1`,
		}},
		{"http/load-balancing", []string{
			`statelab.side == "backend" && statelab.kind == "response" && statelab.backend == "b2"`,
			`statelab.side == "balancer" && statelab.kind == "request" && statelab.step >= 1`,
			`statelab.side == "server" && statelab.mode contains "sticky" && statelab.session`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.experiment, func(t *testing.T) {
			path := labtest.RunExperiment(t, experiment(tt.experiment), 1).Captures[0]
			if n := len(labtest.StatelabFields(t, path, "!statelab.side || statelab.error")); n != 0 {
				t.Errorf("%d frames without statelab.side or with a malformed block", n)
			}
			for _, f := range tt.filters {
				if len(labtest.StatelabFields(t, path, f)) == 0 {
					t.Errorf("no frame matches %s", f)
				}
			}
		})
	}
}
