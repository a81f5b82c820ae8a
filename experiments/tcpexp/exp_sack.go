package tcpexp

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/sack: a ten-segment burst each way loses its 7th and 9th segments on
// the lab's link. Lab → kernel: the kernel's duplicate ACKs carry SACK
// blocks (two: too few for fast retransmit), the lab's retransmission
// timer fires, and the go-back-N skips what the kernel SACKed — against
// the same loss without SACK (NewReno), where the 10th segment goes again.
// Kernel → lab: the lab's duplicate ACKs carry SACK blocks and the kernel
// recovers from them, against the same loss without SACK. Then the lab's
// burst loses its 3rd and 5th segments: enough duplicate ACKs follow for
// loss recovery, and with SACK (RFC 6675) both holes are resent within one
// round trip, where NewReno resends the second only after the partial ACK
// of the first. Every transfer is compared byte for byte.

// sackBurst is the burst's length in segments (the initial window);
// tailLoss and earlyLoss are the segments lost once, counted from 1.
const sackBurst = 10

var (
	tailLoss  = []int{7, 9}
	earlyLoss = []int{3, 5}
)

func runSACK(env *lab.Env) error {
	cfg := labConfig(env)
	cfg.MSS = 1000
	cfg.InitialWindow = sackBurst
	if err := noLoopbackOffload(env); err != nil {
		return &lab.EnvError{What: "turning segmentation offload off on lo", Err: err,
			Remedy: "run inside the statelab sandbox, which gives the lab CAP_NET_ADMIN in its own network namespace"}
	}
	r, kp, err := newKernelRun(env, cfg, 0)
	if err != nil {
		return err
	}
	x := &sackRun{labRun: r, kp: kp, cfg: cfg}
	var legs []*sackLeg
	for _, l := range []*sackLeg{
		{label: "lab → kernel with SACK", labSends: true, sack: true, lost: tailLoss},
		{label: "lab → kernel without SACK (NewReno)", labSends: true, lost: tailLoss},
		{label: "kernel → lab with SACK", sack: true, lost: tailLoss},
		{label: "kernel → lab without SACK", lost: tailLoss},
		{label: "lab → kernel, fast recovery with SACK", labSends: true, sack: true, lost: earlyLoss},
		{label: "lab → kernel, fast recovery without SACK (NewReno)", labSends: true, lost: earlyLoss},
	} {
		if err := x.run(l); err != nil {
			return fmt.Errorf("%s: %w", l.label, err)
		}
		legs = append(legs, l)
	}
	for _, l := range legs {
		_ = l.c.Abort()
	}
	r.stop()
	x.judge(legs)
	for _, l := range legs {
		r.ladder(fmt.Sprintf("%s: segments %d and %d of the burst lost once", l.label, l.lost[0], l.lost[1]), l.c)
	}
	r.states(tcpstate.Established, tcpstate.Closed)
	r.feature(featureSACK)
	return nil
}

// sackRun is tcp/sack's lab and kernel listener.
type sackRun struct {
	*labRun
	kp  *kernelPeer
	cfg tcpstate.Config
}

// sackLeg is one burst: who sends, with SACK or without, and what came of
// it.
type sackLeg struct {
	label    string
	labSends bool
	sack     bool
	lost     []int // the burst's segments lost once, counted from 1

	c        *rawtcp.Conn
	sent     []byte
	got      []byte
	sackOK   bool // both SYNs carried SACK-permitted
	segLen   int
	resentAt []tcpstate.Seq
}

// lossHook loses the first transmission of the burst's segments in lost,
// counting new data segments as they pass (sent by the lab, or arriving
// from the kernel).
func lossHook(lost []int) rawtcp.Hook {
	n := 0
	var next tcpstate.Seq
	started := false
	return func(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
		if len(s.Payload) == 0 {
			return rawtcp.Pass
		}
		if started && s.Seq.LessThan(next) {
			return rawtcp.Pass // a retransmission
		}
		started, next = true, s.Seq.Add(tcpstate.Size(len(s.Payload)))
		n++
		if slices.Contains(lost, n) {
			return rawtcp.Drop
		}
		return rawtcp.Pass
	}
}

// run opens the leg's connection and sends its burst, waiting until every
// byte has been read and acknowledged.
func (x *sackRun) run(l *sackLeg) error {
	cfg := x.cfg
	cfg.DisableSACK = !l.sack
	opts := &rawtcp.ConnOptions{Config: &cfg}
	if l.labSends {
		opts.SendHook = lossHook(l.lost)
	} else {
		opts.RecvHook = lossHook(l.lost)
	}
	c, k, err := x.connectKernel(x.env.Ctx, x.kp, l.label, opts, 20*time.Second)
	if err != nil {
		return err
	}
	l.c = c
	t := c.TCB()
	l.sackOK = t.SACKOK
	// One burst of exactly sackBurst full segments: the MSS less the
	// timestamps option when it is on (both ends advertise 1000 or more).
	l.segLen = int(t.SndMSS)
	if t.TSOK {
		l.segLen -= 12
	}
	l.sent = make([]byte, sackBurst*l.segLen)
	if _, err := io.ReadFull(x.env.Bytes("burst "+l.label), l.sent); err != nil {
		return err
	}
	l.got = make([]byte, len(l.sent))
	if l.labSends {
		if _, err := c.WriteContext(x.env.Ctx, l.sent); err != nil {
			return fmt.Errorf("lab write: %w", err)
		}
		if _, err := io.ReadFull(k, l.got); err != nil {
			return fmt.Errorf("kernel read: %w", err)
		}
		return c.WaitTCB(x.env.Ctx, func(t *tcpstate.TCB) bool { return t.SndUna == t.SndNxt })
	}
	if _, err := k.Write(l.sent); err != nil {
		return fmt.Errorf("kernel write: %w", err)
	}
	n := 0
	for n < len(l.got) {
		m, err := c.ReadContext(x.env.Ctx, l.got[n:])
		if err != nil {
			return fmt.Errorf("lab read after %d bytes: %w", n, err)
		}
		n += m
	}
	return nil
}

// rtxStats is what one direction of a connection retransmitted and how
// many of its segments carried SACK blocks on the wire.
type rtxStats struct {
	dataSegs, resentSegs, resentBytes int
	resent                            []tcpstate.Seq
	sackSegs                          int // segments the other way with SACK blocks, captured
	resentSACKed                      int // resent octets the other side had SACKed before
}

// retransmissions reads the records idx names, in that order (judge gives
// them in wire order, see wireOrder), for the data sent in one
// direction (sent: the lab's; else the kernel's): a segment starting below
// the highest sequence number sent before is a retransmission. It also
// counts the other direction's segments with SACK blocks that reached the
// capture (captured(i) for record i), and how many resent octets those
// blocks had already covered.
func retransmissions(recs []rawtcp.Record, idx []int, sent bool, captured func(int) bool) rtxStats {
	var st rtxStats
	var maxEnd tcpstate.Seq
	started := false
	var sacked []tcpstate.SACKBlock
	for _, i := range idx {
		rec := &recs[i]
		s := &rec.Seg
		if rec.Sent != sent {
			if s.NumSACK > 0 && captured(i) {
				st.sackSegs++
				sacked = append(sacked, s.SACKBlocks()...)
			}
			continue
		}
		if s.Len == 0 {
			continue
		}
		end := s.Seq.Add(tcpstate.Size(s.Len))
		st.dataSegs++
		if started && s.Seq.LessThan(maxEnd) {
			st.resentSegs++
			st.resentBytes += s.Len
			st.resent = append(st.resent, s.Seq)
			for _, b := range sacked {
				lo, hi := tcpstate.MaxSeq(b.Left, s.Seq), tcpstate.MinSeq(b.Right, end)
				if lo.LessThan(hi) {
					st.resentSACKed += int(lo.Size(hi))
				}
			}
		}
		if !started || maxEnd.LessThan(end) {
			maxEnd, started = end, true
		}
	}
	return st
}

// judge checks each leg and compares SACK with NewReno.
func (x *sackRun) judge(legs []*sackLeg) {
	env := x.env
	stats := make([]rtxStats, len(legs))
	rows := [][]string{{"burst", "SACK", "segments lost", "retransmitted", "SACK blocks on the wire", "resent octets already SACKed", "bytes exact"}}
	for i, l := range legs {
		captured := func(ri int) bool { _, ok := x.recPkt[ri]; return ok }
		when := func(ri int) (time.Time, bool) {
			pi, ok := x.recPkt[ri]
			if !ok {
				return time.Time{}, false
			}
			return x.pkts[pi].Time, true
		}
		// The kernel's resends are judged against the SACKs on the wire
		// before them (wire order); the lab's against the SACKs it had
		// read (its records' order): it can act only on what it has read.
		order := x.connRecs(l.c.ID())
		if !l.labSends {
			order = wireOrder(order, when)
		}
		st := retransmissions(x.recs, order, l.labSends, captured)
		stats[i] = st
		exact := bytes.Equal(l.sent, l.got)
		env.Check(l.label+": every byte arrives, byte for byte", exact, "sent %d bytes sha256 %s…, read %d bytes sha256 %s…",
			len(l.sent), sha8(l.sent), len(l.got), sha8(l.got))
		env.Check(l.label+": SACK negotiated as configured", l.sackOK == l.sack, "SACK-permitted on both SYNs: %v (lab offers it: %v)", l.sackOK, l.sack)
		who := "kernel's"
		if !l.labSends {
			who = "lab's"
		}
		if l.sack {
			env.Check(l.label+": the "+who+" duplicate ACKs carry SACK blocks on the wire", st.sackSegs > 0,
				"%d captured segments with SACK blocks", st.sackSegs)
			env.Check(l.label+": nothing the receiver SACKed is sent again", st.resentSACKed == 0,
				"%d retransmissions (%d bytes) at %v; %d of their octets had been SACKed before", st.resentSegs, st.resentBytes, x.relSeqs(l, st.resent), st.resentSACKed)
		} else {
			env.Check(l.label+": no SACK block on the wire", st.sackSegs == 0, "%d captured segments with SACK blocks", st.sackSegs)
		}
		rows = append(rows, []string{l.label, fmt.Sprint(l.sackOK), fmt.Sprint(l.lost),
			fmt.Sprintf("%d segments, %d bytes", st.resentSegs, st.resentBytes), fmt.Sprint(st.sackSegs), fmt.Sprint(st.resentSACKed), fmt.Sprint(exact)})
		env.Metric(metricName(l)+"_retransmitted_bytes", float64(st.resentBytes))
		env.Metric(metricName(l)+"_sack_segments_count", float64(st.sackSegs))
	}
	env.Table("retransmissions with and without SACK (measured from the lab's records of the captured segments)", rows)
	// The lab as sender: the loss leaves two duplicate ACKs, too few for
	// fast retransmit, so the retransmission timer recovers. With SACK the
	// go-back-N skips the SACKed 8th and 10th segments: exactly the two
	// lost are resent; NewReno resends the 10th too.
	seg := legs[0].segLen
	env.Check("lab → kernel: with SACK only the two lost segments are resent, without it (NewReno) the SACKed-in-vain 10th as well",
		stats[0].resentBytes == 2*seg && stats[1].resentBytes == 3*legs[1].segLen,
		"with SACK %d bytes (%d segments at %v), NewReno %d bytes (%d segments at %v); want %d and %d",
		stats[0].resentBytes, stats[0].resentSegs, x.relSeqs(legs[0], stats[0].resent),
		stats[1].resentBytes, stats[1].resentSegs, x.relSeqs(legs[1], stats[1].resent), 2*seg, 3*legs[1].segLen)
	env.Check("kernel → lab: the kernel resends no more with SACK than without", stats[2].resentBytes <= stats[3].resentBytes,
		"with SACK %d bytes (%d segments at %v), without %d bytes (%d segments at %v)",
		stats[2].resentBytes, stats[2].resentSegs, x.relSeqs(legs[2], stats[2].resent),
		stats[3].resentBytes, stats[3].resentSegs, x.relSeqs(legs[3], stats[3].resent))
	// Fast recovery: the same two holes resent either way; with SACK the
	// second goes before the ACK of the first's resend arrives.
	for _, c := range []struct {
		i          int
		wantBefore bool
	}{{4, true}, {5, false}} {
		i, wantBefore := c.i, c.wantBefore
		l := legs[i]
		o := x.recoveryOrder(l)
		ok := stats[i].resentBytes == 2*l.segLen && o.secondResent && o.secondBeforeAck == wantBefore
		how := "both holes resent in one round trip, the second before the ACK of the first's resend (RFC 6675: the SACK blocks mark it lost)"
		if !wantBefore {
			how = "the second hole resent only after the partial ACK of the first (RFC 6582: one hole per round trip)"
		}
		env.Check(l.label+": "+how, ok,
			"%d bytes resent (%d segments at %v); the second hole resent: %v, before the ACK of the first: %v; the lab in RFC 6675 recovery: %v",
			stats[i].resentBytes, stats[i].resentSegs, x.relSeqs(l, stats[i].resent), o.secondResent, o.secondBeforeAck, o.sackRecovery)
	}
}

// recoveryOrder is what a fast-recovery leg's records show: whether the
// second lost segment was resent, and before the ACK that covers the
// first; and whether the lab was in RFC 6675 recovery.
type recoveryOrder struct{ secondResent, secondBeforeAck, sackRecovery bool }

func (x *sackRun) recoveryOrder(l *sackLeg) recoveryOrder {
	base := l.c.TCB().ISS.Add(1)
	first := base.Add(tcpstate.Size((l.lost[0] - 1) * l.segLen))
	second := base.Add(tcpstate.Size((l.lost[1] - 1) * l.segLen))
	return recoveryOrderOf(x.recs, x.connRecs(l.c.ID()), first, second)
}

// recoveryOrderOf reads recoveryOrder from the records idx, the lost
// segments starting at first and second.
func recoveryOrderOf(recs []rawtcp.Record, idx []int, first, second tcpstate.Seq) recoveryOrder {
	var o recoveryOrder
	acked := false
	seen := map[tcpstate.Seq]int{}
	for _, i := range idx {
		r := &recs[i]
		o.sackRecovery = o.sackRecovery || r.TCB.InSACKRecovery
		switch {
		case !r.Sent && r.Seg.Flags&tcpstate.ACK != 0 && first.LessThan(r.Seg.Ack):
			acked = true
		case r.Sent && r.Seg.Len > 0 && r.Seg.Seq == second:
			seen[second]++
			if seen[second] == 2 && !o.secondResent {
				o.secondResent, o.secondBeforeAck = true, !acked
			}
		}
	}
	return o
}

// relSeqs renders sequence numbers relative to the sender's ISN+1, as
// segment numbers of the burst ("#7@5916").
func (x *sackRun) relSeqs(l *sackLeg, seqs []tcpstate.Seq) []string {
	t := l.c.TCB()
	base := t.IRS.Add(1)
	if l.labSends {
		base = t.ISS.Add(1)
	}
	var out []string
	for _, s := range seqs {
		off := int(base.Size(s))
		out = append(out, fmt.Sprintf("#%d@%d", off/max(l.segLen, 1)+1, off))
	}
	return out
}

// metricName is a leg's metric prefix, e.g. "lab_sends_sack".
func metricName(l *sackLeg) string {
	s := "kernel_sends"
	if l.labSends {
		s = "lab_sends"
	}
	if l.sack {
		return s + "_sack"
	}
	return s + "_newreno"
}

// wireOrder is idx stably sorted by when each record's segment crossed the
// loopback (when(i): its captured packet's time). A record with no packet
// keeps its place after the record before it. The lab handles segments in
// the order its raw socket reads them, which a busy machine can make later
// than the order they were sent in.
func wireOrder(idx []int, when func(int) (time.Time, bool)) []int {
	type keyed struct {
		i  int
		at time.Time
	}
	ks := make([]keyed, len(idx))
	var last time.Time
	for n, i := range idx {
		if t, ok := when(i); ok {
			last = t
		}
		ks[n] = keyed{i, last}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return a.at.Compare(b.at) })
	out := make([]int, len(ks))
	for n, k := range ks {
		out[n] = k.i
	}
	return out
}
