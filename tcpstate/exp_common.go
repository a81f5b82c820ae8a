package tcpstate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// What the tcp/ experiments share: a stack with short timers, a capture of
// the lab's ports, the comments that put the lab's state on every captured
// segment, the ladders and the list of states reached.

// expConfig is the engine configuration of the experiments: timers short
// enough for a test, long enough for a loaded machine. MinRTO is Linux's
// 200 ms: a shorter one fires spuriously on a loaded 2-core machine under
// -race (a descheduled reader delays an ACK by tens of ms), and a spurious
// retransmission is an unintended tcp.analysis flag in the capture. Only
// tcp/retransmit, which is about retransmissions, goes lower.
func expConfig() Config {
	return Config{
		InitialRTO: 300 * time.Millisecond,
		MinRTO:     200 * time.Millisecond,
		MaxRTO:     2 * time.Second,
		MSL:        100 * time.Millisecond,
	}
}

// labConfig is expConfig with the lab's initial sequence numbers drawn
// from the run's seeded stream, so --seed repeats them (the library's
// default stays crypto/rand).
func labConfig(env *lab.Env) Config {
	c := expConfig()
	c.ISS = seededISS(env.Stream("iss"))
	return c
}

// seededISS draws ISSs from rng; engines of several connections may call
// it from their goroutines.
func seededISS(rng *rand.Rand) func() Seq {
	var mu sync.Mutex
	return func() Seq {
		mu.Lock()
		defer mu.Unlock()
		return Seq(rng.Uint32())
	}
}

// labRun is one experiment's lab side.
type labRun struct {
	env     *lab.Env
	st      *Stack
	cap     *capture.Capture
	pkts    []*capture.Packet
	conns   []*Conn
	reached map[State]string // state → first connection label that reached it
	labels  map[int]string   // conn ID → label

	// The evidence, once stop has read the capture.
	recs   []Record    // the driver's records
	pktRec []int       // packet → record index, -1 for none
	recPkt map[int]int // record index → packet index
	convs  []*conv     // the capture's connections
	convOf []int       // packet → conversation, -1 for none
}

func newLabRun(env *lab.Env, cfg Config) (*labRun, error) {
	// No PeerState: the kernel's state beside each segment is derived from
	// the capture (inferKernel), not sampled when the lab handles it.
	// The lab's ports, like its ISSs, come from the run's seed.
	lc := LinkConfig{}.withDefaults()
	first := lc.PortMin + uint16(env.Stream("ports").IntN(int(lc.PortMax-lc.PortMin)+1))
	st, err := NewStack(StackConfig{Engine: cfg, FirstPort: first})
	if err != nil {
		return nil, &lab.EnvError{What: "opening the lab's raw TCP link", Err: err,
			Remedy: "the tcp experiments need raw sockets and nftables in the lab's namespace (CAP_NET_RAW, CAP_NET_ADMIN there); run inside the statelab sandbox"}
	}
	env.Cleanup(func() { st.Close() })
	lc = st.Link().Config()
	cp, err := env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
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
	return &labRun{env: env, st: st, cap: cp, reached: map[State]string{}, labels: map[int]string{}}, nil
}

// track names a connection for the ladders and the states table.
// connectKernel dials the kernel listener kp from the lab, tracks the lab's
// connection under label, and accepts the kernel's socket, which is closed
// when the experiment ends and given a deadline of d.
func (r *labRun) connectKernel(ctx context.Context, kp *kernelPeer, label string, opts *ConnOptions, d time.Duration) (*Conn, *net.TCPConn, error) {
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

func (r *labRun) track(c *Conn, label string) *Conn {
	if c != nil {
		r.conns = append(r.conns, c)
		r.labels[c.ID()] = label
	}
	return c
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

	// Every captured packet should have its record: a kernel segment the
	// lab's reader has not handled yet gets one soon (an event, bounded).
	match := func() *recMatcher {
		m := newRecMatcher(r.st.Records(), lc.Addr, lc.PortMin, lc.PortMax)
		m.feed(pkts)
		return m
	}
	m := match()
	if m.extra > 0 {
		ctx, cancel := context.WithTimeout(r.env.Ctx, lateRecords)
		_ = r.st.WaitRecords(ctx, func(recs []Record) bool {
			x := newRecMatcher(recs, lc.Addr, lc.PortMin, lc.PortMax)
			x.feed(pkts)
			return x.extra == 0
		})
		cancel()
		m = match()
	}
	r.recs, r.pktRec, r.recPkt = m.recs, m.rec, m.recPkt
	r.convs, r.convOf = conversations(pkts, m.fromLab)
	commented := r.comment()
	r.env.Check("every captured segment matches the driver's records and carries a comment", m.extra == 0 && commented == len(pkts),
		"%d of %d packets matched to the driver's records; %d commented%s", len(pkts)-m.extra, len(pkts), commented, listSuffix(m.missing))
	r.env.Metric("kernel_rsts_suppressed_count", float64(r.st.Link().SuppressedRSTs()))
	r.env.Metric("captured_packets_count", float64(len(pkts)))
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
	var raddr [4]byte
	var out []int
	for i := range r.recs {
		rec := &r.recs[i]
		if rec.Conn == id {
			out = append(out, i)
			if lport == 0 && (rec.Seg.SrcPort != 0 || rec.Seg.DstPort != 0) {
				lport, rport, raddr = rec.Seg.DstPort, rec.Seg.SrcPort, rec.peerAddr
				if rec.Sent {
					lport, rport = rport, lport
				}
			}
			continue
		}
		if rec.Conn == 0 && lport != 0 && rec.peerAddr == raddr &&
			((rec.Sent && rec.Seg.SrcPort == lport && rec.Seg.DstPort == rport) || (!rec.Sent && rec.Seg.DstPort == lport && rec.Seg.SrcPort == rport)) {
			out = append(out, i)
		}
	}
	return out
}

// comment writes the comments of every captured packet and returns how
// many carry one.
func (r *labRun) comment() int {
	// The lab's transmissions, named per connection, and the lab's
	// segments that never reached the wire, told on the next packet.
	named := map[int]string{}    // record → its transmission's name
	before := map[int][]string{} // packet → what the lab lost before it
	finQueued := map[int]bool{}  // record → the lab has closed, its FIN not yet sent
	heldOf := map[int]int{}      // release by the link → the emission it released
	ids := map[int]bool{}
	for i := range r.recs {
		if id := r.recs[i].Conn; id != 0 && !ids[id] {
			ids[id] = true
			recs := r.connRecs(id)
			c := r.convOfRecs(recs)
			var lb seqBase
			if c != nil {
				lb = c.labBase
			}
			names, covered, held := nameTransmissions(r.recs, recs, r.frameOfRec, lb)
			for k, v := range names {
				named[k] = v
			}
			for k, v := range held {
				heldOf[k] = v
			}
			type lostRec struct {
				at   time.Duration
				what string
			}
			var lost []lostRec
			finSent := false
			for _, ri := range recs {
				rec := &r.recs[ri]
				if rec.Sent && rec.Seg.Flags&FIN != 0 {
					finSent = true
				}
				if !finSent && (rec.State == FinWait1 || rec.State == Closing || rec.State == LastAck) {
					finQueued[ri] = true
				}
				if p, ok := r.recPkt[ri]; ok {
					for _, l := range lost {
						before[p] = append(before[p], fmt.Sprintf("%s before this segment, %s", fmtMs(rec.At-l.at), l.what))
					}
					lost = nil
					continue
				}
				if !rec.Sent || onWire(rec) || covered[ri] || (rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0) {
					continue
				}
				pb := seqBase{}
				if c != nil {
					pb = c.peerBase
				}
				lost = append(lost, lostRec{rec.At, fmt.Sprintf("the lab's %s was %s and never reached the wire",
					wireLabel(uint8(rec.Seg.Flags), uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), rec.Seg.Len, rec.Seg.Window, lb, pb), lostWhy(rec.Note))})
			}
		}
	}
	kernelNamed := map[int]string{}
	for _, c := range r.convs {
		for k, v := range kernelTransmissions(c, func(p int) int { return p + 1 }) {
			kernelNamed[k] = v
		}
	}
	commented := 0
	pos := make([]int, len(r.pkts))
	for _, c := range r.convs {
		for j, p := range c.pkts {
			pos[p] = j
		}
	}
	told := make([]map[bool]bool, len(r.convs))
	for i := range told {
		told[i] = map[bool]bool{}
	}
	for i, p := range r.pkts {
		ci := r.convOf[i]
		if ci < 0 {
			p.Comment("not a TCP segment of the lab's")
			commented++
			continue
		}
		c := r.convs[ci]
		j := pos[i]
		s, kv := c.segs[j], c.kernel[j]
		if j == 0 {
			p.Comment(fmt.Sprintf("connection lab %v ↔ kernel %v: sequence numbers in these comments are relative, as Wireshark shows them; "+
				"the kernel's state is derived from the segments in capture order (on a kernel segment, the state it sent it in; on a lab segment, "+
				"the state it left the kernel in), not sampled, so a close() whose FIN is still queued shows only when that FIN is sent", c.lab, c.peer))
		}
		// The ISS, once per side and connection: on the side's first
		// segment, which is its SYN when the capture holds it.
		if !told[ci][s.fromLab] {
			told[ci][s.fromLab] = true
			who := "kernel"
			if s.fromLab {
				who = "lab"
			}
			switch {
			case s.has(wSYN) && s.fromLab:
				p.Comment(fmt.Sprintf("lab ISS %d (relative seq 0)", s.seq))
			case s.has(wSYN):
				p.Comment(fmt.Sprintf("kernel ISS %d (relative seq 0; the lab's IRS)", s.seq))
			default:
				p.Comment(fmt.Sprintf("the %s sent no SYN on this connection in the capture: relative seq 1 is its first sequence number here, %d", who, s.seq))
			}
		}
		if ri := r.pktRec[i]; ri >= 0 {
			rec := &r.recs[ri]
			if h, ok := heldOf[ri]; ok {
				// The lab's state as it sent the segment: when the engine
				// emitted it, before the link held it back.
				e := *rec
				e.State, e.Before, e.TCB = r.recs[h].State, r.recs[h].Before, r.recs[h].TCB
				e.Note = fmt.Sprintf("as the engine emitted it; held back on the lab's link and released now, with the lab %s", rec.State)
				rec = &e
			}
			lc := labComment(rec, c.labBase, c.peerBase)
			if finQueued[ri] {
				lc += " (the lab has closed; its FIN waits behind data still to send)"
			}
			p.Comment(lc)
		} else if s.fromLab {
			p.Comment("lab: sent from a lab port, but no driver record matches it")
		} else {
			p.Comment("lab: no driver record: the lab's reader had not handled this segment when the capture stopped")
		}
		k := "kernel " + kv.state
		if kv.note != "" {
			k += ": " + kv.note
		}
		p.Comment(k)
		if ri := r.pktRec[i]; ri >= 0 && named[ri] != "" {
			p.Comment(named[ri])
		}
		if n := kernelNamed[i]; n != "" {
			p.Comment(n)
		}
		for _, l := range before[i] {
			p.Comment(l)
		}
		commented++
	}
	return commented
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

// lostWhy says why a sent record's segment never reached the wire.
func lostWhy(note string) string {
	switch {
	case strings.HasPrefix(note, "dropped"):
		return "dropped by the lab's simulated loss"
	case strings.HasPrefix(note, "held"):
		return "held back on the lab's link"
	case strings.HasPrefix(note, "lost"):
		return "lost (" + strings.TrimPrefix(note, "lost: ") + ")"
	}
	return note
}

func listSuffix(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; unmatched: " + strings.Join(s, "; ")
}

// ladder draws one connection as captured: its captured segments in
// capture order with the lab's state from the records and the kernel's
// from the segments; segments the records hold that are not in the
// capture (dropped or held by the lab's link, or missing from a short
// capture) are marked as reported by the engine's records.
func (r *labRun) ladder(title string, c *Conn) { r.ladderN(title, c, 0, 0, nil) }

// ladderN is ladder keeping only the first head and last tail rows of a
// long exchange and the records keep selects (0, 0: all); the rest
// collapse into "… n segments …" rows.
func (r *labRun) ladderN(title string, c *Conn, head, tail int, keep func(*Record) bool) {
	if c == nil {
		return
	}
	l := r.env.Ladder(title+" (as captured; sequence numbers relative, as Wireshark shows them)", "lab (tcpstate)", "kernel")
	type item struct {
		pkt, sub int // capture position; sub orders records with no packet after the packet before them
		rec      int // record, -1 for a captured packet without one
		p        int // packet, -1 for a record without one
	}
	var items []item
	recs := r.connRecs(c.ID())
	convSet := map[int]bool{}
	last := item{pkt: -1}
	for _, ri := range recs {
		if p, ok := r.recPkt[ri]; ok {
			last = item{pkt: p, rec: ri, p: p}
			items = append(items, last)
			if r.convOf[p] >= 0 {
				convSet[r.convOf[p]] = true
			}
			continue
		}
		last.sub++
		items = append(items, item{pkt: last.pkt, sub: last.sub, rec: ri, p: -1})
	}
	for ci := range convSet {
		for _, p := range r.convs[ci].pkts {
			if r.pktRec[p] < 0 {
				items = append(items, item{pkt: p, rec: -1, p: p})
			}
		}
	}
	sort.SliceStable(items, func(a, b int) bool {
		if items[a].pkt != items[b].pkt {
			return items[a].pkt < items[b].pkt
		}
		return items[a].sub < items[b].sub
	})
	var cv *conv
	for ci := range convSet {
		cv = r.convs[ci]
		break
	}
	var lb, pb seqBase
	if cv != nil {
		lb, pb = cv.labBase, cv.peerBase
	} else { // nothing captured: the records' own numbers
		t := c.TCB()
		lb, pb = seqBase{uint32(t.ISS), true}, seqBase{uint32(t.IRS), true}
	}
	var rows []lab.Rung
	var kept []bool
	prev, kstate := "", ""
	for _, it := range items {
		var kv kview
		if it.p >= 0 && r.convOf[it.p] >= 0 {
			cc := r.convs[r.convOf[it.p]]
			for j, p := range cc.pkts {
				if p == it.p {
					kv = cc.kernel[j]
				}
			}
			kstate = kv.state
		}
		if it.rec < 0 { // captured, no record
			m, _ := r.pkts[it.p].Decode()
			fromLab := m.Src.Addr() == r.st.Addr() && m.Src.Port() == c.lport
			sb, ab := pb, lb
			if fromLab {
				sb, ab = lb, pb
			}
			rows = append(rows, lab.Rung{Label: wireLabel(m.Flags, m.Seq, m.Ack, len(m.Payload), m.Window, sb, ab) + " (no lab record)",
				ToRight: fromLab, LeftState: "?", RightState: kstate})
			kept = append(kept, false)
			continue
		}
		rec := &r.recs[it.rec]
		labState := rec.State.String()
		if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 { // a note, not a segment
			rows = append(rows, lab.Rung{LeftState: labState + " (" + rec.Note + ")", RightState: kstate})
			kept = append(kept, true)
			continue
		}
		kept = append(kept, keep != nil && keep(rec))
		sb, ab := lb, pb
		if !rec.Sent {
			sb, ab = pb, lb
		}
		label := wireLabel(uint8(rec.Seg.Flags), uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), rec.Seg.Len, rec.Seg.Window, sb, ab)
		row := lab.Rung{ToRight: rec.Sent, RightState: kstate}
		switch {
		case it.p < 0 && !onWire(rec):
			if !strings.HasPrefix(rec.Note, "held") {
				label = "✗ " + label // lost for good
			}
			label += " (" + lostWhy(rec.Note) + ")"
			row.Reported = "engine records"
		case it.p < 0:
			label += " (not in the capture)"
			row.Reported = "engine records"
		case rec.Note != "" && rec.Note != "no TCB":
			label += " (" + rec.Note + ")"
		}
		if !rec.Sent && rec.Before != rec.State && prev != rec.Before.String() {
			labState = rec.Before.String() + "→" + labState
		}
		row.Label, row.LeftState = label, labState
		rows = append(rows, row)
		prev = rec.State.String()
	}
	if head+tail > 0 && len(rows) > head+tail+1 {
		var out []lab.Rung
		skipped := 0
		for i, row := range rows {
			if i < head || i >= len(rows)-tail || kept[i] || row.Reported != "" {
				if skipped > 0 {
					out = append(out, lab.Rung{LeftState: fmt.Sprintf("… %d segments …", skipped)})
					skipped = 0
				}
				out = append(out, row)
				continue
			}
			skipped++
		}
		rows = out
	}
	l.Rows = rows
}

// states collects the states the tracked connections went through and
// checks that want are among them; it also tables which connection reached
// which state first.
func (r *labRun) states(want ...State) {
	seen := map[State]string{}
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
	for _, s := range States() {
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
	r.env.Check("the lab reaches "+joinStates(want), len(missing) == 0, "reached %s; missing %v", strings.Join(got, ", "), missing)
	r.env.Metric("lab_states_reached_count", float64(len(got)))
}

func joinStates(ss []State) string {
	n := make([]string, len(ss))
	for i, s := range ss {
		n[i] = s.String()
	}
	return strings.Join(n, ", ")
}

// path renders a connection's transitions: "SYN-SENT → ESTABLISHED → …".
func path(c *Conn) string {
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

// hasPath reports whether the connection took the transitions in order
// (other transitions may come between).
func hasPath(c *Conn, seq ...State) bool {
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
