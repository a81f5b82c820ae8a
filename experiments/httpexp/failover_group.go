package httpexp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// The Redis group of http/store-failover: one primary, two replicas and
// three Sentinels, every one a real redis-server process on a loopback
// address of its own (127.0.K.2-4 port 6379 for the servers, 127.0.K.5-7
// port 26379 for the Sentinels), so that the capture names each node by its
// address and Wireshark dissects the servers' traffic as RESP.

// errGroup is wrapped by errors starting or watching the group.
var errGroup = errors.New("httpexp: redis group")

// failoverTiming is the group's Sentinel timing: short, so a failover takes
// seconds. Sentinel marks the primary down after DownAfter without a valid
// reply to its PING, and gives a failover FailoverTimeout to finish.
// Confirm is how long a replica-confirmed write waits for a replica (WAIT).
type failoverTiming struct {
	DownAfter, FailoverTimeout, Confirm time.Duration
}

// failoverTimings are the timings http/store-failover runs with; tests
// may change them. DownAfter is 3 s, not less: on 2 cores busy with CPU
// hogs and two groups' processes, a server was once seen to miss a
// Sentinel's PING for over a second, and a failover the lab did not cause
// spoils the case.
var failoverTimings = failoverTiming{DownAfter: 3 * time.Second, FailoverTimeout: 3 * time.Second, Confirm: time.Second}

// serverConfig is every server's configuration beyond the defaults: a
// replica's first copy starts at once (Redis waits 5 s by default for more
// replicas to share a diskless transfer).
var serverConfig = []string{"repl-diskless-sync-delay 0"}

// groupMaster is the name the Sentinels know the primary by.
const groupMaster = "statelab"

// groupNet hands out the 127.0.K.0/24 of each group started by this
// process, so that a group never finds the sockets of the one before it.
var groupNet atomic.Uint32

// redisNode is one of the group's servers.
type redisNode struct {
	name string
	host netip.Addr
	proc *httpstate.RedisProc
	cli  *redis.Client // the lab's observer connection to it
}

func (n *redisNode) addr() string { return netip.AddrPortFrom(n.host, 6379).String() }

// groupEvent is something a Sentinel published (+sdown, +switch-master…)
// or the experiment did (a kill, a fault), when it was seen.
type groupEvent struct {
	At      time.Time
	Channel string // the Sentinel's channel, or "lab" for the experiment's own actions
	Payload string
}

// roleChange is a node's role from a moment on.
type roleChange struct {
	at   time.Time
	role string
}

// redisGroup is one running group with its observer.
type redisGroup struct {
	label     string
	k         int
	dir       string
	timing    failoverTiming
	nodes     []*redisNode // redis-1 starts as primary
	sentinels []*httpstate.RedisProc
	sentHosts []netip.Addr
	started   time.Time

	mu      sync.Mutex
	events  []groupEvent
	changed chan struct{} // closed and replaced when an event arrives
	roles   map[netip.Addr][]roleChange
	ps      []*redis.PubSub
	obs     []*redis.Client
	closed  bool
	// heard counts the Sentinels that published each event (channel and
	// payload).
	heard    map[string]int
	closeAll func() // a group of StartSentinelGroup: its cleanups
	// obsPorts are the local ports of the lab's own connections (the
	// observer's), so the capture's comments tell them from the backends'.
	obsPorts map[uint16]bool
}

// opts are the observer's connection options to addr: no resend, and
// every connection's local port noted.
func (g *redisGroup) opts(addr string) *redis.Options {
	return &redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			if err == nil {
				if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
					g.mu.Lock()
					g.obsPorts[uint16(ta.Port)] = true
					g.mu.Unlock()
				}
			}
			return c, err
		}}
}

// isObserver reports whether a local port was the observer's.
func (g *redisGroup) isObserver(port uint16) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.obsPorts[port]
}

// host is the group's address 127.0.K.i.
func (g *redisGroup) host(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 0, byte(g.k), byte(i)})
}

// startGroup starts the group: the primary, the replicas (replicating from
// it and announcing their own addresses), then the Sentinels, and returns
// once every Sentinel knows both replicas and the two other Sentinels. All
// of it stops when the experiment ends.
func startGroup(env *lab.Env, label string, timing failoverTiming) (*redisGroup, error) {
	return startGroupWith(env.Ctx, env.Cleanup, label, timing)
}

// SentinelGroup is a Redis group of one primary, two replicas and three
// Sentinels on loopback addresses of its own, as http/store-failover runs
// it (for `statelab bench http`).
type SentinelGroup struct{ g *redisGroup }

// StartSentinelGroup starts a group; Close stops it.
func StartSentinelGroup(ctx context.Context) (*SentinelGroup, error) {
	httpstate.QuietRedisLog()
	var cleanups []func()
	g, err := startGroupWith(ctx, func(f func()) { cleanups = append(cleanups, f) }, "bench", failoverTimings)
	sg := &SentinelGroup{g: g}
	closeAll := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	g.closeAll = closeAll
	return sg, nil
}

// URL is the group's redis-sentinel store URL; wait > 0 asks for writes
// confirmed by that many replicas.
func (s *SentinelGroup) URL(wait int) string { return s.g.url(wait) }

// Close stops the group's processes.
func (s *SentinelGroup) Close() { s.g.closeAll() }

// startGroupWith is startGroup for a context and a cleanup registry of the
// caller's.
func startGroupWith(ctx context.Context, cleanup func(func()), label string, timing failoverTiming) (*redisGroup, error) {
	dir, err := os.MkdirTemp("", "statelab-failover-")
	if err != nil {
		return nil, err
	}
	cleanup(func() { os.RemoveAll(dir) })
	g := &redisGroup{label: label, k: 20 + int(groupNet.Add(1)%200), dir: dir, timing: timing,
		changed: make(chan struct{}), roles: map[netip.Addr][]roleChange{}, started: time.Now(), obsPorts: map[uint16]bool{}, heard: map[string]int{}}
	cleanup(g.close)
	for i := range 3 {
		spec := httpstate.RedisProcSpec{Host: g.host(2 + i).String(), Port: 6379, Dir: dir, Config: serverConfig}
		role := "primary"
		if i > 0 {
			spec.Config = append(serverConfig[:len(serverConfig):len(serverConfig)], "replicaof "+g.host(2).String()+" 6379", "replica-announce-ip "+spec.Host, "replica-announce-port 6379")
			role = "replica"
		}
		p, err := httpstate.StartRedisProc(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", errGroup, label, err)
		}
		n := &redisNode{name: fmt.Sprintf("redis-%d", i+1), host: g.host(2 + i), proc: p}
		n.cli = redis.NewClient(g.opts(n.addr()))
		g.nodes = append(g.nodes, n)
		g.setRole(n.host, g.started, role)
		startedLocked("redis-server", p.PID())
	}
	if err := g.waitReplicas(ctx, g.nodes[0], 2); err != nil {
		return nil, err
	}
	for i := range 3 {
		h := g.host(5 + i)
		spec := httpstate.RedisProcSpec{Host: h.String(), Port: 26379, Dir: dir, Sentinel: true, Config: []string{
			"sentinel resolve-hostnames no",
			"sentinel announce-ip " + h.String(), "sentinel announce-port 26379",
			fmt.Sprintf("sentinel monitor %s %s 6379 2", groupMaster, g.host(2)),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", groupMaster, timing.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", groupMaster, timing.FailoverTimeout.Milliseconds()),
		}}
		p, err := httpstate.StartRedisProc(ctx, spec)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", errGroup, label, err)
		}
		g.sentinels, g.sentHosts = append(g.sentinels, p), append(g.sentHosts, h)
		g.setRole(h, g.started, "Sentinel")
		startedLocked("redis-sentinel", p.PID())
		g.shortenPeriods(ctx, p.Addr)
	}
	if err := g.waitSentinels(ctx); err != nil {
		return nil, err
	}
	// The observer hears every Sentinel's events; an event two Sentinels
	// publish alike is recorded once, when first heard.
	for _, s := range g.sentinels {
		c := redis.NewClient(g.opts(s.Addr))
		ps := c.PSubscribe(ctx, "*")
		g.obs, g.ps = append(g.obs, c), append(g.ps, ps)
		if _, err := ps.Receive(ctx); err != nil {
			return nil, fmt.Errorf("%w %s: subscribing to %s's events: %w", errGroup, label, s.Addr, err)
		}
		go g.listen(ps)
	}
	return g, nil
}

// url is the backends' store URL; confirm > 0 asks for replica-confirmed
// writes.
func (g *redisGroup) url(confirm int) string {
	var s []string
	for _, h := range g.sentHosts {
		s = append(s, h.String()+":26379")
	}
	u := "redis-sentinel://" + strings.Join(s, ",") + "/" + groupMaster
	if confirm > 0 {
		u += fmt.Sprintf("?wait=%d&wait_timeout=%s", confirm, g.timing.Confirm)
	}
	return u
}

// poll calls ok every 50 ms until it reports true, for at most d.
func poll(ctx context.Context, d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for range int(d/(50*time.Millisecond)) + 1 {
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return ok()
}

// info reads one INFO section of a node as fields.
func info(ctx context.Context, c *redis.Client, section string) map[string]string {
	s, err := c.Info(ctx, section).Result()
	out := map[string]string{}
	if err != nil {
		return out
	}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			out[k] = v
		}
	}
	return out
}

// sentinelPeriods shorten Sentinel's own periods for the lab (SENTINEL
// DEBUG, Redis 7.0 and later; older Sentinels keep their defaults, and the
// cases take longer): hello messages every 500 ms instead of 2 s (so the
// Sentinels find each other sooner, and a returning old primary is made a
// replica after 4 of them, 2 s, instead of 8 s), INFO every second instead
// of 10, a lost link retried after 1 s instead of 15, and TILT (Sentinel
// stops acting for a while when its timer was late by over 2 s, as a
// machine busy with CPU hogs can make it) for 3 s instead of 30.
var sentinelPeriods = []any{"publish-period", 500, "info-period", 1000, "min-link-reconnect-period", 1000, "tilt-period", 3000}

// shortenPeriods applies sentinelPeriods to the Sentinel at addr.
func (g *redisGroup) shortenPeriods(ctx context.Context, addr string) {
	c := redis.NewClient(g.opts(addr))
	defer c.Close()
	_ = c.Do(ctx, append([]any{"SENTINEL", "DEBUG"}, sentinelPeriods...)...).Err()
}

// waitReplicas waits until n replicas are online at the primary p.
func (g *redisGroup) waitReplicas(ctx context.Context, p *redisNode, n int) error {
	ok := poll(ctx, 15*time.Second, func() bool {
		f := info(ctx, p.cli, "replication")
		online := 0
		for i := range 4 {
			if strings.Contains(f[fmt.Sprintf("slave%d", i)], "state=online") {
				online++
			}
		}
		return online >= n
	})
	if !ok {
		return fmt.Errorf("%w %s: %s has not %d replicas online within 15s", errGroup, g.label, p.name, n)
	}
	return nil
}

// waitSentinels waits until every Sentinel knows both replicas and the
// other two Sentinels.
func (g *redisGroup) waitSentinels(ctx context.Context) error {
	for _, s := range g.sentinels {
		sc := redis.NewSentinelClient(g.opts(s.Addr))
		ok := poll(ctx, 20*time.Second, func() bool {
			m, err := sc.Master(ctx, groupMaster).Result()
			return err == nil && m["num-slaves"] == "2" && m["num-other-sentinels"] == "2"
		})
		sc.Close()
		if !ok {
			return fmt.Errorf("%w %s: Sentinel %s does not know 2 replicas and 2 Sentinels within 20s", errGroup, g.label, s.Addr)
		}
	}
	return nil
}

// listen records a Sentinel's events and the role changes they mean.
func (g *redisGroup) listen(ps *redis.PubSub) {
	for msg := range ps.Channel() {
		ev := groupEvent{At: time.Now(), Channel: msg.Channel, Payload: msg.Payload}
		if g.record(ev) {
			g.rolesFrom(ev)
		}
	}
}

// record adds an event, unless a Sentinel published the same before, and
// wakes the waiters; it reports whether the event was new.
func (g *redisGroup) record(ev groupEvent) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() {
		close(g.changed)
		g.changed = make(chan struct{})
	}()
	if ev.Channel != "lab" {
		g.heard[ev.Channel+" "+ev.Payload]++
		if g.heard[ev.Channel+" "+ev.Payload] > 1 {
			return false
		}
	}
	g.events = append(g.events, ev)
	return true
}

// waitHeard waits up to d until n Sentinels have published ev.
func (g *redisGroup) waitHeard(ctx context.Context, ev groupEvent, n int, d time.Duration) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for range 10000 {
		g.mu.Lock()
		got, ch := g.heard[ev.Channel+" "+ev.Payload], g.changed
		g.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return false
}

// act records something the experiment did, as an event.
func (g *redisGroup) act(format string, args ...any) time.Time {
	ev := groupEvent{At: time.Now(), Channel: "lab", Payload: fmt.Sprintf(format, args...)}
	g.record(ev)
	return ev.At
}

// rolesFrom updates the roles from a Sentinel event: +switch-master names
// the new primary (and the old one is, to the Sentinels, a replica to be);
// +convert-to-slave, a returning old primary made a replica.
func (g *redisGroup) rolesFrom(ev groupEvent) {
	f := strings.Fields(ev.Payload)
	switch ev.Channel {
	case "+switch-master":
		if len(f) == 5 {
			oldH, _ := netip.ParseAddr(f[1])
			newH, _ := netip.ParseAddr(f[3])
			g.setRole(newH, ev.At, "primary (promoted by the Sentinels)")
			if r := g.roleAt(oldH, ev.At); !strings.HasPrefix(r, "dead") {
				g.setRole(oldH, ev.At, "old primary, demoted by the Sentinels: to be made a replica when it is back ("+r+")")
			}
			for _, n := range g.nodes {
				if n.host != oldH && n.host != newH && !strings.HasPrefix(g.roleAt(n.host, ev.At), "dead") {
					g.setRole(n.host, ev.At, "replica of "+g.name(newH))
				}
			}
		}
	case "+convert-to-slave":
		// slave <ip:port> <ip> <port> @ <master> <mip> <mport>
		if len(f) >= 8 {
			h, _ := netip.ParseAddr(f[2])
			m, _ := netip.ParseAddr(f[6])
			g.setRole(h, ev.At, "replica of "+g.name(m)+" (returned old primary, converted by the Sentinels)")
		}
	}
}

// setRole records a node's role from at on.
func (g *redisGroup) setRole(h netip.Addr, at time.Time, role string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.roles[h] = append(g.roles[h], roleChange{at: at, role: role})
}

// roleAt is a node's role at t, as the experiment knew it.
func (g *redisGroup) roleAt(h netip.Addr, t time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	role := ""
	for _, r := range g.roles[h] {
		if !r.at.After(t) {
			role = r.role
		}
	}
	if role == "" {
		return "not started yet"
	}
	return role
}

// name is a node's name by its address: redis-1…3, sentinel-1…3.
func (g *redisGroup) name(h netip.Addr) string {
	for _, n := range g.nodes {
		if n.host == h {
			return n.name
		}
	}
	for i, s := range g.sentHosts {
		if s == h {
			return fmt.Sprintf("sentinel-%d", i+1)
		}
	}
	return h.String()
}

// node is the server at h.
func (g *redisGroup) node(h netip.Addr) *redisNode {
	for _, n := range g.nodes {
		if n.host == h {
			return n
		}
	}
	return nil
}

// waitEvent waits up to d for an event on channel (after index from) whose
// payload contains every one of want; it returns it and its index.
func (g *redisGroup) waitEvent(ctx context.Context, from int, channel string, d time.Duration, want ...string) (groupEvent, int, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for range 10000 {
		g.mu.Lock()
		for i := from; i < len(g.events); i++ {
			ev := g.events[i]
			if ev.Channel != channel {
				continue
			}
			match := true
			for _, w := range want {
				match = match && strings.Contains(ev.Payload, w)
			}
			if match {
				g.mu.Unlock()
				return ev, i, true
			}
		}
		from = len(g.events)
		ch := g.changed
		g.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return groupEvent{}, 0, false
		case <-ctx.Done():
			return groupEvent{}, 0, false
		}
	}
	return groupEvent{}, 0, false
}

// mark is the index the next event will have.
func (g *redisGroup) mark() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.events)
}

// eventList is a copy of the events so far.
func (g *redisGroup) eventList() []groupEvent {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]groupEvent(nil), g.events...)
}

// kill kills a node with SIGKILL.
func (g *redisGroup) kill(n *redisNode) (time.Time, bool) {
	ok := n.proc.Kill()
	at := g.act("kill -9 %s (pid %d)", n.name, n.proc.PID())
	g.setRole(n.host, at, "dead (SIGKILL)")
	return at, ok
}

// storedSession is what a node holds for a session: its operations and
// history, read with GET on the observer's own connection.
type storedSession struct {
	Found   bool
	Ops     int
	Last    float64
	History []httpstate.HistoryEntry
}

// session reads token's session straight from a node.
func (g *redisGroup) session(ctx context.Context, n *redisNode, token string) (storedSession, error) {
	b, err := n.cli.Get(ctx, "scs:session:"+token).Bytes()
	if errors.Is(err, redis.Nil) {
		return storedSession{}, nil
	}
	if err != nil {
		return storedSession{}, err
	}
	var rec struct {
		State *httpstate.SessionState `json:"state"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.State == nil {
		return storedSession{}, fmt.Errorf("%w: session of %s on %s: %q", errGroup, short(token), n.name, trimString(string(b), 80))
	}
	return storedSession{Found: true, Ops: rec.State.Operations, Last: rec.State.LastResult, History: rec.State.History}, nil
}

// primaryNow asks the first Sentinel which server is the primary.
func (g *redisGroup) primaryNow(ctx context.Context) *redisNode {
	sc := redis.NewSentinelClient(g.opts(g.sentinels[0].Addr))
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, groupMaster).Result()
	if err != nil || len(a) != 2 {
		return nil
	}
	h, _ := netip.ParseAddr(a[0])
	return g.node(h)
}

// sessionKeys counts the session keys each live node holds.
func (g *redisGroup) sessionKeys(ctx context.Context) map[string]int {
	out := map[string]int{}
	for _, n := range g.nodes {
		if strings.HasPrefix(g.roleAt(n.host, time.Now()), "dead") {
			continue
		}
		keys, err := n.cli.Keys(ctx, "scs:session:*").Result()
		if err == nil {
			out[n.name] = len(keys)
		}
	}
	return out
}

// waitLinkUp waits until node n replicates with its link up.
func (g *redisGroup) waitLinkUp(ctx context.Context, n *redisNode, d time.Duration) bool {
	return poll(ctx, d, func() bool {
		f := info(ctx, n.cli, "replication")
		return f["role"] == "slave" && f["master_link_status"] == "up"
	})
}

// configAll sets a configuration directive on every live server.
func (g *redisGroup) configAll(ctx context.Context, name, value string) error {
	for _, n := range g.nodes {
		if err := n.cli.ConfigSet(ctx, name, value).Err(); err != nil {
			return fmt.Errorf("%w %s: CONFIG SET %s %s on %s: %w", errGroup, g.label, name, value, n.name, err)
		}
	}
	return nil
}

// goodReplicas is the primary's count of replicas within
// min-replicas-max-lag (INFO's min_slaves_good_slaves), -1 unknown.
func goodReplicas(ctx context.Context, n *redisNode) int {
	v, err := strconv.Atoi(info(ctx, n.cli, "replication")["min_slaves_good_slaves"])
	if err != nil {
		return -1
	}
	return v
}

// close stops the observer and every process; closing again does nothing.
func (g *redisGroup) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	g.mu.Unlock()
	for _, ps := range g.ps {
		ps.Close()
	}
	for _, c := range g.obs {
		c.Close()
	}
	for _, s := range g.sentinels {
		s.Close()
	}
	for _, n := range g.nodes {
		n.cli.Close()
		n.proc.Close()
	}
}

// restart starts a killed node again on its address, with the
// configuration it had at first (so the old primary comes back believing
// it is a primary, with no data: nothing here tells it otherwise; the
// Sentinels do).
func (g *redisGroup) restart(ctx context.Context, n *redisNode) error {
	p, err := httpstate.StartRedisProc(ctx, httpstate.RedisProcSpec{Host: n.host.String(), Port: 6379, Dir: g.dir, Config: serverConfig})
	if err != nil {
		return fmt.Errorf("%w %s: restarting %s: %w", errGroup, g.label, n.name, err)
	}
	n.proc = p
	at := g.act("%s restarted (pid %d), as a primary with no data", n.name, p.PID())
	g.setRole(n.host, at, "restarted: a primary with no data, in its own eyes")
	startedLocked("redis-server", p.PID())
	return nil
}

// primaryWord names the primary now, as the experiment knows it (the
// first primary until a +switch-master names another).
func (g *redisGroup) primaryWord() string {
	now := time.Now()
	for _, n := range g.nodes {
		if r := g.roleAt(n.host, now); strings.HasPrefix(r, "primary") {
			return n.name + ", " + r
		}
	}
	return "the primary the Sentinels name"
}

// eventDigest lists the events with their times, for the log.
func (g *redisGroup) eventDigest() string {
	var out []string
	for _, ev := range g.eventList() {
		if ev.Channel != "__sentinel__:hello" {
			out = append(out, fmt.Sprintf("+%dms %s %s", ev.At.Sub(g.started).Milliseconds(), ev.Channel, trimString(ev.Payload, 50)))
		}
	}
	return strings.Join(out, " | ")
}

// others are the servers that are neither a nor b.
func (g *redisGroup) others(a, b string) []*redisNode {
	var out []*redisNode
	for _, n := range g.nodes {
		if n.name != a && n.name != b {
			out = append(out, n)
		}
	}
	return out
}

// waitReconfigured waits until every server but the old and the new
// primary replicates, with its link up (from the new primary: the
// Sentinels reconfigured it).
func (g *redisGroup) waitReconfigured(ctx context.Context, old, promoted string, d time.Duration) bool {
	for _, n := range g.others(old, promoted) {
		if !g.waitLinkUp(ctx, n, d) {
			return false
		}
	}
	return true
}

// startedLocked is started for the cases that run side by side: the
// test hook sees one call at a time.
func startedLocked(what string, pid int) {
	rigMu.Lock()
	defer rigMu.Unlock()
	started(what, pid)
}

// stillFirst is an error when the Sentinels have already moved the primary
// away from the first (a failover the lab did not cause: a busy machine).
func (g *redisGroup) stillFirst(ctx context.Context) error {
	for _, ev := range g.eventList() {
		if ev.Channel == "+switch-master" || ev.Channel == "+try-failover" {
			return fmt.Errorf("%w %s: the Sentinels began a failover before the lab's fault (%s %s at +%d ms): the machine was too busy for down-after-milliseconds %s",
				errGroup, g.label, ev.Channel, ev.Payload, ev.At.Sub(g.started).Milliseconds(), g.timing.DownAfter)
		}
	}
	return nil
}
