package tcpstate

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/statelab/statelab/internal/capture"
	"github.com/statelab/statelab/internal/lab"
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

// labRun is one experiment's lab side.
type labRun struct {
	env     *lab.Env
	st      *Stack
	cap     *capture.Capture
	pkts    []*capture.Packet
	conns   []*Conn
	reached map[State]string // state → first connection label that reached it
	labels  map[int]string   // conn ID → label
}

func newLabRun(env *lab.Env, cfg Config) (*labRun, error) {
	st, err := NewStack(StackConfig{Engine: cfg, PeerState: func(lab, peer netip.AddrPort) string {
		return KernelStateOr(peer, lab)
	}})
	if err != nil {
		return nil, &lab.EnvError{What: "opening the lab's raw TCP link", Err: err,
			Remedy: "the tcp experiments need raw sockets and nftables in the lab's namespace (CAP_NET_RAW, CAP_NET_ADMIN there); run inside the statelab sandbox"}
	}
	env.Cleanup(func() { st.Close() })
	lc := st.Link().Config()
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

// stop ends the capture and comments every packet of the lab's connections
// with the lab's state from the stack's records, matching by direction,
// ports, SEQ, ACK, flags and length (in order, for repeats).
func (r *labRun) stop() {
	pkts, err := r.cap.Stop()
	if err != nil {
		r.env.Check("capture read", false, "%v", err)
	}
	r.pkts = pkts
	type key struct {
		sent         bool
		lport, rport uint16
		seq, ack     uint32
		flags        uint8
		n            int
	}
	queue := map[key][]*Record{}
	recs := r.st.Records()
	for i := range recs {
		rec := &recs[i]
		if notOnWire(rec) {
			continue // never on the wire as the lab saw it
		}
		k := key{rec.Sent, rec.Seg.DstPort, rec.Seg.SrcPort, uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), uint8(rec.Seg.Flags) & 0x3f, rec.Seg.Len}
		if rec.Sent {
			k.lport, k.rport = rec.Seg.SrcPort, rec.Seg.DstPort
		}
		queue[k] = append(queue[k], rec)
	}
	lc := r.st.Link().Config()
	matched, unmatched := 0, 0
	var missing []string
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok {
			continue
		}
		sent := m.Src.Addr() == lc.Addr && m.Src.Port() >= lc.PortMin && m.Src.Port() <= lc.PortMax
		k := key{sent, m.Dst.Port(), m.Src.Port(), m.Seq, m.Ack, m.Flags, len(m.Payload)}
		if sent {
			k.lport, k.rport = m.Src.Port(), m.Dst.Port()
		}
		q := queue[k]
		if len(q) == 0 {
			unmatched++
			if len(missing) < 5 {
				missing = append(missing, fmt.Sprintf("%v→%v seq=%d ack=%d flags=%#x len=%d", m.Src, m.Dst, m.Seq, m.Ack, m.Flags, len(m.Payload)))
			}
			continue
		}
		rec := q[0]
		queue[k] = q[1:]
		p.Comment(rec.Comment())
		if rec.Peer != "" {
			p.Comment("kernel " + rec.Peer)
		}
		matched++
	}
	r.env.Check("every captured lab segment is commented with the lab's state", matched > 0 && unmatched == 0,
		"%d of %d packets matched to the driver's records%s", matched, matched+unmatched, listSuffix(missing))
	r.env.Metric("kernel_rsts_suppressed_count", float64(r.st.Link().SuppressedRSTs()))
	r.env.Metric("captured_packets_count", float64(len(pkts)))
}

// notOnWire: records of segments the link dropped or held (a held segment
// has a second record when it is released).
func notOnWire(rec *Record) bool {
	return strings.HasPrefix(rec.Note, "dropped") || strings.HasPrefix(rec.Note, "lost") ||
		strings.HasPrefix(rec.Note, "held") || rec.Seg.SrcPort == 0
}

func listSuffix(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return "; unmatched: " + strings.Join(s, "; ")
}

// ladder draws one connection's segments as the lab recorded them, with
// the lab's state and the kernel's (from /proc/net/tcp) beside each.
func (r *labRun) ladder(title string, c *Conn) { r.ladderN(title, c, 0, 0, nil) }

// ladderN is ladder keeping only the first head and last tail segments of
// a long exchange and those keep selects (0, 0: all); the rest collapse
// into "… n segments …" rows.
func (r *labRun) ladderN(title string, c *Conn, head, tail int, keep func(*Record) bool) {
	if c == nil {
		return
	}
	l := r.env.Ladder(title+" (sequence numbers relative to each side's ISN)", "lab (tcpstate)", "kernel")
	tcb := c.TCB()
	iss, irs := tcb.ISS, tcb.IRS
	var rows []lab.Rung
	var kept []bool
	prev := ""
	recs := r.st.Records()
	for i := range recs {
		rec := &recs[i]
		if rec.Conn != c.ID() && !(rec.Conn == 0 && (rec.Seg.SrcPort == c.lport || rec.Seg.DstPort == c.lport) &&
			(rec.Seg.SrcPort == c.rport || rec.Seg.DstPort == c.rport)) {
			continue
		}
		labState := rec.State.String()
		if rec.Seg.SrcPort == 0 { // a note, not a segment
			rows = append(rows, lab.Rung{LeftState: labState + " (" + rec.Note + ")", RightState: rec.Peer})
			kept = append(kept, true)
			continue
		}
		kept = append(kept, keep != nil && keep(rec))
		label := rec.relLabel(iss, irs)
		switch {
		case strings.HasPrefix(rec.Note, "dropped"), strings.HasPrefix(rec.Note, "lost"):
			label = "✗ " + label + " (lost)"
		case rec.Note != "":
			label += " (" + rec.Note + ")"
		}
		if !rec.Sent && rec.Before != rec.State && prev != rec.Before.String() {
			labState = rec.Before.String() + "→" + labState
		}
		rows = append(rows, lab.Rung{Label: label, ToRight: rec.Sent, LeftState: labState, RightState: rec.Peer})
		prev = rec.State.String()
	}
	if head+tail > 0 && len(rows) > head+tail+1 {
		var out []lab.Rung
		skipped := 0
		for i, row := range rows {
			if i < head || i >= len(rows)-tail || kept[i] {
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
