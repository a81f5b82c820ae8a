package httpexp

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
)

// A ladder titled "as captured" draws captured exchanges as messages and
// a step that got no reply (so is in no captured exchange) from the
// client's record, marked as reported; the reply's comment gives the
// server's state as the server reported it.
func TestAnnotateMarksWhatIsNotInTheCapture(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cl := netip.MustParseAddrPort("127.0.0.1:40000")
	tests := []struct {
		name         string
		errs         []bool // per step: no reply
		wantReported []bool // per ladder row
	}{
		{"every step answered", []bool{false, false}, []bool{false, false, false, false}},
		{"a step without a reply between two", []bool{false, true, false}, []bool{false, false, true, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &transcript{name: "test server", addr: srv}
			var reqs []string
			for _, noReply := range tt.errs {
				p := &played{scriptStep: scriptStep{Label: "step", Method: "POST", Path: "/calculate"}, Server: "last_result=15"}
				if noReply {
					p.Err = errors.New("connection refused")
				} else {
					reqs = append(reqs, req1)
				}
				tr.steps = append(tr.steps, p)
			}
			resps := make([]string, len(reqs))
			for i := range resps {
				resps[i] = resp1
			}
			pkts := conversation(t, cl, srv, 0, reqs, resps)
			r := lab.RunOne(context.Background(), lab.Experiment{Name: "test/annotate", Run: func(env *lab.Env) error {
				tr.annotate(env, pkts)
				return nil
			}}, lab.Options{OutDir: t.TempDir(), Seed: 1})
			if !r.Passed || len(r.Ladders) != 1 {
				t.Fatalf("passed %t, %d ladders, failed %+v", r.Passed, len(r.Ladders), r.Failed())
			}
			lad := r.Ladders[0]
			if len(lad.Rows) != len(tt.wantReported) {
				t.Fatalf("%d rows, want %d", len(lad.Rows), len(tt.wantReported))
			}
			for i, row := range lad.Rows {
				if (row.Reported != "") != tt.wantReported[i] {
					t.Errorf("row %d %q: reported by %q, want reported %t", i, row.Label, row.Reported, tt.wantReported[i])
				}
			}
			for _, p := range pkts {
				if m, _ := p.Decode(); m.Src == srv && len(m.Payload) > 0 {
					if c := strings.Join(p.Comments, ""); !strings.Contains(c, "as the server reported: last_result=15") {
						t.Errorf("reply comment %q does not give the server's reported state", c)
					}
				}
			}
		})
	}
}

// A captured exchange worded for its comments and the ladder: the request
// with its cookie and body, the reply with its JSON fields, or for the
// form page its result and hidden session field, and the cookie it sets.
func TestExchangeLabels(t *testing.T) {
	page := "<output id=\"result\">30</output><input type=\"hidden\" name=\"session\" value=\"" + testToken + "\">"
	tests := []struct {
		name      string
		req, resp string
		wantReq   string
		wantReply string
	}{
		{"JSON with a cookie", httpRequest("POST", "/use_last", testToken, `{"op":"multiply","b":2}`), httpResponse(200, "", `{"result":30}`),
			`POST /use_last cookie=TTTTTTTT… {"op":"multiply","b":2}`, "200 result=30"},
		{"a session started", httpRequest("POST", "/session", "", ""), httpResponse(201, testToken, `{"session":"started"}`),
			"POST /session", "201 session=started Set-Cookie TTTTTTTT…"},
		{"the form page", httpRequest("POST", "/form", "", "session=x&op=multiply&b=2"),
			strings.Replace(httpResponse(200, "", page), "application/json", "text/html; charset=utf-8", 1),
			"POST /form session=x&op=multiply&b=2", "200 HTML page result=30 hidden session=TTTTTTTT…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := conversation(t, testClient, testServer, 0, []string{tt.req}, []string{tt.resp})
			ex := exchangesOf(t, pkts, testServer)[0]
			if got := requestLabel(ex); got != tt.wantReq {
				t.Errorf("request %q, want %q", got, tt.wantReq)
			}
			if got := replyLabel(ex); got != tt.wantReply {
				t.Errorf("reply %q, want %q", got, tt.wantReply)
			}
		})
	}
}
