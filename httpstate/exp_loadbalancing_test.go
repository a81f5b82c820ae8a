package httpstate

import (
	"testing"

	"github.com/statelab/statelab/internal/labtest"
)

func TestLoadBalancingExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, "http/load-balancing", 1)
	if r.Metrics["ReverseProxy.stateful, round-robin.failure_rate"] == 0 {
		t.Errorf("round-robin did not break stateful sessions: %v", r.Metrics)
	}
	if r.Metrics["ReverseProxy.stateful, sticky.lost_after_kill_count"] != 1 {
		t.Errorf("sticky kill lost %v clients, want 1", r.Metrics["ReverseProxy.stateful, sticky.lost_after_kill_count"])
	}
	if lost, ok := r.Metrics["ReverseProxy.store-backed, round-robin.concurrent_lost_count"]; !ok || lost != 0 {
		t.Errorf("store-backed round-robin: concurrent updates lost %v (measured %v)", lost, ok)
	}
}

// CI installs haproxy: the experiment must then run its HAProxy scenarios.
func TestLoadBalancingBehindHAProxy(t *testing.T) {
	labtest.NeedTool(t, "haproxy")
	r := labtest.RunExperiment(t, "http/load-balancing", 2)
	if _, ok := r.Metrics["HAProxy.stateful, sticky (cookie insert).failure_rate"]; !ok {
		t.Errorf("no HAProxy scenario in %v", r.Metrics)
	}
}
