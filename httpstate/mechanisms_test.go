package httpstate

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Without a cookie the token may ride in the URL or a form field; a wrong
// or missing token is no session, whichever way it came.
func TestCookielessSessions(t *testing.T) {
	_, run := serve(t, Stateful)
	ctx := context.Background()
	c := NewClient(run.URL(), false)
	defer c.Close()
	page, err := c.Get(ctx, "/form")
	if err != nil {
		t.Fatal(err)
	}
	tok := FormToken(page.Body)
	if len(tok) < 43 || page.Cookie != "" {
		t.Fatalf("form page: token %q, Set-Cookie %q", tok, page.Cookie)
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"form computes with both operands", "POST", "/form", url.Values{"session": {tok}, "a": {"10"}, "op": {"add"}, "b": {"5"}}, 200, ""},
		{"form uses the last result", "POST", "/form", url.Values{"session": {tok}, "op": {"multiply"}, "b": {"2"}}, 200, ""},
		{"URL token reaches the same session", "POST", "/use_last?session=" + url.QueryEscape(tok), CalcRequest{Op: Subtract, B: num(3)}, 200, ""},
		{"a forged URL token is no session", "POST", "/use_last?session=" + strings.Repeat("A", 43), CalcRequest{Op: Add, B: num(1)}, 401, "no_session"},
		{"a form without b", "POST", "/form", url.Values{"session": {tok}, "op": {"add"}}, 400, "missing_operand"},
		{"a form with division by zero", "POST", "/form", url.Values{"session": {tok}, "op": {"divide"}, "b": {"0"}}, 400, "divide_by_zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := c.Do(ctx, tt.method, tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Status != tt.status || rep.Code != tt.code || rep.Cookie != "" {
				t.Errorf("got %d %q cookie %q; want %d %q and no cookie", rep.Status, rep.Code, rep.Cookie, tt.status, tt.code)
			}
		})
	}
	rep, _ := c.Get(ctx, "/state?session="+url.QueryEscape(tok))
	if !strings.Contains(string(rep.Body), `"last_result":27`) {
		t.Errorf("state after form, form, URL: %s", rep.Body)
	}
}

func TestStatelessFormNeedsBothOperands(t *testing.T) {
	_, run := serve(t, Stateless)
	c := NewClient(run.URL(), false)
	defer c.Close()
	rep, _ := c.Do(context.Background(), "POST", "/form", url.Values{"op": {"add"}, "b": {"1"}})
	if rep.Status != http.StatusBadRequest || rep.Code != "missing_operand" {
		t.Errorf("got %d %q", rep.Status, rep.Code)
	}
	rep, _ = c.Do(context.Background(), "POST", "/form", url.Values{"op": {"add"}, "a": {"2"}, "b": {"1"}})
	if v, ok := FormResult(rep.Body); !ok || v != 3 {
		t.Errorf("stateless form: %d %s", rep.Status, rep.Body)
	}
}
