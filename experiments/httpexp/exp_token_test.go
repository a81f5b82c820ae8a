package httpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// The experiment passes on real processes, and its figures are the ones
// it claims: the workflow whole after every backend was killed, four bad
// tokens refused, the replay after logout accepted, the denylist lost in
// the restart, the token bigger than a cookie id and growing per entry.
func TestSignedTokenExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/signed-token"), 1)
	for name, want := range map[string]float64{
		"token.bad_tokens_refused_count":      4,
		"token.replay_after_logout_accepted":  1,
		"token.denylist_lost_in_restart":      1,
		"token.backends_serving_count":        3,
		"token.operations_count":              9,
		"token.operations_after_crash_count":  7,
		"cookie_id.carried_bytes_per_request": 43,
	} {
		if r.Metrics[name] != want {
			t.Errorf("%s = %v, want %v", name, r.Metrics[name], want)
		}
	}
	if r.Metrics["token.carried_bytes_per_request"] <= r.Metrics["cookie_id.carried_bytes_per_request"] || r.Metrics["token.bytes_per_history_entry"] <= 0 {
		t.Errorf("costs not measured: %v", r.Metrics)
	}
	h := r.Holding
	if h == nil || h.CarriedBytes != int(r.Metrics["token.carried_bytes_per_request"]+0.5) || !strings.Contains(h.RestartLoses, "nothing") {
		t.Errorf("holding %+v", h)
	}
	var table bool
	for _, tb := range r.Tables {
		if strings.HasPrefix(tb.Title, "Stateless vs stateful") && len(tb.Rows[0]) == 5 && !strings.HasPrefix(tb.Rows[1][4], "not measured") {
			table = true
		}
	}
	if !table {
		t.Errorf("no comparison table with the token's column measured")
	}
}

// Every packet of the capture carries a comment, the refused requests
// and the replay are named, and Wireshark finds nothing malformed.
func TestSignedTokenCaptureCommentsEveryPacket(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("http/signed-token"), 2)
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "!frame.comment"); n != 0 {
		t.Errorf("%d packets without a comment", n)
	}
	if n := labtest.TsharkCount(t, path, "_ws.malformed"); n != 0 {
		t.Errorf("%d malformed frames", n)
	}
	comments := strings.Join(labtest.TsharkComments(t, path), "\n")
	for _, want := range []string{"refused it: 401 token_signature", "401 token_transplanted", "replay the logged-out token", "token(", "backend leg"} {
		if !strings.Contains(comments, want) {
			t.Errorf("no comment contains %q", want)
		}
	}
}

// sessionLabel names a token by its size, a cookie id by its start.
func TestSessionLabel(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiJ9." + strings.Repeat("x", 80) + ".sigsig"
	for _, tc := range []struct{ in, want string }{
		{jwt, "token(108 bytes, …sigsig)"},
		{testToken, "TTTTTTTT…"},
		{"a.b.c", "a.b.c"},
	} {
		if got := sessionLabel(tc.in); got != tc.want {
			t.Errorf("sessionLabel(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
