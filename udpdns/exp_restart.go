package udpdns

import (
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/internal/capture"
	"github.com/statelab/statelab/internal/lab"
)

// Restart sets dns/server-restart: queries before and after, and the
// client's per-attempt timeout.
var Restart = struct {
	Before, After int
	Timeout       time.Duration
}{Before: 4, After: 4, Timeout: 100 * time.Millisecond}

func init() {
	lab.Register(lab.Experiment{
		Name:    "dns/server-restart",
		Summary: "the server is stopped and started again between queries: the client's workflow carries on",
		Shows: "A stateless backend can be restarted under its clients: the query sent while it was down is refused by the " +
			"kernel (ICMP port unreachable), retried with a fresh ID and answered by the new instance, and the workflow continues on the same socket.",
		Run: runRestart,
	})
}

func runRestart(env *lab.Env) error {
	srv, err := StartServer(ServerConfig{Seed: env.Rand.Uint64()})
	if err != nil {
		return err
	}
	env.Cleanup(func() { srv.Close() })
	addr := srv.Addr()
	cap, err := env.Capture(capture.Options{Keep: keepPorts(addr.Port())})
	if err != nil {
		return err
	}
	gapName := "during-restart." + SynthSuffix
	gapSent := make(chan struct{})
	cl, err := NewClient(Config{Server: addr, Timeout: Restart.Timeout, Retries: 10, Trace: func(e Event) {
		if e.Kind == EventSent && e.Attempt == 0 && strings.EqualFold(e.Name, gapName) {
			close(gapSent)
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })

	type step struct {
		name  string
		phase string
		ok    bool
		err   error
	}
	var steps []step
	ask := func(name, phase string) {
		r, err := cl.Query(env.Ctx, name, dns.TypeA)
		steps = append(steps, step{name, phase, err == nil && answerA(r) == SynthA(name), err})
	}
	for i := range Restart.Before {
		ask(fmt.Sprintf("before%d.%s", i, SynthSuffix), "before")
	}
	before := srv.Stats()
	if err := srv.Stop(); err != nil {
		return err
	}
	env.Logf("server stopped; querying %s", gapName)
	gapDone := make(chan step, 1)
	go func() {
		r, err := cl.Query(env.Ctx, gapName, dns.TypeA)
		gapDone <- step{gapName, "while down", err == nil && answerA(r) == SynthA(gapName), err}
	}()
	select {
	case <-gapSent: // the first attempt is on the wire, to nobody
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("restarting the server on %s: %w", addr, err)
	}
	restartedAt := time.Now()
	var gap step
	select {
	case gap = <-gapDone:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	steps = append(steps, gap)
	gapWait := time.Since(restartedAt)
	for i := range Restart.After {
		ask(fmt.Sprintf("after%d.%s", i, SynthSuffix), "after")
	}
	st := cl.Stats()
	pkts, err := cap.Stop()
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}

	good := 0
	rows := [][]string{{"query", "phase", "answered"}}
	for _, s := range steps {
		if s.ok {
			good++
		}
		rows = append(rows, []string{s.name, s.phase, fmt.Sprint(s.ok)})
	}
	env.Table("the workflow", rows)
	env.Check("every query of the workflow answered", good == len(steps),
		"%d of %d queries answered correctly across the restart", good, len(steps))
	env.Check("the restarted server answers on the same address", srv.Addr() == addr, "before %v, after %v", addr, srv.Addr())
	env.Check("the query sent while down was retried and answered", gap.ok && st.TimedOut >= 1 && st.Retries >= 1,
		"%s: ok=%v err=%v; %d attempts timed out, %d retries; answered %v after the restart", gapName, gap.ok, gap.err, st.TimedOut, st.Retries, gapWait.Round(time.Millisecond))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)

	// The capture: queries, answers, and the kernel's refusal while down.
	client := cl.LocalAddrs()[0].Port()
	lad := env.Ladder(fmt.Sprintf("across the restart (server %s), as captured", addr), "client", "server")
	ports := map[uint16]bool{}
	icmps, icmpForGap := 0, false
	var gapFirstID uint16
	phase := "first instance"
	for _, p := range pkts {
		if code, src, dst, quoted, ok := icmpUnreachable(p); ok {
			icmps++
			h, _ := ParseHead(quoted)
			if code == 3 && src.Port() == client && dst == addr && h.HasQuestion && strings.EqualFold(wireName(h.QName), gapName) {
				icmpForGap = true
				gapFirstID = h.ID
			}
			p.Comment(fmt.Sprintf("ICMP port unreachable (code %d): nothing listens on %v — the server is down; quotes query id=%#04x", code, dst, h.ID))
			lad.Reply(fmt.Sprintf("ICMP port unreachable (id=%#04x)", h.ID), "ignored: unconnected socket", "(down)")
			phase = "second instance"
			continue
		}
		w := dnsPackets([]*capture.Packet{p})
		if len(w) == 0 {
			continue
		}
		d := w[0]
		if d.meta.Dst == addr && !d.head.Response() {
			ports[d.meta.Src.Port()] = true
			p.Comment("query " + d.question())
			if strings.Contains(strings.ToLower(d.question()), "during-restart") || len(lad.Rows) < 2 {
				lad.Send(d.question(), fmt.Sprintf("attempt on port %d", d.meta.Src.Port()), phase)
			}
		} else if d.meta.Src == addr {
			p.Comment(fmt.Sprintf("answer %s → %s (%s)", d.question(), d.answer(), phase))
			if strings.Contains(strings.ToLower(d.question()), "during-restart") || len(lad.Rows) < 2 {
				lad.Reply(d.question()+" "+d.answer(), "matched", phase)
			}
		}
	}
	env.Check("the kernel refused the query sent while the server was down", icmpForGap,
		"%d ICMP port-unreachable messages captured; one quotes %s (id=%#04x)", icmps, gapName, gapFirstID)
	env.Check("one client socket throughout", len(ports) == 1, "client ports used: %d", len(ports))
	env.Metric("queries_count", float64(len(steps)))
	env.Metric("gap_answered_after_restart_ms", float64(gapWait.Microseconds())/1000)
	env.Metric("server_received_before_stop_count", float64(before.Received))
	env.Note("the server was stopped and started again in-process on the same port (a new socket and a new miekg/dns server): it kept nothing across the restart, so nothing was lost")
	env.Note("the client's socket is unconnected, so Linux does not report the ICMP error to it: the timeout and the retry with a fresh ID carry the query across")
	return nil
}
