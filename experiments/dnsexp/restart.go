package dnsexp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/subproc"
	"github.com/statelab/statelab/udpdns"
)

// restart is dns/server-restart: queries before and after, and the
// client's per-attempt timeout and retries (the retries must outlast the
// start of a new server process).
var restart = struct {
	before, after int
	timeout       time.Duration
	retries       int
}{before: 4, after: 4, timeout: 100 * time.Millisecond, retries: 50}

// gapName is the query sent while the server is down.
var gapName = "during-restart." + udpdns.SynthSuffix

func runRestart(env *lab.Env) error {
	// Set up: the first server process, each process with a tally file
	// (which outlives a SIGKILL: the capture's source count), the rig.
	x := &restartRun{env: env, seed: env.Stream("server").Uint64(), gapSent: make(chan struct{})}
	if err := x.startFirst(); err != nil {
		return err
	}
	r, err := newRig(env, x.addr, rigConfig{timeout: restart.timeout, retries: restart.retries, trace: x.trace})
	if err != nil {
		return err
	}
	x.rig = r
	// Drive: queries, the crash, a query while down, a new process, more
	// queries, a clean stop.
	x.askAll("before", restart.before, x.pid1)
	if err := x.crashAndRestart(); err != nil {
		return err
	}
	x.askAll("after", restart.after, x.pid2)
	x.stopErr = x.p2.Stop(5 * time.Second)
	// Collect: the tallies are final once both processes are gone.
	n1, err1 := readTally(x.tally(1))
	n2, err2 := readTally(x.tally(2))
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("reading the servers' tallies: %w", err)
	}
	pkts, st, err := r.collect(n1+n2, fmt.Sprintf("the server processes (%d + %d answers written, by their tally files)", n1, n2), 0)
	if err != nil {
		return err
	}
	x.judge(st)
	w := readRestart(pkts, x.addr, r.client, x.pid1, x.pid2, &r.said)
	commentRest(pkts)
	x.report(w)
	x.holding(w, st)
	return nil
}

// holding is dns/server-restart's row of "who holds the state", from what
// this run measured: the queries answered across the restart, the retries
// the query sent while down needed, the bytes of ID and question the
// client sent in each query (from the capture).
func (x *restartRun) holding(w restartWire, st udpdns.Stats) {
	good := 0
	for _, s := range x.steps {
		if s.ok {
			good++
		}
	}
	lost := fmt.Sprintf("nothing: %d of %d queries answered across the restart; the one sent while down was retried %d time(s) and answered %v after it",
		good, len(x.steps), st.Retries, x.gapWait.Round(time.Millisecond))
	if good != len(x.steps) {
		lost = fmt.Sprintf("%d of %d queries unanswered across the restart", len(x.steps)-good, len(x.steps))
	}
	per := 0
	if w.queries > 0 {
		per = w.idQuestionBytes / w.queries
	}
	x.env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("nothing between queries: only the query being answered (%d processes answered %d queries, neither needing the other's memory)",
			2, good),
		ClientCarries: fmt.Sprintf("the query ID and question in each of its %d queries (%d bytes on average, the rest of its state — what it asked, when to retry — stays with it)",
			w.queries, per),
		RestartLoses: lost,
		CarriedBytes: per,
		CarriedPer:   "per query (ID + question, from the capture)",
	})
}

// restartRun is one run of dns/server-restart.
type restartRun struct {
	env     *lab.Env
	rig     *rig
	seed    uint64
	tallies string // the directory of the tally files

	addr, addr2            netip.AddrPort
	p1, p2                 *subproc.Proc
	pid1, pid2             int
	killed                 bool // the first ended by SIGKILL
	startedAt, restartedAt time.Time
	gapSent                chan struct{} // the gap query's first attempt is on the wire
	gapWait                time.Duration // from the restart to the gap query's answer
	steps                  []restartStep
	gap                    restartStep
	stopErr                error
}

// restartStep is one query of the workflow.
type restartStep struct {
	name, phase string
	pid         int // the process that answered
	ok          bool
	err         error
}

func (x *restartRun) tally(n int) string { return filepath.Join(x.tallies, fmt.Sprint(n)) }

// startFirst makes the tallies' directory and starts the first process.
func (x *restartRun) startFirst() error {
	var err error
	if x.tallies, err = os.MkdirTemp("", "statelab-dns-restart-*"); err != nil {
		return &lab.EnvError{What: "making a directory for the servers' tallies", Err: err, Remedy: "make TMPDIR writable"}
	}
	x.env.Cleanup(func() { os.RemoveAll(x.tallies) })
	if x.p1, x.addr, err = startServerProcess(x.env.Ctx, serverProc{addr: labServerAddr, seed: x.seed, tally: x.tally(1)}); err != nil {
		return err
	}
	x.env.Cleanup(func() { _ = x.p1.Kill() })
	x.pid1 = x.p1.PID()
	return nil
}

// trace notes the gap query's first attempt on the wire.
func (x *restartRun) trace(e udpdns.Event) {
	if e.Kind == udpdns.EventSent && e.Attempt == 0 && strings.EqualFold(e.Name, gapName) {
		close(x.gapSent)
	}
}

// ask asks one query of the workflow.
func (x *restartRun) ask(name, phase string, pid int) restartStep {
	o := x.rig.askOne(name)
	return restartStep{name: name, phase: phase, pid: pid, ok: o.ok, err: o.err}
}

// askAll asks n queries of a phase, one after another.
func (x *restartRun) askAll(phase string, n, pid int) {
	for i := range n {
		x.steps = append(x.steps, x.ask(synthName(phase, i), phase, pid))
	}
}

// crashAndRestart kills the first process, sends the gap query to nobody,
// starts a second process on the same address and waits for the gap
// query's answer.
func (x *restartRun) crashAndRestart() error {
	_ = x.p1.Kill()
	ws1, _ := x.p1.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	x.killed = ws1.Signaled() && ws1.Signal() == syscall.SIGKILL
	x.env.Logf("server process %d killed (%v); querying %s", x.pid1, x.p1.Cmd.ProcessState, gapName)
	gapDone := make(chan restartStep, 1)
	go func() { gapDone <- x.ask(gapName, "while down", 0) }()
	select {
	case <-x.gapSent: // the first attempt is on the wire, to nobody
	case <-x.env.Ctx.Done():
		return x.env.Ctx.Err()
	}
	x.startedAt = time.Now()
	var err error
	x.p2, x.addr2, err = startServerProcess(x.env.Ctx, serverProc{addr: x.addr.String(), seed: x.seed + 1, tally: x.tally(2)})
	if err != nil {
		return fmt.Errorf("starting a new server process on %s: %w", x.addr, err)
	}
	x.env.Cleanup(func() { _ = x.p2.Kill() })
	x.pid2 = x.p2.PID()
	x.restartedAt = time.Now()
	select {
	case x.gap = <-gapDone:
	case <-x.env.Ctx.Done():
		return x.env.Ctx.Err()
	}
	x.gap.pid = x.pid2
	x.steps = append(x.steps, x.gap)
	x.gapWait = time.Since(x.restartedAt)
	return nil
}

// judge tables the workflow and the processes and checks them.
func (x *restartRun) judge(st udpdns.Stats) {
	good := 0
	rows := [][]string{{"query", "phase", "answered by", "answered"}}
	for _, s := range x.steps {
		by := "-"
		if s.ok {
			good++
			by = fmt.Sprintf("pid %d", s.pid)
		}
		rows = append(rows, []string{s.name, s.phase, by, fmt.Sprint(s.ok)})
	}
	env := x.env
	env.Table("the workflow", rows)
	env.Table("the server processes", [][]string{
		{"pid", "address", "started", "ended"},
		{fmt.Sprint(x.pid1), x.addr.String(), "before the workflow", fmt.Sprintf("SIGKILL after %d queries (%v)", restart.before, x.p1.Cmd.ProcessState)},
		{fmt.Sprint(x.pid2), x.addr2.String(), fmt.Sprintf("%v after the query sent while down", x.restartedAt.Sub(x.startedAt).Round(time.Millisecond)),
			fmt.Sprintf("SIGTERM at the end (%v)", x.p2.Cmd.ProcessState)},
	})
	env.Check("every query of the workflow answered", good == len(x.steps),
		"%d of %d queries answered correctly across the restart", good, len(x.steps))
	env.Check("two server processes: the first killed by SIGKILL, a new one started", x.killed && x.pid1 != x.pid2,
		"first pid %d ended %v; second pid %d", x.pid1, x.p1.Cmd.ProcessState, x.pid2)
	env.Check("the new process answers on the same address", x.addr2 == x.addr, "before %v, after %v", x.addr, x.addr2)
	env.Check("the new process stops cleanly on SIGTERM", x.stopErr == nil, "exit: %s", lab.OK(x.stopErr))
	env.Check("the query sent while down was retried and answered", x.gap.ok && st.TimedOut >= 1 && st.Retries >= 1,
		"%s: ok=%v error: %s; %d attempts timed out, %d retries; answered %v after the restart",
		gapName, x.gap.ok, lab.ErrText(x.gap.err), st.TimedOut, st.Retries, x.gapWait.Round(time.Millisecond))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)
}

// restartWire is what the capture of dns/server-restart shows.
type restartWire struct {
	ports      map[uint16]bool // client ports the queries came from
	icmps      int             // ICMP port-unreachable messages
	icmpForGap bool            // one of them quotes the gap query
	gapFirstID uint16          // the gap query's first ID, as quoted
	ladder     []lab.Rung
	// queries captured, and the bytes of ID and question they carried
	// (2 + QNAME + QTYPE + QCLASS each).
	queries, idQuestionBytes int
}

// readRestart comments every query, answer and ICMP error with the
// process that was up (the first until the kernel refused a query), and
// draws the first exchange and the gap query's story.
func readRestart(pkts []*capture.Packet, addr, client netip.AddrPort, pid1, pid2 int, said *verdicts) restartWire {
	w := restartWire{ports: map[uint16]bool{}}
	var lad lab.Ladder
	phase := fmt.Sprintf("pid %d", pid1)
	attempts, order := map[string]int{}, map[string]int{}
	for _, p := range pkts {
		if u, ok := icmpUnreachable(p); ok {
			w.icmps++
			if u.code == portUnreachable && u.src.Port() == client.Port() && u.dst == addr && strings.EqualFold(u.quoted.Name(), gapName) {
				w.icmpForGap, w.gapFirstID = true, u.quoted.ID
			}
			p.Comment(annotate.Append(fmt.Sprintf("ICMP port unreachable (code %d) from the kernel: nothing listens on %v — the server is down; quotes query id=%#04x %s",
				u.code, u.dst, u.quoted.ID, u.quoted.Name()), dnsBlock("kernel", "icmp", u.quoted.ID)))
			lad.Reply(fmt.Sprintf("ICMP port unreachable (id=%#04x)", u.quoted.ID), "ignored: unconnected socket", fmt.Sprintf("(down: pid %d killed)", pid1))
			phase = fmt.Sprintf("pid %d", pid2)
			continue
		}
		d, ok := dnsPacket(p)
		if !ok {
			continue
		}
		n := d.name()
		drawn := n == gapName || len(lad.Rows) < 2
		switch {
		case d.meta.Dst == addr && !d.head.Response():
			w.ports[d.meta.Src.Port()] = true
			w.queries++
			w.idQuestionBytes += 2 + len(d.head.QName) + 4
			if _, ok := order[n]; !ok {
				order[n] = len(order)
			}
			attempts[n]++
			p.Comment(annotate.Append(fmt.Sprintf("query %d (attempt %d): %s", order[n], attempts[n], d.question()), queryBlock(d, order[n], attempts[n])))
			if drawn {
				lad.Send(d.question(), fmt.Sprintf("attempt on port %d", d.meta.Src.Port()), phase)
				lad.When(d.p.Time)
			}
		case d.meta.Src == addr:
			verdict, _ := said.said(d)
			p.Comment(annotate.Append(fmt.Sprintf("answer to query %d %s → %s (%s); client: %s", order[n], d.question(), d.answer(), phase, verdict),
				judged(dnsBlock("server", "answer", d.head.ID).Uint(annotate.Query, uint64(order[n])), verdict).Str(annotate.Note, phase)))
			if drawn {
				lad.Reply(d.question()+" "+d.answer(), "matched", phase)
				lad.When(d.p.Time)
			}
		}
	}
	w.ladder = lad.Rows
	return w
}

// report records the wire's checks, the ladder, metrics and notes.
func (x *restartRun) report(w restartWire) {
	env := x.env
	lad := capturedLadder(env, fmt.Sprintf("across the restart (server %s: pid %d killed, pid %d started), as captured", x.addr, x.pid1, x.pid2), "client", "server")
	lad.Rows = w.ladder
	env.Check("the kernel refused the query sent while the server was down", w.icmpForGap,
		"%d ICMP port-unreachable messages captured; one quotes %s (id=%#04x)", w.icmps, gapName, w.gapFirstID)
	env.Check("one client socket throughout", len(w.ports) == 1, "client ports used: %d", len(w.ports))
	env.Metric("queries_count", float64(len(x.steps)))
	env.Metric("gap_answered_after_restart_ms", float64(x.gapWait.Microseconds())/1000)
	env.Metric("server_restart_ms", float64(x.restartedAt.Sub(x.startedAt).Microseconds())/1000)
	env.Note("the server ran as a separate process (this program started again as the DNS server); the first was killed with SIGKILL, "+
		"the harsher of the two ways to stop it: no handler ran, no goodbye was sent, the kernel closed its socket — a crash. "+
		"A new process (pid %d, not %d) bound the same port: the server kept nothing across the restart, so nothing was lost", x.pid2, x.pid1)
	env.Note("the client's socket is unconnected, so Linux does not report the ICMP error to it: the timeout and the retry with a fresh ID carry the query across")
}
