package tcpstate

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
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
	cfg := labConfig(env)
	cfg.MSS = 1000
	cfg.InitialWindow = 10
	// The RTO connection alone runs with a 50 ms MinRTO, so the backoff
	// shows in well under a second; the others keep the 200 ms of every
	// experiment, so that nothing but the intended loss is retransmitted.
	rtoCfg := cfg
	rtoCfg.MinRTO = 50 * time.Millisecond
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
		return r.connectKernel(ctx, kp, label, opts, 10*time.Second)
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
	rto, k1, err := dial("RTO", &ConnOptions{Config: &rtoCfg, Hook: func(s *Segment, t *TCB) Verdict {
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
	// The backoff is checked on the engine's own timer values: the TCB
	// beside each transmission holds the RTO the retransmission timer was
	// armed with. Wall-clock gaps are reported, not judged: on a loaded
	// machine a timer fires late, never early.
	var times, rtos []time.Duration
	for _, rec := range r.st.Records() {
		if rec.Conn == rto.ID() && rec.Sent && rec.Seg.Len > 0 {
			times = append(times, rec.At)
			rtos = append(rtos, rec.TCB.RTO)
		}
	}
	ok := len(times) == 3
	var g1, g2 time.Duration
	if ok {
		g1, g2 = times[1]-times[0], times[2]-times[1]
		ok = rtos[0] >= rtoCfg.MinRTO && rtos[1] == min(2*rtos[0], rtoCfg.MaxRTO) && rtos[2] == min(2*rtos[1], rtoCfg.MaxRTO)
	}
	env.Check("RTO: the lost segment is resent after one RTO, then after twice that (the engine's timer doubles)", ok,
		"%d transmissions armed with RTO %v; wall-clock gaps %v then %v (MinRTO %v)", len(times), rtos, g1, g2, rtoCfg.MinRTO)
	if len(rtos) > 0 {
		env.Metric("rto_initial_ms", float64(rtos[0].Microseconds())/1000)
	}
	env.Metric("rto_first_gap_ms", float64(g1.Microseconds())/1000)
	env.Metric("rto_second_gap_ms", float64(g2.Microseconds())/1000)

	// 2. A withheld ACK, as a probe: the lab's ACK of the kernel's data is
	// lost on the link, so the kernel retransmits the data.
	var k2 net.Conn
	withheld := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		{Name: "connect; the link will drop the lab's first ACK of data", Call: func(p *ProbeRun) error {
			c, k, err := dial("withheld ACK", &ConnOptions{Observe: true})
			if err != nil {
				return err
			}
			p.Conn, k2 = c, k
			dropped := false
			c.SetHook(func(s *Segment, t *TCB) Verdict {
				if !dropped && s.Flags == ACK && len(s.Payload) == 0 && s.Ack != t.IRS.Add(1) {
					dropped = true
					return Drop
				}
				return Pass
			})
			p.Drain() // the handshake
			return nil
		}},
		{Name: "the kernel writes 100 bytes", Call: func(p *ProbeRun) error {
			_, err := k2.Write(make([]byte, 100))
			return err
		}},
		{Name: "the kernel's data", Expect: &Expect{Flags: ACK, Check: func(s *Segment, t *TCB) error {
			if len(s.Payload) != 100 {
				return fmt.Errorf("len %d, want 100", len(s.Payload))
			}
			return nil
		}}},
		{Name: "the kernel retransmits it", Expect: &Expect{Flags: ACK, Within: 5 * time.Second, Check: func(s *Segment, t *TCB) error {
			if len(s.Payload) != 100 || s.Seq != t.IRS.Add(1) {
				return fmt.Errorf("len %d seq %d, want the same 100 bytes at %d", len(s.Payload), s.Seq, t.IRS.Add(1))
			}
			return nil
		}}},
		{Name: "the lab reads the 100 bytes once and the connection is quiet", Call: func(p *ProbeRun) error {
			b := make([]byte, 200)
			n, err := p.Conn.ReadContext(p.Ctx, b)
			if err != nil || n != 100 {
				return fmt.Errorf("lab read %d bytes, %v; want 100", n, err)
			}
			return nil
		}},
	}.Run(withheld)
	var kt []time.Duration
	for _, l := range withheld.Log {
		if l.Got != nil {
			kt = append(kt, l.At)
		}
	}
	after := time.Duration(0)
	if len(kt) >= 2 {
		after = kt[1] - kt[0]
	}
	env.Check("withheld ACK: the kernel retransmits its data", err == nil, "%v", errOr(err, fmt.Sprintf("the kernel's 100 bytes came again %v after the first copy", after)))
	env.Metric("kernel_retransmit_after_ms", float64(after.Microseconds())/1000)
	wack := withheld.Conn
	if wack == nil {
		return fmt.Errorf("withheld ACK probe: %w", err)
	}

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
	env.Check("reordering: the kernel sends duplicate ACKs and the third triggers fast retransmit (an ACK that moves the window is no duplicate)", dup >= 3 && rtxAfterDup == 3,
		"%d duplicate ACKs; retransmitted after %d of them (an RTO would have come first with fewer), %v after the original (RTO %v)", dup, rtxAfterDup, rtxAt-firstSent, fr.TCB().RTO)
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
