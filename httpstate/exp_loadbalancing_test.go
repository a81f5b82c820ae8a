package httpstate

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
