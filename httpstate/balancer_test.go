package httpstate

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// The balancer's own rules, with stateless backends so every request
// succeeds and only the routing is under test.
func TestBalancerRouting(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		requests int
		kill     int // backend index closed before the requests, -1 none
		want     map[string]int64
	}{
		{"round-robin spreads evenly", RoundRobin, 6, -1, map[string]int64{"b1": 2, "b2": 2, "b3": 2}},
		{"sticky keeps one client on one backend", Sticky, 6, -1, map[string]int64{"b1": 6, "b2": 0, "b3": 0}},
		{"round-robin gives a refusing backend's turns to the next", RoundRobin, 6, 1, map[string]int64{"b1": 2, "b2": 0, "b3": 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			for i := 0; i < 3; i++ {
				_, run := serve(t, Stateless)
				if i == tt.kill {
					run.Close()
				}
				urls = append(urls, run.URL())
			}
			lb, err := NewBalancer(tt.policy, urls...)
			if err != nil {
				t.Fatal(err)
			}
			front, err := Listen("127.0.0.1:0", lb)
			if err != nil {
				t.Fatal(err)
			}
			defer front.Close()
			c := NewClient(front.URL(), true)
			defer c.Close()
			for i := 0; i < tt.requests; i++ {
				rep, err := c.Post(context.Background(), "/calculate", CalcRequest{Op: Add, A: num(1), B: num(2)})
				if err != nil || rep.Status != 200 {
					t.Fatalf("request %d: %+v %v", i, rep, err)
				}
			}
			got := lb.Served()
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("served %v, want %v", got, tt.want)
					break
				}
			}
		})
	}
}

func TestBalancerWithNoBackendLeftIsA502(t *testing.T) {
	_, run := serve(t, Stateless)
	run.Close()
	lb, _ := NewBalancer(RoundRobin, run.URL())
	front, _ := Listen("127.0.0.1:0", lb)
	defer front.Close()
	c := NewClient(front.URL(), false)
	defer c.Close()
	rep, err := c.Post(context.Background(), "/calculate", CalcRequest{Op: Add, A: num(1), B: num(2)})
	if err != nil || rep.Status != 502 || rep.Code != "bad_gateway" {
		t.Errorf("got %+v %v, want a 502 bad_gateway", rep, err)
	}
}

func TestNewBalancerRefusesBadInput(t *testing.T) {
	if _, err := NewBalancer("random", "http://127.0.0.1:1"); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := NewBalancer(RoundRobin); err == nil {
		t.Error("no backends accepted")
	}
}

// A request body over the limit is refused with a 413 and a JSON error, not
// forwarded cut at 4 KiB.
func TestBalancerRefusesAnOversizedBodyWith413(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		status int
		code   string
	}{
		{"at the limit passes through", maxBody, http.StatusBadRequest, "malformed"},
		{"one byte over is a 413", maxBody + 1, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"far over is a 413", 1 << 20, http.StatusRequestEntityTooLarge, "body_too_large"},
	}
	_, run := serve(t, Stateless)
	lb, err := NewBalancer(RoundRobin, run.URL())
	if err != nil {
		t.Fatal(err)
	}
	front, err := Listen("127.0.0.1:0", lb)
	if err != nil {
		t.Fatal(err)
	}
	defer front.Close()
	c := NewClient(front.URL(), false)
	defer c.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"op":"add","a":1,"b":2,"pad":"` + strings.Repeat("x", tt.size) + `"}`
			body = body[:tt.size]
			status, m := raw(t, c, "POST", "/calculate", "application/json", body)
			if status != tt.status || (tt.code != "" && m["code"] != tt.code) {
				t.Fatalf("%d bytes: %d %v; want %d %s", tt.size, status, m, tt.status, tt.code)
			}
		})
	}
}
