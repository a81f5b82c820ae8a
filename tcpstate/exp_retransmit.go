package tcpstate

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "tcp/retransmit",
		Summary: "lost and reordered segments between the engine and the kernel: RTO with backoff, the kernel's retransmission, fast retransmit",
		Shows: "The link drops a lab segment twice and the engine retransmits it after one RTO and then after twice that " +
			"(RFC 6298 backoff); a withheld lab ACK makes the kernel retransmit; a segment held back on the link " +
			"reaches the kernel out of order, the kernel answers with duplicate ACKs and the third triggers the " +
			"engine's fast retransmit (RFC 5681).",
		Run: runRetransmit,
	})
}

func runRetransmit(env *lab.Env) error {
	cfg := expConfig()
	cfg.MSS = 1000
	cfg.InitialWindow = 10
	r, err := newLabRun(env, cfg)
	if err != nil {
		return err
	}
	ctx := env.Ctx
	kp, err := listenKernel(ctx, 0)
	if err != nil {
		return err
	}
	defer kp.Close()
	dial := func(label string, opts *ConnOptions) (*Conn, net.Conn, error) {
		c, err := r.st.Dial(ctx, kp.addr, opts)
		r.track(c, label)
		if err != nil {
			return nil, nil, err
		}
		k, err := kp.accept(ctx)
		if err != nil {
			return nil, nil, err
		}
		env.Cleanup(func() { k.Close() })
		_ = k.SetDeadline(deadline(ctx, 10*time.Second))
		return c, k, nil
	}
	acked := func(c *Conn) error {
		return c.WaitTCB(ctx, func(t *TCB) bool { return t.SndUna == t.SndNxt })
	}
	kernelRead := func(k net.Conn, n int) error {
		_, err := io.ReadFull(k, make([]byte, n))
		return err
	}

	// 1. RTO and backoff: the first two transmissions of a segment are lost.
	drops := 0
	rto, k1, err := dial("RTO", &ConnOptions{Hook: func(s *Segment, t *TCB) Verdict {
		if len(s.Payload) > 0 && drops < 2 {
			drops++
			return Drop
		}
		return Pass
	}})
	if err != nil {
		return err
	}
	if _, err := rto.WriteContext(ctx, make([]byte, 100)); err != nil {
		return err
	}
	if err := kernelRead(k1, 100); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	if err := acked(rto); err != nil {
		return err
	}
	var times []time.Duration
	for _, rec := range r.st.Records() {
		if rec.Conn == rto.ID() && rec.Sent && rec.Seg.Len > 0 {
			times = append(times, rec.At)
		}
	}
	ok := len(times) == 3
	var g1, g2 time.Duration
	if ok {
		g1, g2 = times[1]-times[0], times[2]-times[1]
		ratio := float64(g2) / float64(g1)
		ok = g1 >= cfg.MinRTO && ratio > 1.5 && ratio < 3
	}
	env.Check("RTO: the lost segment is resent after one RTO, then after twice that", ok,
		"%d transmissions; gaps %v then %v (MinRTO %v)", len(times), g1, g2, cfg.MinRTO)
	env.Metric("rto_first_gap_ms", float64(g1.Microseconds())/1000)
	env.Metric("rto_second_gap_ms", float64(g2.Microseconds())/1000)

	// 2. A withheld ACK: the lab's ACK of the kernel's data is lost, so the
	// kernel retransmits it.
	withheld := false
	wack, k2, err := dial("withheld ACK", nil)
	if err != nil {
		return err
	}
	irs := wack.TCB().RcvNxt
	wack.SetHook(func(s *Segment, t *TCB) Verdict {
		if !withheld && s.Flags == ACK && len(s.Payload) == 0 && s.Ack == irs.Add(100) {
			withheld = true
			return Drop
		}
		return Pass
	})
	if _, err := k2.Write(make([]byte, 100)); err != nil {
		return err
	}
	if _, err := io.ReadFull(wack, make([]byte, 100)); err != nil {
		return err
	}
	// Wait for the kernel's retransmission and the lab's second ACK.
	if err := waitRecords(ctx, r.st, func(recs []Record) bool {
		n := 0
		for _, rec := range recs {
			if rec.Conn == wack.ID() && !rec.Sent && rec.Seg.Len == 100 {
				n++
			}
		}
		return n >= 2
	}); err != nil {
		return fmt.Errorf("waiting for the kernel's retransmission: %w", err)
	}
	var kt []time.Duration
	for _, rec := range r.st.Records() {
		if rec.Conn == wack.ID() && !rec.Sent && rec.Seg.Len == 100 {
			kt = append(kt, rec.At)
		}
	}
	env.Check("withheld ACK: the kernel retransmits its data", len(kt) >= 2, "the kernel sent its 100 bytes %d times, the second %v after the first", len(kt), kt[len(kt)-1]-kt[0])
	env.Metric("kernel_retransmit_after_ms", float64((kt[len(kt)-1]-kt[0]).Microseconds())/1000)

	// 3. Reordering: the first of six segments is parked on the link while
	// the other five overtake it.
	parked := false
	var fr *Conn
	fr, k3, err := dial("fast retransmit", &ConnOptions{Hook: func(s *Segment, t *TCB) Verdict {
		if !parked && len(s.Payload) > 0 {
			parked = true
			return Park
		}
		return Pass
	}})
	if err != nil {
		return err
	}
	first := fr.TCB().SndNxt
	if _, err := fr.WriteContext(ctx, make([]byte, 6000)); err != nil {
		return err
	}
	if err := kernelRead(k3, 6000); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	if err := acked(fr); err != nil {
		return err
	}
	fr.Release() // the parked original arrives late
	dup, rtxAfterDup, rtxAt := 0, 0, time.Duration(0)
	var firstSent time.Duration
	var prevWin uint16
	for _, rec := range r.st.Records() {
		if rec.Conn != fr.ID() {
			continue
		}
		switch {
		case rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq == first && firstSent == 0:
			firstSent = rec.At
		case rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq == first && rtxAt == 0 && rec.Note == "":
			rtxAt, rtxAfterDup = rec.At, dup
		case !rec.Sent && rec.Seg.Len == 0 && rec.Seg.Ack == first && rec.Seg.Flags == ACK && rec.Seg.Window == prevWin:
			dup++ // RFC 5681: same ACK, same window, nothing else
		}
		if !rec.Sent {
			prevWin = rec.Seg.Window
		}
	}
	env.Check("reordering: the kernel sends duplicate ACKs and the third triggers fast retransmit (an ACK that moves the window is no duplicate)", dup >= 3 && rtxAfterDup == 3 && rtxAt-firstSent < rto.TCB().RTO+cfg.MinRTO,
		"%d duplicate ACKs; retransmitted after %d of them, %v after the original (RTO %v)", dup, rtxAfterDup, rtxAt-firstSent, fr.TCB().RTO)
	env.Metric("duplicate_acks_count", float64(dup))

	for _, c := range []*Conn{rto, wack, fr} {
		_ = c.Abort()
	}
	r.stop()
	r.ladder("RTO with backoff: the link drops the lab's segment twice", rto)
	r.ladder("withheld ACK: the kernel retransmits", wack)
	r.ladder("out-of-order delivery: duplicate ACKs and fast retransmit", fr)
	r.states(Established, Closed)
	return nil
}

// waitRecords polls the stack's records until cond holds, every 10ms for at
// most 1000 rounds (records have no event of their own).
func waitRecords(ctx interface {
	Done() <-chan struct{}
	Err() error
}, s *Stack, cond func([]Record) bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for range 1000 {
		if cond(s.Records()) {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return ErrDeadline
}
