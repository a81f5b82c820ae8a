package main

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/lab/sandbox"
)

// The tests run inside statelab's rootless namespace, as the lab does.
func TestMain(m *testing.M) { sandbox.TestMain(m) }

func TestClosedPortIsRefusedWithRSTACK(t *testing.T) {
	r := labtest.RunExperiment(t, closedPort, 1)
	if r.Metrics["segments_count"] != 2 {
		t.Errorf("segments: %v, want 2", r.Metrics["segments_count"])
	}
}
