package httpstate

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestCalculatorExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/calculator"), 1)
	for _, m := range []string{"stateless.numbers_sent", "stateful.numbers_sent", "store.numbers_sent",
		"stateless.request_bytes", "stateful.request_bytes", "store.request_bytes", "store.wire_bytes"} {
		if r.Metrics[m] == 0 {
			t.Errorf("metric %s not measured", m)
		}
	}
	if len(r.Captures) != 1 || !strings.HasSuffix(r.Captures[0], "http/calculator.pcapng") {
		t.Errorf("captures = %v, want DIR/http/calculator.pcapng", r.Captures)
	}
}

// Wireshark's dissectors read the capture without a malformed packet and
// show the experiment's comments beside the requests.
func TestCalculatorCaptureOpensInTshark(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("http/calculator"), 2)
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "_ws.malformed || _ws.expert.severity >= error"); n != 0 {
		t.Errorf("%d malformed or erroneous frames", n)
	}
	if n := labtest.TsharkCount(t, path, `http.request.method == "POST"`); n != 11 {
		t.Errorf("tshark sees %d POST requests, want 11 (3 stateless, 4 stateful, 4 store-backed)", n)
	}
	comments := strings.Join(labtest.TsharkComments(t, path), "\n")
	for _, want := range []string{"stateless request 2: POST /calculate multiply(15, 2)", "stateful request 3: POST /use_last multiply(2) +cookie", "last_result=27"} {
		if !strings.Contains(comments, want) {
			t.Errorf("no comment contains %q; comments:\n%s", want, comments)
		}
	}
}
