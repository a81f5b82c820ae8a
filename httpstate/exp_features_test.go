package httpstate

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestFeaturesExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/features"), 1)
	if r.Metrics["stateful.history_len"] != 4 {
		t.Errorf("history_len = %v, want 4", r.Metrics["stateful.history_len"])
	}
}
