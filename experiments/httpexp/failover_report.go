package httpexp

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// What http/store-failover reports: each case's two-column ladder (client ↔
// balancer, with the group's events between the steps) and its table of
// every actor as a column, the checks, the figures, the comparison table's
// cells and the "who holds the state" row.

// annotate comments the case's HTTP legs and draws its ladders.
func (c *failoverCase) annotate(env *lab.Env, pkts []*capture.Packet, streams []*capture.Stream) {
	if c.t == nil {
		return
	}
	front := c.t.annotate(env, pkts)
	var legs []backendLeg
	for i, b := range c.backends[:3] {
		legs = append(legs, backendLeg{name: c.lb.Names()[i], addr: b.addr})
	}
	r := readBackendLegs(c.t, streams, front, legs)
	commentBackendPackets(pkts, c.name, legs, r.conns, "")
	env.Check(c.name+": every request's backend leg is in the capture, at the backend that counted it",
		r.matched == r.served && len(r.bad) == 0, "%d of %d requests served by a backend%s", r.matched, r.served, problems(r.bad))
	c.actorTable(env, c.writesByStep(pkts))
}

// writesByStep reads from the capture which server each step's session
// writes went to: the compare-and-sets (EVALSHA or EVAL) a backend sent
// to a server of the group between the step's request and the next one.
func (c *failoverCase) writesByStep(pkts []*capture.Packet) map[int][]string {
	out := map[int][]string{}
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP || m.Dst.Port() != 6379 || len(m.Payload) == 0 {
			continue
		}
		n := c.g.node(m.Dst.Addr())
		if n == nil || groupOf(m.Src.Addr()) == byte(c.g.k) || c.g.isObserver(m.Src.Port()) {
			continue
		}
		if !bytes.Contains(bytes.ToLower(m.Payload[:min(len(m.Payload), 32)]), []byte("eval")) {
			continue
		}
		step := -1
		for i, at := range c.f.sent {
			if !p.Time.Before(at) {
				step = i
			}
		}
		if step >= 0 && !slices.Contains(out[step], n.name) {
			out[step] = append(out[step], n.name)
		}
	}
	return out
}

// actorTable is the case's ladder with every actor as a column: the
// client, the backend that served each request, each server with its
// role, the Sentinels; one row per request (a run of identical refusals
// as one) or event, in time order.
func (c *failoverCase) actorTable(env *lab.Env, writes map[int][]string) {
	g := c.g
	head := []string{"t (ms)", "client", "backend"}
	for _, n := range g.nodes {
		head = append(head, n.name+" ("+n.host.String()+")")
	}
	head = append(head, "Sentinels")
	type row struct {
		at    time.Time
		cells []string
		rep   int // identical refusals folded into this row
	}
	var rows []row
	blank := func(at time.Time) row { return row{at: at, cells: make([]string, len(head))} }
	var prev *played
	for i, p := range c.t.steps {
		refusal := p.Err == nil && p.Rep.Status == http.StatusServiceUnavailable
		if refusal && prev != nil && prev.Label == p.Label && prev.Err == nil && prev.Rep.Status == p.Rep.Status && prev.Rep.Code == p.Rep.Code {
			k := len(rows) - 1
			rows[k].rep++
			base, _, _ := strings.Cut(rows[k].cells[1], " ×")
			rows[k].cells[1] = fmt.Sprintf("%s ×%d (each sent again)", base, rows[k].rep)
			prev = p
			continue
		}
		prev = p
		r := blank(c.f.sent[i])
		r.rep = 1
		r.cells[1] = fmt.Sprintf("%d. %s %s → %s", i+1, p.Method, p.Label, replyWord(p))
		r.cells[2] = p.Backend
		for k, n := range g.nodes {
			if slices.Contains(writes[i], n.name) {
				r.cells[3+k] = "◀ compare-and-set (captured)"
			}
		}
		rows = append(rows, r)
	}
	for _, ev := range g.eventList() {
		if !ladderEvent(ev.Channel) {
			continue
		}
		r := blank(ev.At)
		if ev.Channel == "lab" {
			r.cells[1] = "(lab) " + ev.Payload
		} else {
			r.cells[len(head)-1] = ev.Channel + " " + trimString(ev.Payload, 60)
		}
		for k, n := range g.nodes {
			before, after := g.roleAt(n.host, ev.At.Add(-time.Nanosecond)), g.roleAt(n.host, ev.At)
			if before != after {
				r.cells[3+k] = "→ " + after
			}
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].at.Before(rows[j].at) })
	out := [][]string{head}
	for _, r := range rows {
		r.cells[0] = fmt.Sprint(r.at.Sub(g.started).Milliseconds())
		out = append(out, r.cells)
	}
	env.Table(c.name+": client, backends, servers and Sentinels as columns (which server each request's compare-and-set reached, from the capture; roles as the Sentinels announced them and the lab's actions made them)", out)
}

// replyWord is a step's reply in a few words.
func replyWord(p *played) string {
	if p.Err != nil {
		return "no reply"
	}
	if p.Rep.Status >= 300 {
		return fmt.Sprintf("%d %s", p.Rep.Status, p.Rep.Code)
	}
	if p.Method == "GET" {
		return fmt.Sprintf("%d", p.Rep.Status)
	}
	return fmt.Sprintf("%d result=%g", p.Rep.Status, p.Rep.Result)
}

// outage is the time without a writable store, as the client saw it:
// from the kill (or from the moment the guard refused) to the first
// operation answered 200 after it.
func (c *failoverCase) outage() time.Duration {
	switch {
	case c.firstOK.IsZero():
		return 0
	case !c.killAt.IsZero():
		return c.firstOK.Sub(c.killAt)
	case c.refusedInFault > 0:
		return c.firstOK.Sub(c.faultAt.Add(c.guardWait))
	}
	return 0
}

// refused is how many requests were answered 503 (and sent again).
func (c *failoverCase) refused() (n int, clean bool) {
	clean = true
	for _, p := range c.f.refused {
		n++
		clean = clean && p.Err == nil && p.Rep.Status == http.StatusServiceUnavailable && p.Rep.Code == "store"
	}
	return n, clean
}

// check records the case's verdicts.
func (c *failoverCase) check(env *lab.Env) {
	if c.f == nil {
		return
	}
	name := c.name
	resumed := c.flowErr == nil && !c.firstOK.IsZero()
	env.Check(name+": the workflow resumed on the new primary", resumed,
		"first operation answered 200 after the fault at %s; promoted: %s; error: %s", stamp(c.firstOK, c.g.started), orNone(c.newPrimary), lab.ErrText(c.flowErr))
	promoted := !c.switchAt.IsZero() && c.newPrimary != "" && c.newPrimary != c.old.name
	events := ""
	if !promoted {
		events = "; the Sentinels' events: " + orNone(c.g.eventDigest())
	}
	env.Check(name+": Sentinel promoted a replica (+switch-master)", promoted,
		"+switch-master at %s: %s → %s%s", stamp(c.switchAt, c.g.started), c.old.name, orNone(c.newPrimary), events)
	n, clean := c.refused()
	env.Check(name+": every refused request was a clean 503 and was sent again", clean && (n == 0 || resumed),
		"%d requests answered 503 \"store\" (nothing acknowledged), each sent again until answered 200", n)
	env.Check(name+": the final session holds every committed operation but the lost ones, nothing twice, nothing uncommitted", c.v.ok && c.flowErr == nil,
		"%d operations committed (200); final history %d entries; lost: %s; never committed or twice: %s",
		len(c.f.commits), len(c.v.history), names(c.v.lost), orNone(strings.Join(c.v.extra, ", ")))
	lost := len(c.v.lost)
	switch {
	case !c.partition && c.confirm == 0:
		env.Check(name+": the killed primary had died of SIGKILL", c.killed, "%s, wait status SIGKILL: %t", c.old.name, c.killed)
		env.Check(name+": the writes acknowledged while the replication link was held are lost with the primary",
			c.acked >= 1 && lost == c.acked, "%d acknowledged (200) while held, %d of the committed operations lost: %s", c.acked, lost, names(c.v.lost))
	case !c.partition:
		env.Check(name+": the killed primary had died of SIGKILL", c.killed, "%s, wait status SIGKILL: %t", c.old.name, c.killed)
		env.Check(name+": a write no replica confirmed is refused, not acknowledged", c.refusedInFault >= 1 && c.acked == 0,
			"while the link was held: %d answered 503 after WAIT's %s, %d acknowledged", c.refusedInFault, failoverTimings.Confirm, c.acked)
		env.Check(name+": no acknowledged write is lost", lost == 0 && c.v.ok, "%d of %d committed operations lost", lost, len(c.f.commits))
		env.Check(name+": a backend killed and restarted loses nothing", c.restarted != "" && lost == 0,
			"backend %s kill -9 and restarted mid-workflow; committed operations lost: %d", orNone(c.restarted), lost)
	case !c.guard:
		onOld, stillOnOld := 0, 0
		for _, l := range c.v.lost {
			onOld += b2i(holdsOp(c.oldHeld, l.op))
			stillOnOld += b2i(holdsOp(c.oldAfter, l.op))
		}
		env.Check(name+": the cut-off primary acknowledged a write", c.acked == 1 && holds(c.oldHeld, c.faultOps),
			"%d acknowledged while cut off from its replicas; %s's copy of the session has it: %t", c.acked, c.old.name, holds(c.oldHeld, c.faultOps))
		env.Check(name+": the old primary returns as a replica of the new one and the writes it accepted cut off are discarded",
			!c.convertAt.IsZero() && lost >= 1 && onOld == lost && stillOnOld == 0,
			"+convert-to-slave at %s; lost from the final session: %s; of them on %s before it rejoined: %d, after it rejoined %s: %d",
			stamp(c.convertAt, c.g.started), names(c.v.lost), c.old.name, onOld, orNone(c.newPrimary), stillOnOld)
	default:
		env.Check(name+": the cut-off primary refuses the write (min-replicas-to-write)", c.refusedInFault == 1 && c.acked == 0,
			"%s counted no good replica %s after the cut; the write was answered 503, %d acknowledged", c.old.name, c.guardWait.Round(time.Millisecond), c.acked)
		env.Check(name+": the old primary returns as a replica and nothing acknowledged is lost", !c.convertAt.IsZero() && lost == 0,
			"+convert-to-slave at %s; %d of %d committed operations lost", stamp(c.convertAt, c.g.started), lost, len(c.f.commits))
	}
	env.Metric(metricName(c.name, "acknowledged_lost_count"), float64(lost))
	env.Metric(metricName(c.name, "refused_503_count"), float64(n))
	env.Metric(metricName(c.name, "committed_count"), float64(len(c.f.commits)))
	if d := c.outage(); d > 0 {
		env.Metric(metricName(c.name, "unwritable_ms"), float64(d.Milliseconds()))
	}
	if !c.switchAt.IsZero() {
		from := c.killAt
		if from.IsZero() {
			from = c.faultAt
		}
		env.Metric(metricName(c.name, "fault_to_switch_master_ms"), float64(c.switchAt.Sub(from).Milliseconds()))
	}
	if m := median(c.f.lat); m > 0 {
		env.Metric(metricName(c.name, "median_write_latency_ms"), float64(m.Microseconds())/1000)
	}
}

// holds reports whether a stored session has any of the operations.
func holds(s storedSession, ops []*played) bool {
	for _, e := range s.History {
		for _, p := range ops {
			if body, ok := p.Body.(httpstate.CalcRequest); ok && body.B != nil && e.Op == body.Op && e.B == *body.B {
				return true
			}
		}
	}
	return false
}

// holdsOp reports whether a stored session has the operation.
func holdsOp(s storedSession, op flowOp) bool {
	for _, e := range s.History {
		if e.Op == op.op && e.B == op.b {
			return true
		}
	}
	return false
}

func metricName(c, m string) string {
	return strings.NewReplacer(" ", "_", ",", "", "-", "_", ":", "").Replace(c) + "." + m
}

func stamp(t, base time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("+%d ms", t.Sub(base).Milliseconds())
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// failoverTables: the cases side by side.
func failoverTables(env *lab.Env, cases []*failoverCase) {
	rows := [][]string{{"case", "replication", "fault", "acknowledged in the fault", "503 and sent again", "without a writable store", "committed", "acknowledged but lost", "median write latency (group whole)"}}
	for _, c := range cases {
		if c.f == nil {
			continue
		}
		n, _ := c.refused()
		fault := "replication link held, primary kill -9"
		if c.partition {
			fault = "primary cut off (replicas, then Sentinels), healed"
		}
		out := "—"
		if d := c.outage(); d > 0 {
			out = d.Round(time.Millisecond).String()
		}
		rows = append(rows, []string{c.name, c.replication(), fault, fmt.Sprint(c.acked), fmt.Sprint(n), out,
			fmt.Sprint(len(c.f.commits)), fmt.Sprint(len(c.v.lost)), median(c.f.lat).Round(10 * time.Microsecond).String()})
	}
	env.Table("What each replication choice lost, measured", rows)
	a, w := caseNamed(cases, false, 0), caseNamed(cases, false, 1)
	if a != nil && w != nil && median(a.f.lat) > 0 {
		env.Metric("wait_latency_cost_ms", float64((median(w.f.lat)-median(a.f.lat)).Microseconds())/1000)
	}
}

// caseNamed finds the kill case with a replication choice.
func caseNamed(cases []*failoverCase, partition bool, confirm int) *failoverCase {
	for _, c := range cases {
		if c.partition == partition && c.confirm == confirm && c.f != nil {
			return c
		}
	}
	return nil
}

// failoverFigures are this run's figures, kept in the run's state for the
// comparison table and bench.
type failoverFigures struct {
	asyncLost, asyncAcked, waitLost int
	asyncLat, waitLat               time.Duration
	splitLost, guardLost            int
	measured                        bool
}

type failoverKey struct{}

// figuresOf are the figures of the two kill cases and the split-brain
// cases among cases (ok false when one is missing).
func figuresOf(cases []*failoverCase) (fig failoverFigures, ok bool) {
	a, w := caseNamed(cases, false, 0), caseNamed(cases, false, 1)
	if a == nil || w == nil {
		return fig, false
	}
	fig = failoverFigures{asyncLost: len(a.v.lost), asyncAcked: a.acked, waitLost: len(w.v.lost),
		asyncLat: median(a.f.lat), waitLat: median(w.f.lat), splitLost: -1, guardLost: -1, measured: true}
	for _, c := range cases {
		switch {
		case c.partition && c.f != nil && c.guard:
			fig.guardLost = len(c.v.lost)
		case c.partition && c.f != nil:
			fig.splitLost = len(c.v.lost)
		}
	}
	return fig, true
}

// recordFailover fills the comparison table's cells and the "who holds
// the state" row from the cases.
func recordFailover(env *lab.Env, cases []*failoverCase) {
	fig, ok := figuresOf(cases)
	w := caseNamed(cases, false, 1)
	if !ok {
		return
	}
	env.RunState().Store(failoverKey{}, fig)
	recordStoreFailure(env, fig.cell())
	var kk []string
	for _, n := range w.g.nodes {
		if v, ok := w.keys[n.name]; ok {
			kk = append(kk, fmt.Sprintf("%s %d", n.name, v))
		}
	}
	env.Holding(lab.Holding{
		ServerKeeps:   fmt.Sprintf("nothing: 3 backends behind round-robin; the Redis group keeps every session, replicated (session keys per server at the end: %s)", strings.Join(kk, ", ")),
		ClientCarries: fmt.Sprintf("a %d-byte session cookie", len(httpstate.SessionCookie)+1+len(w.f.token)),
		RestartLoses: fmt.Sprintf("backend b2 kill -9 and restart: %d operations; primary kill -9: %d acknowledged writes asynchronously, %d with WAIT 1; split brain: %d discarded, %d with min-replicas-to-write",
			len(w.v.lost), fig.asyncLost, fig.waitLost, fig.splitLost, fig.guardLost),
		CarriedBytes: len(httpstate.SessionCookie) + 1 + len(w.f.token),
		CarriedPer:   "per request (the Cookie header's value)",
	})
}

// recordStoreFailure fills the "store failure" row.
func recordStoreFailure(env *lab.Env, storeBacked string) {
	recordEvidence(env, rowStoreFailure, httpstate.Stateless, "no store to fail: nothing to lose")
	recordEvidence(env, rowStoreFailure, httpstate.Stateful, "no store: the process is the store (see crash recovery)")
	recordEvidence(env, rowStoreFailure, httpstate.StoreBacked, "%s", storeBacked)
}

// cell words the figures for the comparison table.
func (f failoverFigures) cell() string {
	s := fmt.Sprintf("Redis + Sentinel, primary kill -9 with the replicas' link held: async lost %d of %d acknowledged writes; WAIT 1 lost %d (median write %s vs %s async)",
		f.asyncLost, f.asyncAcked, f.waitLost, f.waitLat.Round(10*time.Microsecond), f.asyncLat.Round(10*time.Microsecond))
	if f.splitLost >= 0 && f.guardLost >= 0 {
		s += fmt.Sprintf("; split brain: %d discarded, %d with min-replicas-to-write", f.splitLost, f.guardLost)
	}
	return s
}
