package udpdns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// Restart sets dns/server-restart: queries before and after, and the
// client's per-attempt timeout and retries (the retries must outlast the
// start of a new server process).
var Restart = struct {
	Before, After int
	Timeout       time.Duration
	Retries       int
}{Before: 4, After: 4, Timeout: 100 * time.Millisecond, Retries: 50}

func init() {
	register(lab.Experiment{
		Name:    "dns/server-restart",
		Summary: "the server is stopped and started again between queries: the client's workflow carries on",
		Shows: "A stateless backend can be restarted under its clients: the server process is killed (SIGKILL, as a crash: no goodbye), " +
			"the query sent while it is down is refused by the kernel (ICMP port unreachable), retried with a fresh ID and answered by a new process " +
			"on the same port, and the workflow continues on the same client socket.",
		Run: runRestart,
	})
}

func runRestart(env *lab.Env) error {
	seed := env.Stream("server").Uint64()
	// Each server process appends a byte per datagram it writes to a tally
	// file of its own, which outlives a SIGKILL: the capture's source count.
	tallies, err := os.MkdirTemp("", "statelab-dns-restart-*")
	if err != nil {
		return &lab.EnvError{What: "making a directory for the servers' tallies", Err: err, Remedy: "make TMPDIR writable"}
	}
	env.Cleanup(func() { os.RemoveAll(tallies) })
	tally1, tally2 := filepath.Join(tallies, "first"), filepath.Join(tallies, "second")
	p1, addr, err := StartServerProcess(env.Ctx, ServerConfig{Addr: labServerAddr, Seed: seed, TallyFile: tally1}, "")
	if err != nil {
		return err
	}
	env.Cleanup(func() { _ = p1.Kill() })
	want, err := startWant()
	if err != nil {
		return err
	}
	cap, err := env.Capture(capture.Options{Keep: keepPorts(addr.Port())})
	if err != nil {
		return err
	}
	gapName := "during-restart." + SynthSuffix
	gapSent := make(chan struct{})
	var said verdicts
	cl, err := NewClient(Config{Server: addr, Timeout: Restart.Timeout, Retries: Restart.Retries, Rand: env.Bytes("client"), Trace: func(e Event) {
		said.trace(e)
		if e.Kind == EventSent && e.Attempt == 0 && strings.EqualFold(e.Name, gapName) {
			close(gapSent)
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })
	// Each query draws its IDs from a stream of its own, so how many
	// retries one needed (timing) changes no other query's IDs.
	query := func(name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		return cl.ExchangeRand(env.Ctx, m, queryRand(env, name))
	}

	type step struct {
		name  string
		phase string
		pid   int
		ok    bool
		err   error
	}
	var steps []step
	ask := func(name, phase string, pid int) {
		r, err := query(name)
		steps = append(steps, step{name, phase, pid, err == nil && answerA(r) == SynthA(name), err})
	}
	pid1 := p1.PID()
	for i := range Restart.Before {
		ask(fmt.Sprintf("before%d.%s", i, SynthSuffix), "before", pid1)
	}
	_ = p1.Kill()
	ws1, _ := p1.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ws1.Signaled() && ws1.Signal() == syscall.SIGKILL
	env.Logf("server process %d killed (%v); querying %s", pid1, p1.Cmd.ProcessState, gapName)
	gapDone := make(chan step, 1)
	go func() {
		r, err := query(gapName)
		gapDone <- step{gapName, "while down", 0, err == nil && answerA(r) == SynthA(gapName), err}
	}()
	select {
	case <-gapSent: // the first attempt is on the wire, to nobody
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	startedAt := time.Now()
	p2, addr2, err := StartServerProcess(env.Ctx, ServerConfig{Addr: addr.String(), Seed: seed + 1, TallyFile: tally2}, "")
	if err != nil {
		return fmt.Errorf("starting a new server process on %s: %w", addr, err)
	}
	env.Cleanup(func() { _ = p2.Kill() })
	pid2 := p2.PID()
	restartedAt := time.Now()
	var gap step
	select {
	case gap = <-gapDone:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	gap.pid = pid2
	steps = append(steps, gap)
	gapWait := time.Since(restartedAt)
	for i := range Restart.After {
		ask(fmt.Sprintf("after%d.%s", i, SynthSuffix), "after", pid2)
	}
	stopErr := p2.Stop(5 * time.Second)
	st := cl.Stats()
	client := cl.LocalAddrs()[0]
	cl.Close()
	n1, err1 := ReadTally(tally1)
	n2, err2 := ReadTally(tally2)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("reading the servers' tallies: %w", err)
	}
	want.server, want.client = addr, client
	want.queries = int(st.Sent - st.SendFailed)
	want.replies = n1 + n2
	want.repliesBy = fmt.Sprintf("the server processes (%d + %d answers written, by their tally files)", n1, n2)
	pkts, err := stopComplete(env, cap, want)
	if err != nil {
		return err
	}

	good := 0
	rows := [][]string{{"query", "phase", "answered by", "answered"}}
	for _, s := range steps {
		if s.ok {
			good++
		}
		by := "-"
		if s.ok {
			by = fmt.Sprintf("pid %d", s.pid)
		}
		rows = append(rows, []string{s.name, s.phase, by, fmt.Sprint(s.ok)})
	}
	env.Table("the workflow", rows)
	env.Table("the server processes", [][]string{
		{"pid", "address", "started", "ended"},
		{fmt.Sprint(pid1), addr.String(), "before the workflow", fmt.Sprintf("SIGKILL after %d queries (%v)", Restart.Before, p1.Cmd.ProcessState)},
		{fmt.Sprint(pid2), addr2.String(), fmt.Sprintf("%v after the query sent while down", restartedAt.Sub(startedAt).Round(time.Millisecond)),
			fmt.Sprintf("SIGTERM at the end (%v)", p2.Cmd.ProcessState)},
	})
	env.Check("every query of the workflow answered", good == len(steps),
		"%d of %d queries answered correctly across the restart", good, len(steps))
	env.Check("two server processes: the first killed by SIGKILL, a new one started", killed && pid1 != pid2,
		"first pid %d ended %v; second pid %d", pid1, p1.Cmd.ProcessState, pid2)
	env.Check("the new process answers on the same address", addr2 == addr, "before %v, after %v", addr, addr2)
	env.Check("the new process stops cleanly on SIGTERM", stopErr == nil, "exit: %v", stopErr)
	env.Check("the query sent while down was retried and answered", gap.ok && st.TimedOut >= 1 && st.Retries >= 1,
		"%s: ok=%v err=%v; %d attempts timed out, %d retries; answered %v after the restart", gapName, gap.ok, gap.err, st.TimedOut, st.Retries, gapWait.Round(time.Millisecond))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)

	// The capture: queries, answers, and the kernel's refusal while down.
	lad := env.Ladder(fmt.Sprintf("across the restart (server %s: pid %d killed, pid %d started), as captured", addr, pid1, pid2), "client", "server")
	ports := map[uint16]bool{}
	icmps, icmpForGap := 0, false
	var gapFirstID uint16
	phase := fmt.Sprintf("pid %d", pid1)
	attempts := map[string]int{}
	order := map[string]int{}
	for _, p := range pkts {
		if code, src, dst, quoted, ok := icmpUnreachable(p); ok {
			icmps++
			h, _ := ParseHead(quoted)
			if code == 3 && src.Port() == client.Port() && dst == addr && h.HasQuestion && strings.EqualFold(wireName(h.QName), gapName) {
				icmpForGap = true
				gapFirstID = h.ID
			}
			p.Comment(fmt.Sprintf("ICMP port unreachable (code %d) from the kernel: nothing listens on %v — the server is down; quotes query id=%#04x %s", code, dst, h.ID, wireName(h.QName)))
			lad.Reply(fmt.Sprintf("ICMP port unreachable (id=%#04x)", h.ID), "ignored: unconnected socket", fmt.Sprintf("(down: pid %d killed)", pid1))
			phase = fmt.Sprintf("pid %d", pid2)
			continue
		}
		w := dnsPackets([]*capture.Packet{p})
		if len(w) == 0 {
			continue
		}
		d := w[0]
		if d.meta.Dst == addr && !d.head.Response() {
			ports[d.meta.Src.Port()] = true
			n := strings.ToLower(wireName(d.head.QName))
			if _, ok := order[n]; !ok {
				order[n] = len(order)
			}
			attempts[n]++
			p.Comment(fmt.Sprintf("query %d (attempt %d): %s", order[n], attempts[n], d.question()))
			if strings.Contains(strings.ToLower(d.question()), "during-restart") || len(lad.Rows) < 2 {
				lad.Send(d.question(), fmt.Sprintf("attempt on port %d", d.meta.Src.Port()), phase)
			}
		} else if d.meta.Src == addr {
			verdict := "not read by the client"
			if e, ok := said.next(d); ok {
				verdict = e.describe()
			}
			p.Comment(fmt.Sprintf("answer to query %d %s → %s (%s); client: %s", order[strings.ToLower(wireName(d.head.QName))], d.question(), d.answer(), phase, verdict))
			if strings.Contains(strings.ToLower(d.question()), "during-restart") || len(lad.Rows) < 2 {
				lad.Reply(d.question()+" "+d.answer(), "matched", phase)
			}
		}
	}
	commentRest(pkts)
	env.Check("the kernel refused the query sent while the server was down", icmpForGap,
		"%d ICMP port-unreachable messages captured; one quotes %s (id=%#04x)", icmps, gapName, gapFirstID)
	env.Check("one client socket throughout", len(ports) == 1, "client ports used: %d", len(ports))
	env.Metric("queries_count", float64(len(steps)))
	env.Metric("gap_answered_after_restart_ms", float64(gapWait.Microseconds())/1000)
	env.Metric("server_restart_ms", float64(restartedAt.Sub(startedAt).Microseconds())/1000)
	env.Note("the server ran as a separate process (this binary again, internal/subproc role %q); the first was killed with SIGKILL, "+
		"the harsher of the two ways to stop it: no handler ran, no goodbye was sent, the kernel closed its socket — a crash. "+
		"A new process (pid %d, not %d) bound the same port: the server kept nothing across the restart, so nothing was lost", ServerRole, pid2, pid1)
	env.Note("the client's socket is unconnected, so Linux does not report the ICMP error to it: the timeout and the retry with a fresh ID carry the query across")
	return nil
}
