package httpexp

import (
	"fmt"
	"net/netip"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// The balancer↔backend legs of http/load-balancing, read back from the
// capture.

// backendLeg is a backend as the capture analysis knows it.
type backendLeg struct {
	name string // b1, b2, b3: as the balancers and X-Backend call it
	addr netip.AddrPort
}

// annotateBackends reads the scenario's backend legs back from the capture,
// comments them, and checks each against the client's exchange.
func (sc *lbScenario) annotateBackends(env *lab.Env, pkts []*capture.Packet, streams []*capture.Stream, front []*Exchange, legs []backendLeg) {
	r := readBackendLegs(sc.t, streams, front, legs)
	commentBackendPackets(pkts, sc.t.name, legs, r.conns, sc.killed)
	env.Check(sc.balancer+" "+sc.name+": every request's backend leg is in the capture, at the backend that counted it",
		r.matched == r.served && len(r.bad) == 0,
		"%d of %d requests served by a backend: its leg captured inside the client's exchange, X-Backend agreeing%s",
		r.matched, r.served, problems(r.bad))
}

// legsRead is what readBackendLegs found.
type legsRead struct {
	served, matched int      // steps a backend counted; of them, legs that agree with the client's exchange
	bad             []string // what did not agree
	// conns maps the balancer's end of a backend connection to the step
	// it carried, for commenting its other packets.
	conns map[netip.AddrPort]string
}

// readBackendLegs pairs the backend legs with the transcript's steps: the
// k-th exchange captured at a backend is the k-th step that backend
// counted (played.Backend). It comments each leg's request and reply with
// the step and the backend that served it, and checks the leg against the
// client's exchange (front, in step order of the answered steps): inside
// it in time, and the client's reply naming the same backend in
// X-Backend.
func readBackendLegs(t *transcript, streams []*capture.Stream, front []*Exchange, legs []backendLeg) legsRead {
	frontOf := map[*played]*Exchange{}
	k := 0
	for _, p := range t.steps {
		if p.Err == nil && k < len(front) {
			frontOf[p] = front[k]
			k++
		}
	}
	r := legsRead{conns: map[netip.AddrPort]string{}}
	for _, b := range legs {
		exs, err := exchangesIn(streams, b.addr)
		if err != nil {
			r.bad = append(r.bad, fmt.Sprintf("%s: %v", b.name, err))
		}
		var steps []int
		for n, p := range t.steps {
			if p.Backend == b.name {
				steps = append(steps, n)
			}
		}
		r.served += len(steps)
		if len(exs) != len(steps) {
			r.bad = append(r.bad, fmt.Sprintf("%s counted %d requests, the capture holds %d at %s", b.name, len(steps), len(exs), b.addr))
		}
		for j := range min(len(exs), len(steps)) {
			n := steps[j]
			p := t.steps[n]
			r.conns[exs[j].Client] = fmt.Sprintf("%s step %d (%s), backend leg balancer ↔ %s (%s)", t.name, n+1, p.Label, b.name, b.addr)
			if problem := commentLeg(t.name, n, p, b, exs[j], frontOf[p]); problem != "" {
				r.bad = append(r.bad, problem)
			} else {
				r.matched++
			}
		}
	}
	return r
}

// commentLeg comments step n's backend leg ex and says what, if anything,
// disagrees with the client's exchange fx.
func commentLeg(name string, n int, p *played, b backendLeg, ex, fx *Exchange) string {
	label := ex.Request.Method + " " + ex.Request.URL.RequestURI()
	if ck, err := ex.Request.Cookie(httpstate.SessionCookie); err == nil {
		label += " cookie=" + sessionLabel(ck.Value)
	}
	if ex.ReqPacket != nil {
		ex.ReqPacket.Comment(annotate.Append(fmt.Sprintf("%s step %d (%s), backend leg: balancer → %s (%s): %s", name, n+1, p.Label, b.name, b.addr, label),
			annotate.Block{}.Str(annotate.Side, "balancer").Str(annotate.Kind, "request").Str(annotate.Mode, name).Uint(annotate.Step, uint64(n+1)).Str(annotate.Backend, b.name)))
	}
	if ex.Response == nil {
		return fmt.Sprintf("step %d: no reply from %s captured", n+1, b.name)
	}
	rl := fmt.Sprintf("%d %s", ex.Response.StatusCode, replySummary(ex.RespBody))
	if ex.RespPacket != nil {
		ex.RespPacket.Comment(annotate.Append(fmt.Sprintf("%s step %d (%s), backend leg: %s → balancer: %s; %s served it (by its own request counter)",
			name, n+1, p.Label, b.name, trimString(rl, 160), b.name),
			annotate.Block{}.Str(annotate.Side, "backend").Str(annotate.Kind, "response").Str(annotate.Mode, name).Uint(annotate.Step, uint64(n+1)).Str(annotate.Backend, b.name)))
	}
	switch {
	case fx == nil || fx.Response == nil || fx.ReqPacket == nil || fx.RespPacket == nil || ex.ReqPacket == nil || ex.RespPacket == nil:
		return fmt.Sprintf("step %d: the client's exchange is not whole in the capture", n+1)
	case ex.ReqPacket.Time.Before(fx.ReqPacket.Time) || fx.RespPacket.Time.Before(ex.RespPacket.Time):
		return fmt.Sprintf("step %d: %s's exchange is not inside the client's", n+1, b.name)
	case fx.Response.Header.Get("X-Backend") != b.name:
		return fmt.Sprintf("step %d: X-Backend %q, counted by %s", n+1, fx.Response.Header.Get("X-Backend"), b.name)
	}
	return ""
}

// commentBackendPackets comments every packet on the scenario's backend
// legs that has no comment yet (handshakes, ACKs, FINs) with the
// connection's step and backend, and the balancer's attempts at the
// stopped backend (killed) as such.
func commentBackendPackets(pkts []*capture.Packet, scenario string, legs []backendLeg, conns map[netip.AddrPort]string, killed string) {
	names := map[netip.AddrPort]string{}
	for _, b := range legs {
		names[b.addr] = b.name
	}
	for _, p := range pkts {
		if len(p.Comments) > 0 {
			continue
		}
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		backend, peer := m.Dst, m.Src
		if _, ok := names[backend]; !ok {
			backend, peer = m.Src, m.Dst
		}
		name, ok := names[backend]
		if !ok {
			continue
		}
		side := "balancer"
		if m.Src == backend {
			side = "backend"
		}
		blk := annotate.Block{}.Str(annotate.Side, side).Str(annotate.Kind, "segment").Str(annotate.Mode, scenario).Str(annotate.Backend, name)
		if what, ok := conns[peer]; ok {
			p.Comment(annotate.Append(what+": "+tcpFlags(m.Flags), blk))
			continue
		}
		why := "no HTTP exchange on this connection"
		if name == killed {
			why = "the balancer tries " + name + ", which was stopped: connection refused"
		}
		p.Comment(annotate.Append(fmt.Sprintf("%s, balancer ↔ %s (%s): %s; %s", scenario, name, backend, tcpFlags(m.Flags), why), blk))
	}
}
