package tcpexp

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// What every tcp/ experiment sets up, once: a stack with short timers in
// the lab's namespace, a capture of the lab's ports, the connections it
// tracks for the ladders and the states table; and, when the experiment
// has driven its traffic, stop: the capture completed by the driver's
// records and every packet commented (comments.go).

// expConfig is the engine configuration of the experiments: timers short
// enough for a test, long enough for a loaded machine. MinRTO is Linux's
// 200 ms: a shorter one fires spuriously on a loaded 2-core machine under
// -race (a descheduled reader delays an ACK by tens of ms), and a spurious
// retransmission is an unintended tcp.analysis flag in the capture. Only
// tcp/retransmit, which is about retransmissions, goes lower.
func expConfig() tcpstate.Config {
	return tcpstate.Config{
		InitialRTO: 300 * time.Millisecond,
		MinRTO:     200 * time.Millisecond,
		MaxRTO:     2 * time.Second,
		MSL:        100 * time.Millisecond,
	}
}

// labConfig is expConfig with the lab's initial sequence numbers and
// timestamp offsets drawn from the run's seeded streams, so --seed
// repeats them (the library's default stays crypto/rand).
func labConfig(env *lab.Env) tcpstate.Config {
	c := expConfig()
	c.ISS = seededISS(env.Stream("iss"))
	ts := seededISS(env.Stream("ts-offset"))
	c.TSOffset = func() uint32 { return uint32(ts()) }
	return c
}

// seededISS draws ISSs from rng; engines of several connections may call
// it from their goroutines.
func seededISS(rng *rand.Rand) func() tcpstate.Seq {
	var mu sync.Mutex
	return func() tcpstate.Seq {
		mu.Lock()
		defer mu.Unlock()
		return tcpstate.Seq(rng.Uint32())
	}
}

// Tests make a capture short through these.
var (
	// testCaptureKeep, when set, also decides which packets a capture
	// keeps: one that drops some leaves the capture short of the records.
	testCaptureKeep func(*capture.Packet) bool
	// captureDrain bounds how long a capture waits to hold what the
	// records count (0: the capture's default).
	captureDrain time.Duration
)

// labNetNS is the network namespace the lab's raw link may alter: the one
// the sandbox made for this process, and no other.
func labNetNS() (string, error) {
	if err := sandbox.InsideErr(); err != nil {
		return "", err
	}
	return rawtcp.CurrentNetNS()
}

// openStack opens the lab's stack in its namespace.
func openStack(cfg rawtcp.StackConfig) (*rawtcp.Stack, error) {
	ns, err := labNetNS()
	if err != nil {
		return nil, err
	}
	cfg.Link.NetNS = ns
	return rawtcp.NewStack(cfg)
}

// labRun is one experiment's lab side.
type labRun struct {
	env    *lab.Env
	st     *rawtcp.Stack
	cap    *capture.Capture
	pkts   []*capture.Packet
	conns  []*rawtcp.Conn
	labels map[int]string // conn ID → label

	// The evidence, once stop has read the capture.
	recs   []rawtcp.Record // the driver's records
	pktRec []int           // packet → record index, -1 for none
	recPkt map[int]int     // record index → packet index
	convs  []*conv         // the capture's connections
	convOf []int           // packet → conversation, -1 for none

	// kernelViews, when set, gives the kernel's state beside each segment
	// of a conversation in place of inferKernel's, for an experiment whose
	// kernel does what the segments alone cannot show (a listener that
	// answers with SYN cookies keeps no SYN-RECEIVED socket).
	kernelViews func(c *conv) []kview
	// kernelHow, with kernelViews, says on each connection's first packet
	// how its kernel states were found, in place of inferKernel's account.
	kernelHow string
	// labelTS puts every segment's timestamps in the ladders' labels (SACK
	// blocks are always shown).
	labelTS bool
	// recNotes, when set, gives comments of the experiment's own for the
	// packets of some records (record index → comments), added after the
	// lab's and the kernel's state on those packets.
	recNotes func(recs []rawtcp.Record) map[int][]string
	extra    map[int][]string
	// rungNotes, when set, adds a short note to the ladder rows of some
	// records (record index → note), after the kernel's state.
	rungNotes map[int]string
	// noLadder is set once the report says a short capture gets no ladder.
	noLadder bool
}

// newLabRun opens the lab's stack with engine configuration cfg and
// starts capturing its ports. The lab's ports, like its ISSs, come from
// the run's seed. No PeerState: the kernel's state beside each segment is
// derived from the capture (inferKernel), not sampled when the lab
// handles it.
func newLabRun(env *lab.Env, cfg tcpstate.Config) (*labRun, error) {
	lc := rawtcp.LinkConfig{}.WithDefaults()
	first := lc.PortMin + uint16(env.Stream("ports").IntN(int(lc.PortMax-lc.PortMin)+1))
	st, err := openStack(rawtcp.StackConfig{Engine: cfg, FirstPort: first})
	if err != nil {
		return nil, &lab.EnvError{What: "opening the lab's raw TCP link", Err: err,
			Remedy: "the tcp experiments need raw sockets and nftables in the lab's namespace (CAP_NET_RAW, CAP_NET_ADMIN there); run inside the statelab sandbox"}
	}
	env.Cleanup(func() { st.Close() })
	lc = st.Link().Config()
	cp, err := env.Capture(capture.Options{MaxDrain: captureDrain, Keep: func(p *capture.Packet) bool {
		if testCaptureKeep != nil && !testCaptureKeep(p) {
			return false
		}
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			return false
		}
		in := func(ap netip.AddrPort) bool {
			return ap.Addr() == lc.Addr && ap.Port() >= lc.PortMin && ap.Port() <= lc.PortMax
		}
		return in(m.Src) || in(m.Dst)
	}})
	if err != nil {
		return nil, err
	}
	return &labRun{env: env, st: st, cap: cp, labels: map[int]string{}}, nil
}

// connectKernel dials the kernel listener kp from the lab, tracks the lab's
// connection under label, and accepts the kernel's socket, which is closed
// when the experiment ends and given a deadline of d.
func (r *labRun) connectKernel(ctx context.Context, kp *kernelPeer, label string, opts *rawtcp.ConnOptions, d time.Duration) (*rawtcp.Conn, *net.TCPConn, error) {
	c, err := r.st.Dial(ctx, kp.addr, opts)
	r.track(c, label)
	if err != nil {
		return nil, nil, err
	}
	k, err := kp.accept(ctx)
	if err != nil {
		return nil, nil, err
	}
	r.env.Cleanup(func() { k.Close() })
	_ = k.SetDeadline(deadline(ctx, d))
	return c, k, nil
}

// track names a connection for the ladders and the states table.
func (r *labRun) track(c *rawtcp.Conn, label string) *rawtcp.Conn {
	if c != nil {
		r.conns = append(r.conns, c)
		r.labels[c.ID()] = label
	}
	return c
}

// labelOf is the label a connection was tracked under.
func (r *labRun) labelOf(c *rawtcp.Conn) string {
	if c == nil {
		return "?"
	}
	return r.labels[c.ID()]
}

// lateRecords bounds the wait for the lab's reader to record kernel
// segments the capture already holds.
const lateRecords = 2 * time.Second

// stop ends the capture once it holds every segment the driver's records
// say crossed the wire (or MaxDrain passes), checks that it does, and
// comments every captured packet: the lab's state from the records, the
// kernel's from the segments, relative sequence numbers, and the name of
// every transmission.
func (r *labRun) stop() {
	lc := r.st.Link().Config()
	want := newRecMatcher(r.st.Records(), lc.Addr, lc.PortMin, lc.PortMax)
	pkts, err := r.cap.StopWhen(want.feed)
	if err != nil {
		r.env.Check("capture read", false, "%v", err)
	}
	want.feed(pkts)
	r.env.CaptureComplete(r.cap, want.got, want.want, "segments", "the lab's driver records")
	r.pkts = pkts
	m := r.matchRecords()
	r.recs, r.pktRec, r.recPkt = m.recs, m.rec, m.recPkt
	r.convs, r.convOf = conversations(pkts, m.fromLab)
	if r.kernelViews != nil {
		for _, c := range r.convs {
			c.kernel = r.kernelViews(c)
		}
	}
	if r.recNotes != nil {
		r.extra = r.recNotes(r.recs)
	}
	commented := r.comment()
	r.env.Check("every captured segment matches the driver's records and carries a comment", m.extra == 0 && commented == len(pkts),
		"%d of %d packets matched to the driver's records; %d commented%s", len(pkts)-m.extra, len(pkts), commented, listSuffix(m.missing))
	r.feature(recordFeatures(r.recs)...)
	r.env.Metric("kernel_rsts_suppressed_count", float64(r.st.Link().SuppressedRSTs()))
	r.env.Metric("captured_packets_count", float64(len(pkts)))
}

// matchRecords pairs the captured packets with the driver's records. Every
// captured packet should have its record: a kernel segment the lab's
// reader has not handled yet gets one soon, so when some packet has none
// it waits for the records (an event, bounded by lateRecords).
func (r *labRun) matchRecords() *recMatcher {
	lc := r.st.Link().Config()
	match := func(recs []rawtcp.Record) *recMatcher {
		m := newRecMatcher(recs, lc.Addr, lc.PortMin, lc.PortMax)
		m.feed(r.pkts)
		return m
	}
	m := match(r.st.Records())
	if m.extra == 0 {
		return m
	}
	ctx, cancel := context.WithTimeout(r.env.Ctx, lateRecords)
	defer cancel()
	_ = r.st.WaitRecords(ctx, func(recs []rawtcp.Record) bool { return match(recs).extra == 0 })
	return match(r.st.Records())
}

// frameOfRec is the capture frame number (1-based) of a record's packet,
// 0 when it has none.
func (r *labRun) frameOfRec(rec int) int {
	if i, ok := r.recPkt[rec]; ok {
		return i + 1
	}
	return 0
}

// connRecs returns the indices of the records of connection id, the
// stack's CLOSED responder's on its ports included (after a crash).
func (r *labRun) connRecs(id int) []int {
	var lport, rport uint16
	var raddr netip.Addr
	var out []int
	for i := range r.recs {
		rec := &r.recs[i]
		if rec.Conn == id {
			out = append(out, i)
			if lport == 0 && (rec.Seg.SrcPort != 0 || rec.Seg.DstPort != 0) {
				lport, rport, raddr = rec.Seg.DstPort, rec.Seg.SrcPort, rec.PeerAddr
				if rec.Sent {
					lport, rport = rport, lport
				}
			}
			continue
		}
		if rec.Conn == 0 && lport != 0 && rec.PeerAddr == raddr &&
			((rec.Sent && rec.Seg.SrcPort == lport && rec.Seg.DstPort == rport) || (!rec.Sent && rec.Seg.DstPort == lport && rec.Seg.SrcPort == rport)) {
			out = append(out, i)
		}
	}
	return out
}

// convOfRecs is the conversation holding the packets of the records.
func (r *labRun) convOfRecs(recs []int) *conv {
	for _, ri := range recs {
		if p, ok := r.recPkt[ri]; ok && r.convOf[p] >= 0 {
			return r.convs[r.convOf[p]]
		}
	}
	return nil
}

// states collects the states the tracked connections went through and
// checks that want are among them; it also tables which connection reached
// which state first.
func (r *labRun) states(want ...tcpstate.State) {
	seen := map[tcpstate.State]string{}
	for _, c := range r.conns {
		for _, h := range c.History() {
			if _, ok := seen[h.To]; !ok {
				seen[h.To] = r.labels[c.ID()]
			}
			if _, ok := seen[h.From]; !ok {
				seen[h.From] = r.labels[c.ID()]
			}
		}
	}
	var got []string
	var missing []string
	rows := [][]string{{"lab state", "reached by"}}
	for _, s := range tcpstate.States() {
		if who, ok := seen[s]; ok {
			got = append(got, s.String())
			rows = append(rows, []string{s.String(), who})
			r.env.Metric(reachedMetric+s.String(), 1) // read by the tcp/* summary
		}
	}
	for _, s := range want {
		if _, ok := seen[s]; !ok {
			missing = append(missing, s.String())
		}
	}
	sort.Strings(missing)
	r.env.Table("lab states reached", rows)
	r.env.Check("the lab reaches "+joinStates(want), len(missing) == 0, "reached %s; missing %s", strings.Join(got, ", "), lab.List(missing))
	r.env.Metric("lab_states_reached_count", float64(len(got)))
}

func joinStates(ss []tcpstate.State) string {
	n := make([]string, len(ss))
	for i, s := range ss {
		n[i] = s.String()
	}
	return strings.Join(n, ", ")
}

// path renders a connection's transitions: "SYN-SENT → ESTABLISHED → …".
func path(c *rawtcp.Conn) string {
	h := c.History()
	if len(h) == 0 {
		return c.State().String()
	}
	parts := []string{h[0].From.String()}
	for _, x := range h {
		parts = append(parts, x.To.String())
	}
	return strings.Join(parts, " → ")
}

// pathOr is path for a connection that may not exist.
func pathOr(c *rawtcp.Conn) string {
	if c == nil {
		return "no connection"
	}
	return path(c)
}

// hasPath reports whether the connection took the transitions in order
// (other transitions may come between).
func hasPath(c *rawtcp.Conn, seq ...tcpstate.State) bool {
	i := 0
	for _, x := range c.History() {
		if i < len(seq) && i == 0 && x.From == seq[0] {
			i = 1
		}
		if i > 0 && i < len(seq) && x.To == seq[i] {
			i++
		}
	}
	return i == len(seq)
}

// timeIn returns how long the connection stayed in st (the first time).
func timeIn(c *rawtcp.Conn, st tcpstate.State) time.Duration {
	h := c.History()
	for i, x := range h {
		if x.To == st && i+1 < len(h) {
			return h[i+1].At - x.At
		}
	}
	return 0
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func listSuffix(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; unmatched: " + strings.Join(s, "; ")
}

// newKernelRun is the opening of the experiments that talk to a kernel
// listener: the lab's run, and a kernel socket listening with receive
// buffer rcvbuf (0: the kernel's default), closed when the experiment ends.
func newKernelRun(env *lab.Env, cfg tcpstate.Config, rcvbuf int) (*labRun, *kernelPeer, error) {
	r, err := newLabRun(env, cfg)
	if err != nil {
		return nil, nil, err
	}
	kp, err := listenKernel(env.Ctx, rcvbuf)
	if err != nil {
		return nil, nil, err
	}
	env.Cleanup(func() { kp.Close() })
	return r, kp, nil
}
