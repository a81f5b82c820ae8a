package httpstate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// serve starts a calculator on a real loopback socket (port 0).
func serve(t *testing.T, mode Mode) (*Server, *Running) {
	t.Helper()
	srv, err := New(Config{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	run, err := Listen("127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run.Close(); srv.Close() })
	return srv, run
}

// raw sends a request with an arbitrary body and content type.
func raw(t *testing.T, c *Client, method, path, ctype, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, c.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: reply is not JSON: %q", method, path, b)
	}
	return resp.StatusCode, m
}

func startSession(t *testing.T, c *Client) string {
	t.Helper()
	rep, err := c.Post(context.Background(), "/session", nil)
	if err != nil || rep.Status != http.StatusCreated || len(rep.Cookie) < 43 {
		t.Fatalf("session start: %+v %v", rep, err)
	}
	if _, err := c.Post(context.Background(), "/calculate", CalcRequest{Op: Add, A: num(10), B: num(5)}); err != nil {
		t.Fatal(err)
	}
	return rep.Cookie
}

// Bad input gets a 4xx with a JSON error that says what is wrong, and the
// session's state is unchanged.
func TestBadInputIsA4xxAndLeavesTheSessionAlone(t *testing.T) {
	srv, run := serve(t, Stateful)
	c := NewClient(run.URL(), true)
	defer c.Close()
	token := startSession(t, c)
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code                            string
	}{
		{"division by zero", "POST", "/use_last", "application/json", `{"op":"divide","b":0}`, 400, "divide_by_zero"},
		{"unknown op", "POST", "/use_last", "application/json", `{"op":"pow","b":2}`, 400, "unknown_op"},
		{"missing op", "POST", "/calculate", "application/json", `{"a":1,"b":2}`, 400, "missing_op"},
		{"non-numeric operand", "POST", "/calculate", "application/json", `{"op":"add","a":"ten","b":2}`, 400, "not_a_number"},
		{"non-numeric form operand", "POST", "/calculate", "application/x-www-form-urlencoded", `op=add&a=ten&b=2`, 400, "not_a_number"},
		{"overflowing operand", "POST", "/calculate", "application/json", `{"op":"add","a":1e999,"b":2}`, 400, "not_a_number"},
		{"overflowing result", "POST", "/use_last", "application/json", `{"op":"multiply","b":1.7e308}`, 400, "not_finite"},
		{"NaN in a form", "POST", "/calculate", "application/x-www-form-urlencoded", `op=add&a=NaN&b=1`, 400, "not_finite"},
		{"Inf in a form", "POST", "/calculate", "application/x-www-form-urlencoded", `op=add&a=Inf&b=1`, 400, "not_finite"},
		{"missing operand", "POST", "/calculate", "application/json", `{"op":"add","a":1}`, 400, "missing_operand"},
		{"use_last with both operands", "POST", "/use_last", "application/json", `{"op":"add","a":1,"b":2}`, 400, "operands"},
		{"unknown field", "POST", "/calculate", "application/json", `{"op":"add","a":1,"b":2,"c":3}`, 400, "malformed"},
		{"two JSON objects", "POST", "/calculate", "application/json", `{"op":"add","a":1,"b":2}{}`, 400, "malformed"},
		{"empty body", "POST", "/calculate", "application/json", ``, 400, "malformed"},
		{"wrong content type", "POST", "/calculate", "text/plain", `add 1 2`, 415, "content_type"},
		{"oversized body", "POST", "/calculate", "application/json", `{"op":"add","a":1,"b":2,"pad":"` + strings.Repeat("x", MaxBody) + `"}`, 413, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m := raw(t, c, tt.method, tt.path, tt.ctype, tt.body)
			if status != tt.status || m["code"] != tt.code || m["error"] == "" {
				t.Errorf("got %d %v; want %d code %q with an error message", status, m, tt.status, tt.code)
			}
			st, ok, err := srv.Session(context.Background(), token)
			if err != nil || !ok || st.LastResult != 15 || st.Operations != 1 {
				t.Errorf("session changed by a bad request: %+v ok=%v err=%v", st, ok, err)
			}
		})
	}
}

func TestStatefulNeedsALiveSession(t *testing.T) {
	_, run := serve(t, Stateful)
	tests := []struct {
		name   string
		prep   func(c *Client)
		status int
		code   string
	}{
		{"no cookie at all", func(*Client) {}, 401, "no_session"},
		{"session without a result", func(c *Client) { c.Post(context.Background(), "/session", nil) }, 409, "no_last_result"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(run.URL(), true)
			defer c.Close()
			tt.prep(c)
			status, m := raw(t, c, "POST", "/use_last", "application/json", `{"op":"add","b":1}`)
			if status != tt.status || m["code"] != tt.code {
				t.Errorf("got %d %v, want %d %s", status, m, tt.status, tt.code)
			}
		})
	}
	// A forged or expired token is no session either.
	c := NewClient(run.URL(), false)
	defer c.Close()
	req, _ := http.NewRequest("POST", run.URL()+"/use_last", strings.NewReader(`{"op":"add","b":1}`))
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: strings.Repeat("A", 43)})
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("forged token: %d, want 401", resp.StatusCode)
	}
}

func TestSessionCookieHasSecureDefaults(t *testing.T) {
	_, run := serve(t, Stateful)
	c := NewClient(run.URL(), false)
	defer c.Close()
	resp, err := c.HTTP.Post(run.URL()+"/session", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"session=", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %s", sc, want)
		}
	}
	if ck := resp.Cookies()[0]; len(ck.Value) < 43 { // 32 random bytes, base64
		t.Errorf("token %q is shorter than 256 bits", ck.Value)
	}
}

func TestStatelessServerOffersNoSession(t *testing.T) {
	_, run := serve(t, Stateless)
	c := NewClient(run.URL(), true)
	defer c.Close()
	for _, path := range []string{"/session", "/use_last", "/state"} {
		t.Run(path, func(t *testing.T) {
			status, m := raw(t, c, "POST", path, "application/json", `{"op":"add","b":1}`)
			if status != 404 || m["code"] != "stateless" {
				t.Errorf("got %d %v, want 404 code stateless", status, m)
			}
		})
	}
}

// Concurrent requests on one session lose no update.
func TestConcurrentRequestsOnOneSessionLoseNoUpdate(t *testing.T) {
	srv, run := serve(t, Stateful)
	c := NewClient(run.URL(), true)
	token := startSession(t, c) // last_result = 15
	c.Close()
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine on its own connection, same cookie.
			cc := NewClient(run.URL(), false)
			defer cc.Close()
			req, _ := http.NewRequest("POST", run.URL()+"/use_last", strings.NewReader(`{"op":"add","b":1}`))
			req.Header.Set("Content-Type", "application/json")
			req.AddCookie(&http.Cookie{Name: SessionCookie, Value: token})
			resp, err := cc.HTTP.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st, _, _ := srv.Session(context.Background(), token)
	if st.LastResult != 15+n || st.Operations != 1+n {
		t.Errorf("after %d concurrent +1: last_result=%g operations=%d, want %d and %d", n, st.LastResult, st.Operations, 15+n, 1+n)
	}
}
