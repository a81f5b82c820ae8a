package httpexp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// http/store-failover: the state's new home fails too. Three stateless
// backends keep their sessions in a Redis group (a primary, two replicas,
// three Sentinels) that they reach through go-redis's Sentinel-aware
// failover client; the primary is killed, or cut off, in the middle of a
// client's workflow, and what each replication choice loses is counted
// against the final session.

func runStoreFailover(env *lab.Env) error {
	rig := setUp(env)
	httpstate.QuietRedisLog()
	if _, err := exec.LookPath("redis-server"); err != nil {
		env.Note("redis-server is not installed: http/store-failover did not run (apt-get install redis-server)")
		return nil
	}
	ports := &portSet{set: map[uint16]bool{6379: true, 26379: true}}
	cp, err := env.Capture(capture.Options{MaxDrain: captureDrain, Keep: func(p *capture.Packet) bool {
		return (testCaptureKeep == nil || testCaptureKeep(p)) && ports.keep(p)
	}})
	if err != nil {
		return err
	}
	started("capture", 0)
	cases := failoverCases()
	want := newWanted("the balancers' request counters (client legs) and their per-backend counters (backend legs)")
	// The kill cases side by side, then the split-brain cases: each group
	// is a world of its own (its own addresses, backends and balancer).
	for _, batch := range [][]*failoverCase{cases[:2], cases[2:]} {
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, c := range batch {
			wg.Go(func() {
				if err := c.run(env, rig, ports); err != nil {
					errs[i] = fmt.Errorf("%s: %w", c.name, err)
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	for _, c := range cases {
		c.count(want)
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	streams := capture.TCPStreams(pkts)
	for _, c := range cases {
		c.annotate(env, pkts, streams)
	}
	commentRedis(pkts, cases)
	for _, c := range cases {
		c.check(env)
	}
	failoverTables(env, cases)
	recordFailover(env, cases)
	return nil
}

// portSet is the capture's filter: the Redis and Sentinel ports, and the
// balancers' and backends' ports as they start.
type portSet struct {
	mu  sync.Mutex
	set map[uint16]bool
}

func (s *portSet) add(ports ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range ports {
		s.set[p] = true
	}
}

func (s *portSet) keep(p *capture.Packet) bool {
	m, ok := p.Decode()
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[m.Src.Port()] || s.set[m.Dst.Port()]
}

// rigMu serialises the cases' use of the rig, which is not safe for
// concurrent use.
var rigMu sync.Mutex

func lockedChild(rig *rig, spec httpstate.ServeSpec) (*child, error) {
	rigMu.Lock()
	defer rigMu.Unlock()
	return rig.child(spec)
}

// failoverCase is one group and what is done to it.
type failoverCase struct {
	name      string
	partition bool // cut the primary off (split brain) instead of killing it
	confirm   int  // replicas each write waits for (WAIT); 0: asynchronous
	guard     bool // min-replicas-to-write 1 on every server

	g        *redisGroup
	lb       *httpstate.Balancer
	lbRun    *httpstate.Running
	backends []*child
	t        *transcript
	f        *flow
	old      *redisNode // the first primary

	// measured
	faultAt, killAt, switchAt, firstOK, convertAt time.Time
	killed                                        bool
	newPrimary                                    string
	faultOps                                      []*played // sent while the link was held or the primary cut off
	acked, refusedInFault                         int
	oldHeld, oldAfter                             storedSession // the old primary's copy while cut off, and once it rejoined
	v                                             verdict
	flowErr                                       error
	guardWait                                     time.Duration // until the primary counted no good replica
	restarted                                     string        // the backend killed and restarted, if any
	restartLost                                   int
	keys                                          map[string]int // session keys per server at the end
	dropped                                       int64
}

// failoverCases are the four groups: a primary killed under asynchronous
// and under replica-confirmed writes; a primary cut off, without and with
// min-replicas-to-write.
func failoverCases() []*failoverCase {
	return []*failoverCase{
		{name: "async, primary killed"},
		{name: "WAIT 1, primary killed", confirm: 1, guard: true},
		{name: "split brain, async", partition: true},
		{name: "split brain, min-replicas-to-write 1", partition: true, guard: true},
	}
}

// replication words the case's replication choice.
func (c *failoverCase) replication() string {
	switch {
	case c.confirm > 0:
		return fmt.Sprintf("replica-confirmed (WAIT %d, %s; min-replicas-to-write 1)", c.confirm, failoverTimings.Confirm)
	case c.guard:
		return "asynchronous, min-replicas-to-write 1"
	}
	return "asynchronous"
}

// run starts the case's group, backends and balancer, and plays it.
func (c *failoverCase) run(env *lab.Env, rig *rig, ports *portSet) error {
	t0 := time.Now()
	g, err := startGroup(env, c.name, failoverTimings)
	if err != nil {
		return err
	}
	env.Logf("%s: group ready in %s", c.name, time.Since(t0).Round(time.Millisecond))
	defer func() {
		env.Logf("%s: done in %s; events: %s", c.name, time.Since(t0).Round(time.Millisecond), g.eventDigest())
	}()
	c.g, c.old = g, g.nodes[0]
	defer g.close() // quiet: the next group's capture is its own
	if c.guard {
		if err := g.configAll(env.Ctx, "min-replicas-max-lag", "1"); err != nil {
			return err
		}
		if err := g.configAll(env.Ctx, "min-replicas-to-write", "1"); err != nil {
			return err
		}
	}
	var urls []string
	for range 3 {
		ch, err := lockedChild(rig, httpstate.ServeSpec{Mode: httpstate.StoreBacked, Addr: "127.0.0.1:0", Store: g.url(c.confirm)})
		if err != nil {
			return err
		}
		ports.add(ch.addr.Port())
		c.backends = append(c.backends, ch)
		urls = append(urls, ch.url())
	}
	defer func() {
		for _, b := range c.backends {
			b.stop()
		}
	}()
	if c.lb, err = httpstate.NewBalancer(httpstate.RoundRobin, urls...); err != nil {
		return err
	}
	rigMu.Lock()
	c.lbRun, err = rig.listen(c.lb)
	rigMu.Unlock()
	if err != nil {
		return err
	}
	ports.add(c.lbRun.Addr.Port())
	c.t = &transcript{name: c.name, addr: c.lbRun.Addr, says: "as the replies and the balancer's counters showed"}
	c.f = newFlow(c.t, c.lbRun.URL(), c.lb, g)
	defer c.f.cl.Close()
	if err := c.f.start(env.Ctx); err != nil {
		return err
	}
	if c.partition {
		c.flowErr = c.splitBrain(env, rig)
	} else {
		c.flowErr = c.killPrimary(env, rig)
	}
	if errors.Is(c.flowErr, context.Canceled) || env.Ctx.Err() != nil {
		return env.Ctx.Err()
	}
	if c.flowErr == nil {
		c.v, c.flowErr = c.f.verify(env.Ctx)
	}
	c.keys = g.sessionKeys(env.Ctx)
	c.placeEvents()
	return nil
}

// killPrimary: the workflow, the replicas' link held, the primary killed
// with SIGKILL, Sentinel's failover, the workflow resumed.
func (c *failoverCase) killPrimary(env *lab.Env, rig *rig) error {
	ctx, g, f := env.Ctx, c.g, c.f
	if err := f.run(ctx, 3); err != nil {
		return err
	}
	if c.confirm > 0 {
		if err := c.restartBackend(env, rig); err != nil {
			return err
		}
	}
	if err := f.run(ctx, 3); err != nil {
		return err
	}
	if err := g.stillFirst(ctx); err != nil {
		return err
	}
	// Hold the replication link: nothing more from the primary reaches
	// the replicas.
	fault, err := dropBetween("the replication link held", from(c.old.host, g.nodes[1].host, g.nodes[2].host))
	if err != nil {
		return err
	}
	env.Cleanup(func() { fault.heal() })
	c.faultAt = g.act("replication link held: %s", fault.describe(g.name))
	f.phase, f.whole = "replication link held", false
	for range 2 {
		n := len(f.t.steps)
		st, err := f.once(ctx)
		if err != nil {
			return err
		}
		c.faultOps = append(c.faultOps, f.t.steps[n])
		if st == http.StatusOK {
			c.acked++
			continue
		}
		c.refusedInFault++
		break
	}
	mark := g.mark()
	c.killAt, c.killed = g.kill(c.old)
	f.phase = "after the kill"
	if c.firstOK, err = f.until(ctx); err != nil {
		return err
	}
	ev, _, ok := g.waitEvent(ctx, mark, "+switch-master", 30*time.Second)
	if !ok {
		return fmt.Errorf("httpexp: no +switch-master within 30s of killing %s", c.old.name)
	}
	c.switchAt, c.newPrimary = ev.At, c.promoted(ev)
	// The dead primary's queued replication stream must never arrive:
	// the link is healed only once the replicas have left it.
	g.waitReconfigured(ctx, c.old.name, c.newPrimary, 30*time.Second)
	c.dropped = fault.dropped()
	if err := fault.heal(); err != nil {
		return err
	}
	g.act("replication link healed (the old primary is dead)")
	f.phase = "after failover"
	return f.run(ctx, 3)
}

// promoted names the server a +switch-master made primary.
func (c *failoverCase) promoted(ev groupEvent) string {
	f := strings.Fields(ev.Payload)
	if len(f) != 5 {
		return ""
	}
	h, _ := netip.ParseAddr(f[3])
	return c.g.name(h)
}

// restartBackend kills backend b2 with SIGKILL between two requests and
// starts it again on its address: a stateless backend loses nothing.
func (c *failoverCase) restartBackend(env *lab.Env, rig *rig) error {
	old := c.backends[1]
	if _, err := old.kill(); err != nil {
		return err
	}
	spec := old.spec
	spec.Addr = old.addr.String()
	nb, err := lockedChild(rig, spec)
	if err != nil {
		return fmt.Errorf("httpexp: restarting backend b2 on %s: %w", old.addr, err)
	}
	c.backends = append(c.backends, nb)
	c.restarted = "b2"
	c.t.event("kill -9 backend b2 (pid %d), restarted as pid %d on %s", old.pid(), nb.pid(), nb.addr)
	return nil
}

// splitBrain: the primary cut off from its replicas, a write sent to it,
// then cut off from the Sentinels too; they promote a replica, the
// workflow resumes there; the partition heals and the old primary returns
// as a replica of the new one.
func (c *failoverCase) splitBrain(env *lab.Env, rig *rig) error {
	ctx, g, f := env.Ctx, c.g, c.f
	if err := f.run(ctx, 3); err != nil {
		return err
	}
	if err := g.stillFirst(ctx); err != nil {
		return err
	}
	reps, sents := []netip.Addr{g.nodes[1].host, g.nodes[2].host}, g.sentHosts
	cut1, err := dropBetween("the primary cut off from its replicas", both(c.old.host, reps...))
	if err != nil {
		return err
	}
	env.Cleanup(func() { cut1.heal() })
	c.faultAt = g.act("partition: %s", cut1.describe(g.name))
	g.setRole(c.old.host, c.faultAt, "primary, cut off from its replicas")
	f.phase, f.whole = "primary cut off", false
	if c.guard {
		// The guard refuses writes once no replica has acknowledged within
		// min-replicas-max-lag (1 s): wait for the primary to count none.
		ok := poll(ctx, 10*time.Second, func() bool { return goodReplicas(ctx, c.old) == 0 })
		c.guardWait = time.Since(c.faultAt)
		if !ok {
			return fmt.Errorf("httpexp: %s still counts a good replica %s after the partition", c.old.name, c.guardWait.Round(time.Millisecond))
		}
		g.act("%s counts 0 good replicas (min_slaves_good_slaves:0) after %s", c.old.name, c.guardWait.Round(time.Millisecond))
	}
	n := len(f.t.steps)
	st, err := f.once(ctx)
	if err != nil {
		return err
	}
	c.faultOps = append(c.faultOps, f.t.steps[n])
	if st == http.StatusOK {
		c.acked++
	} else {
		c.refusedInFault++
	}
	cut2, err := dropBetween("the primary cut off from the Sentinels", both(c.old.host, sents...))
	if err != nil {
		return err
	}
	env.Cleanup(func() { cut2.heal() })
	mark := g.mark()
	at := g.act("partition: %s", cut2.describe(g.name))
	g.setRole(c.old.host, at, "primary, cut off from its replicas and the Sentinels")
	ev, _, ok := g.waitEvent(ctx, mark, "+switch-master", 30*time.Second)
	if !ok {
		return fmt.Errorf("httpexp: no +switch-master within 30s of cutting %s off", c.old.name)
	}
	c.switchAt, c.newPrimary = ev.At, c.promoted(ev)
	// The client goes on once every Sentinel has announced the new
	// primary, so each backend's failover client (subscribed to one of
	// them) has heard it; a backend that has not yet still writes to the
	// old primary, which is reachable from it: those writes are counted
	// below like the first.
	g.waitHeard(ctx, ev, len(g.sentinels), 10*time.Second)
	f.phase = "after failover"
	if c.firstOK, err = f.until(ctx); err != nil {
		return err
	}
	if err := f.run(ctx, 2); err != nil {
		return err
	}
	// What the old primary holds just before it rejoins: everything it
	// accepted while cut off.
	if c.oldHeld, err = g.session(ctx, c.old, f.token); err != nil {
		return err
	}
	g.waitReconfigured(ctx, c.old.name, c.newPrimary, 30*time.Second)
	c.dropped = cut1.dropped() + cut2.dropped()
	if err := errors.Join(cut1.heal(), cut2.heal()); err != nil {
		return err
	}
	g.act("partition healed: %s is reachable again", c.old.name)
	// The Sentinels make the returning old primary a replica of the new
	// one (after it has been back, and reported itself a primary, for 8 s:
	// Sentinel's own wait); it then copies the new primary's data.
	ev, _, ok = g.waitEvent(ctx, mark, "+convert-to-slave", 40*time.Second, c.old.host.String())
	if !ok {
		return fmt.Errorf("httpexp: the Sentinels did not convert %s into a replica within 40s of the healing", c.old.name)
	}
	c.convertAt = ev.At
	if !g.waitLinkUp(ctx, c.old, 15*time.Second) {
		return fmt.Errorf("httpexp: %s's link to the new primary is not up within 15s", c.old.name)
	}
	g.act("%s replicates from %s, its link up", c.old.name, c.newPrimary)
	c.oldAfter, err = g.session(ctx, c.old, f.token)
	return err
}

// count adds the case's exchanges, counted at the balancer and per backend.
func (c *failoverCase) count(w *wanted) {
	if c.lbRun == nil {
		return
	}
	w.add(c.name+" balancer", c.lbRun.Addr, c.lbRun.Answered())
	served := c.lb.Served()
	for i, b := range c.backends[:3] {
		w.add(c.name+" backend "+c.lb.Names()[i], b.addr, int(served[c.lb.Names()[i]]))
	}
}

// placeEvents puts the group's events into the transcript's ladder,
// before the first step sent after each.
func (c *failoverCase) placeEvents() {
	if c.t.events == nil {
		c.t.events = map[int]string{}
	}
	for _, ev := range c.g.eventList() {
		if !ladderEvent(ev.Channel) {
			continue
		}
		i := len(c.f.sent)
		for k, at := range c.f.sent {
			if at.After(ev.At) {
				i = k
				break
			}
		}
		text := ev.Payload
		if ev.Channel != "lab" {
			text = "Sentinel: " + ev.Channel + " " + ev.Payload
		}
		if old := c.t.events[i]; old != "" {
			text = old + " ** / ** " + text
		}
		c.t.events[i] = text
	}
}

// ladderEvent: the Sentinel events the ladder shows.
func ladderEvent(ch string) bool {
	switch ch {
	case "lab", "+sdown", "+odown", "+promoted-slave", "+switch-master", "+convert-to-slave", "+failover-end":
		return true
	}
	return false
}
