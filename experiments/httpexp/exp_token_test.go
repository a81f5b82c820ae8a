package httpexp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
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

// tamper changes last_result in the payload and keeps the signature: the
// result is a token the codec refuses as a bad signature, and nothing
// else in it changed.
func TestTamperKeepsSignature(t *testing.T) {
	codec, err := httpstate.NewTokenCodec(bytes.Repeat([]byte{3}, httpstate.MinTokenSecret), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := codec.Issue("sid", httpstate.SessionState{HasLast: true, LastResult: 12.5})
	bad, err := tamper(tok, 12.5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codec.Verify(bad); !errors.Is(err, httpstate.ErrTokenSignature) {
		t.Errorf("tampered token: %v", err)
	}
	if strings.Split(bad, ".")[2] != strings.Split(tok, ".")[2] || !strings.Contains(payloadOf(t, bad), `"last_result":1000`) {
		t.Errorf("tampered %q from %q", bad, tok)
	}
	if _, err := tamper(tok, 99); err == nil {
		t.Error("tamper found a last_result that is not there")
	}
}

func payloadOf(t *testing.T, tok string) string {
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fakeExchange is a captured exchange as the analysis sees it: a request
// with a session cookie and a size, a reply that may set one.
func fakeExchange(reqCookie string, reqBytes int, setCookie string) *Exchange {
	req, _ := http.NewRequest("POST", "http://127.0.0.1/use_last", nil)
	if reqCookie != "" {
		req.AddCookie(&http.Cookie{Name: httpstate.SessionCookie, Value: reqCookie})
	}
	resp := &http.Response{StatusCode: 200, Header: http.Header{}}
	if setCookie != "" {
		resp.Header.Add("Set-Cookie", (&http.Cookie{Name: httpstate.SessionCookie, Value: setCookie}).String())
	}
	return &Exchange{Request: req, ReqBytes: reqBytes, Response: resp}
}

// runStep runs f in an Env of its own and returns the report.
func runStep(t *testing.T, f func(env *lab.Env)) *lab.Report {
	t.Helper()
	return lab.RunOne(context.Background(), lab.Experiment{Name: "test/step", Run: func(env *lab.Env) error { f(env); return nil }},
		lab.Options{OutDir: t.TempDir()})
}

// The growth table and the bytes comparison are read from the captured
// cookies: the token after each step, its bytes per history entry, the
// means per request against the cookie id.
func TestTokenGrowthAndBytesFromTheCapture(t *testing.T) {
	codec, _ := httpstate.NewTokenCodec(bytes.Repeat([]byte{3}, httpstate.MinTokenSecret), time.Minute, nil)
	var st httpstate.SessionState
	front, sex := make([]*Exchange, len(tokenScript)), make([]*Exchange, len(tokenScript))
	x := &tokenExp{codec: codec, tokSteps: map[string]int{}, sfSteps: map[string]int{}}
	held, entries, sizes := "", 0, []int{}
	for i, s := range tokenScript {
		x.tokSteps[s.label], x.sfSteps[s.label] = i, i
		set := ""
		if s.method == "POST" {
			if s.op != "" {
				st.History = append(st.History, httpstate.HistoryEntry{Op: s.op, A: 1, B: s.b, Result: 2})
				entries++
			}
			set, _ = codec.Issue("sid", st)
			sizes = append(sizes, len(set))
		}
		front[i] = fakeExchange(held, 100+len(held), set)
		sex[i] = fakeExchange(testToken, 150, "")
		if set != "" {
			held = set
		}
	}
	var g tokenGrowth
	var c wireCost
	r := runStep(t, func(env *lab.Env) {
		x.env = env
		g = x.growth(front)
		c = x.bytes(front, sex)
	})
	want := float64(sizes[len(sizes)-1]-sizes[0]) / float64(entries)
	if len(g.rows) != len(sizes) || g.first != sizes[0] || g.perEntry != want {
		t.Errorf("growth %+v, want %d rows from %d bytes, %.1f per entry", g, len(sizes), sizes[0], want)
	}
	if c.requests != len(tokenScript)-1 || c.idCarried != 43 || c.idReq != 150 || c.tokenReq != c.tokenCarried+100 {
		t.Errorf("cost %+v", c)
	}
	if len(r.Failed()) != 0 || r.Metrics["token.bytes_per_history_entry"] != want {
		t.Errorf("report: %+v", r)
	}
}
