package httpexp

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

func TestLoadBalancingExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/load-balancing"), 1)
	if r.Metrics["ReverseProxy.stateful, round-robin.failure_rate"] == 0 {
		t.Errorf("round-robin did not break stateful sessions: %v", r.Metrics)
	}
	if r.Metrics["ReverseProxy.stateful, sticky.lost_after_kill_count"] != 1 {
		t.Errorf("sticky kill lost %v clients, want 1", r.Metrics["ReverseProxy.stateful, sticky.lost_after_kill_count"])
	}
	if lost, ok := r.Metrics["ReverseProxy.store-backed, round-robin.concurrent_lost_count"]; !ok || lost != 0 {
		t.Errorf("store-backed round-robin: concurrent updates lost %v (measured %v)", lost, ok)
	}
}

// CI installs haproxy: the experiment must then run its HAProxy scenarios.
func TestLoadBalancingBehindHAProxy(t *testing.T) {
	labtest.NeedTool(t, "haproxy")
	r := labtest.RunExperiment(t, experiment("http/load-balancing"), 2)
	if _, ok := r.Metrics["HAProxy.stateful, sticky (cookie insert).failure_rate"]; !ok {
		t.Errorf("no HAProxy scenario in %v", r.Metrics)
	}
}

var ladderAddr = regexp.MustCompile(`\((127\.0\.0\.1:\d+)\)`)

// The capture holds the balancer↔backend legs as well as the client's:
// every packet to or from a backend is commented with the backend, and
// every backend leg's request and reply say which backend served it — for
// the Go balancer and for HAProxy alike.
func TestLoadBalancingCaptureShowsWhichBackendServed(t *testing.T) {
	labtest.NeedTool(t, "haproxy")
	r := labtest.RunExperiment(t, experiment("http/load-balancing"), 3)
	f, err := capture.ReadFile(r.Captures[0])
	if err != nil {
		t.Fatal(err)
	}
	fronts := map[uint16]bool{}
	for _, l := range r.Ladders {
		m := ladderAddr.FindStringSubmatch(l.Title)
		if m == nil {
			t.Fatalf("ladder %q names no address", l.Title)
		}
		ap, err := netip.ParseAddrPort(m[1])
		if err != nil {
			t.Fatalf("ladder %q names no address: %v", l.Title, err)
		}
		fronts[ap.Port()] = true
	}
	served := map[string]int{} // balancer → backend legs' replies naming their backend
	backendPackets := 0
	for i, p := range f.Packets {
		m, ok := p.Decode()
		if !ok || fronts[m.Src.Port()] || fronts[m.Dst.Port()] {
			continue
		}
		backendPackets++
		c := strings.Join(p.Comments, " ")
		if !strings.Contains(c, "↔ b") && !strings.Contains(c, "backend leg: b") && !strings.Contains(c, "→ b") {
			t.Errorf("frame %d (%s → %s) on a backend leg names no backend: %q", i+1, m.Src, m.Dst, c)
		}
		for _, bal := range []string{"ReverseProxy", "HAProxy"} {
			if strings.HasPrefix(c, bal+":") && strings.Contains(c, "served it") {
				served[bal]++
			}
		}
	}
	if backendPackets == 0 || served["ReverseProxy"] == 0 || served["HAProxy"] == 0 {
		t.Fatalf("%d packets on backend legs; replies naming their backend: %v", backendPackets, served)
	}
}

// The backend legs read back from a small capture: a client's request
// through the balancer (front) and the balancer's request to the backend
// that counted it. A leg agrees when it lies inside the client's exchange
// and the client's reply names the same backend in X-Backend; every packet
// on a backend leg is commented with its backend.
func TestReadBackendLegs(t *testing.T) {
	front := netip.MustParseAddrPort("127.0.0.1:8080")
	balancer := netip.MustParseAddrPort("127.0.0.1:50000")
	legs := []backendLeg{{"b1", netip.MustParseAddrPort("127.0.0.1:9001")}, {"b2", netip.MustParseAddrPort("127.0.0.1:9002")}}
	req := httpRequest("POST", "/calculate", "", `{"op":"add","a":10,"b":5}`)
	resp := httpResponse(200, "", `{"result":15}`)
	tests := []struct {
		name      string
		xBackend  string // the client's reply's X-Backend
		legAt     int    // the backend leg's request time (ms); its reply 1 ms later; 0: not captured
		refused   bool   // the balancer also tried b2, stopped: an unanswered SYN
		matched   int
		bad       string
		b2Comment string
	}{
		{"inside the client's exchange, X-Backend agreeing", "b1", 12, false, 1, "", ""},
		{"X-Backend names another backend", "b2", 12, false, 0, `X-Backend "b2", counted by b1`, ""},
		{"the leg after the client's reply", "b1", 20, false, 0, "not inside the client's", ""},
		{"the leg not captured", "b1", 0, false, 0, "b1 counted 1 requests, the capture holds 0", ""},
		{"a stopped backend tried first", "b1", 12, true, 1, "", "the balancer tries b2, which was stopped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := oneExchange(t, testClient, front, 10, 15, req, httpResponse(200, "", `{"result":15}`, "X-Backend: "+tt.xBackend))
			if tt.legAt > 0 {
				pkts = append(pkts, oneExchange(t, balancer, legs[0].addr, tt.legAt, tt.legAt+1, req, resp)...)
			}
			if tt.refused {
				pkts = append(pkts, segment(t, netip.MustParseAddrPort("127.0.0.1:50001"), legs[1].addr, 0, true, "", 11))
			}
			tr := &transcript{name: "ReverseProxy: test", addr: front,
				steps: []*played{{scriptStep: scriptStep{Label: "client 1: 10 + 5"}, Backend: "b1"}}}
			r := readBackendLegs(tr, capture.TCPStreams(pkts), exchangesOf(t, pkts, front), legs)
			commentBackendPackets(pkts, tr.name, legs, r.conns, "b2")
			if r.served != 1 || r.matched != tt.matched || (tt.bad == "") != (len(r.bad) == 0) || !strings.Contains(strings.Join(r.bad, "; "), tt.bad) {
				t.Fatalf("%d of %d matched, problems %q; want %d matched, %q", r.matched, r.served, r.bad, tt.matched, tt.bad)
			}
			for i, p := range pkts {
				m, _ := p.Decode()
				c := strings.Join(p.Comments, " ")
				switch {
				case m.Src.Port() == 8080 || m.Dst.Port() == 8080:
					if c != "" {
						t.Errorf("packet %d on the client's leg commented %q (annotate's job)", i, c)
					}
				case m.Dst == legs[1].addr:
					if !strings.Contains(c, tt.b2Comment) || !strings.Contains(c, "balancer ↔ b2") {
						t.Errorf("packet %d to b2: %q; want %q", i, c, tt.b2Comment)
					}
				case !strings.Contains(c, "step 1 (client 1: 10 + 5)") || !strings.Contains(c, "b1"):
					t.Errorf("packet %d on b1's leg: %q", i, c)
				}
			}
		})
	}
}
