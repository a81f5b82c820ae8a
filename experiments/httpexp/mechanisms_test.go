package httpexp

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

// Where a captured request carries the session token: the Cookie header,
// the URL's session parameter, or the body (a form's hidden field).
func TestTokenPlaces(t *testing.T) {
	tests := []struct {
		name                  string
		req                   string
		cookie, inURL, inBody int
	}{
		{"cookie", httpRequest("POST", "/use_last", testToken, `{"op":"multiply","b":2}`), 1, 0, 0},
		{"URL rewriting", httpRequest("POST", "/use_last?session="+testToken, "", `{"op":"multiply","b":2}`), 0, 1, 0},
		{"hidden form field", httpRequest("POST", "/form", "", "session="+testToken+"&op=multiply&b=2"), 0, 0, 1},
		{"another session's cookie", httpRequest("POST", "/use_last", "other", `{"op":"multiply","b":2}`), 0, 0, 0},
		{"no token at all", httpRequest("GET", "/form", "", ""), 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := conversation(t, testClient, testServer, 0, []string{tt.req}, []string{httpResponse(200, "", `{"result":30}`)})
			cookie, inURL, inBody := tokenPlaces(exchangesOf(t, pkts, testServer), testToken)
			if cookie != tt.cookie || inURL != tt.inURL || inBody != tt.inBody {
				t.Fatalf("token in cookie %d, URL %d, body %d; want %d, %d, %d", cookie, inURL, inBody, tt.cookie, tt.inURL, tt.inBody)
			}
		})
	}
}
