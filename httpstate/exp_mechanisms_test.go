package httpstate

import (
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

func TestMechanismsExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/mechanisms"), 1)
	for _, m := range []string{"cookie.token_in_cookie_count", "url.token_in_url_count", "form.token_in_body_count"} {
		if r.Metrics[m] != 2 {
			t.Errorf("%s = %v, want 2", m, r.Metrics[m])
		}
	}
	if len(r.Tables) == 0 {
		t.Errorf("no evidence table")
	}
}
