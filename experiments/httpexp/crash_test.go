package httpexp

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestCrashExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/crash"), 1)
	if r.Metrics["stateful.session_lost"] != 1 || r.Metrics["store-sqlite.session_lost"] != 0 {
		t.Errorf("metrics = %v", r.Metrics)
	}
	if _, err := exec.LookPath("redis-server"); err == nil && r.Metrics["store-redis.session_lost"] != 0 {
		t.Errorf("redis case did not continue: %v", r.Metrics)
	}
	if h := r.Holding; h == nil || !strings.Contains(h.RestartLoses, "stateful the session") || !strings.Contains(h.RestartLoses, "store-sqlite nothing") || h.CarriedBytes < 43 {
		t.Errorf("holding %+v", h)
	}
}

// With redis-server installed the crash experiment covers Redis too; CI
// installs it, so there a missing redis-server is a failure.
func TestCrashExperimentCoversRedis(t *testing.T) {
	labtest.NeedTool(t, "redis-server")
	r := labtest.RunExperiment(t, experiment("http/crash"), 2)
	if _, ok := r.Metrics["store-redis.session_lost"]; !ok {
		t.Errorf("no Redis case in %v", r.Metrics)
	}
}

// Every request in the crash capture says which step it is, and Wireshark
// finds no malformed frame in a capture with a killed server in it.
func TestCrashCaptureNamesEachStep(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("http/crash"), 3)
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "_ws.malformed"); n != 0 {
		t.Errorf("%d malformed frames", n)
	}
	comments := strings.Join(labtest.TsharkComments(t, path), "\n")
	for _, want := range []string{"stateful server step 4 (− 3 after kill -9 and restart)", "store-sqlite server step 5 (history after the crash)", "stateless server step 3"} {
		if !strings.Contains(comments, want) {
			t.Errorf("no comment contains %q; comments:\n%s", want, comments)
		}
	}
}
