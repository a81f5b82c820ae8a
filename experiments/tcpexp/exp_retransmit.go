package tcpexp

import (
	"fmt"
	"io"
	"net"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/retransmit: three connections, each with one fault on the lab's
// link — a segment dropped twice (RTO and backoff), the lab's ACK
// withheld (the kernel retransmits), a segment parked while five overtake
// it (duplicate ACKs and fast retransmit).
func runRetransmit(env *lab.Env) error {
	cfg := labConfig(env)
	cfg.MSS = 1000
	cfg.InitialWindow = 10
	r, kp, err := newKernelRun(env, cfg, 0)
	if err != nil {
		return err
	}
	x := &retransmits{labRun: r, kp: kp, cfg: cfg}
	// The RTO connection alone runs with a 50 ms MinRTO, so the backoff
	// shows in well under a second; the others keep the 200 ms of every
	// experiment, so that nothing but the intended loss is retransmitted.
	rtoCfg := cfg
	rtoCfg.MinRTO = 50 * time.Millisecond
	env.Shortened("MinRTO", rtoCfg.MinRTO, time.Second, "RFC 6298 §2.4")
	rto, err := x.rtoBackoff(rtoCfg)
	if err != nil {
		return err
	}
	wack, err := x.withheldACK()
	if err != nil {
		return err
	}
	fr, err := x.fastRetransmit()
	if err != nil {
		return err
	}
	for _, c := range []*rawtcp.Conn{rto, wack, fr} {
		_ = c.Abort()
	}
	r.stop()
	r.ladder("RTO with backoff: the link drops the lab's segment twice", rto)
	r.ladder("withheld ACK: the kernel retransmits", wack)
	r.ladder("out-of-order delivery: duplicate ACKs and fast retransmit", fr)
	r.feature(featureRTO, featureFastRetx)
	r.states(tcpstate.Established, tcpstate.Closed)
	return nil
}

// retransmits is tcp/retransmit's lab and kernel listener.
type retransmits struct {
	*labRun
	kp  *kernelPeer
	cfg tcpstate.Config
}

func (x *retransmits) dial(label string, opts *rawtcp.ConnOptions) (*rawtcp.Conn, net.Conn, error) {
	return x.connectKernel(x.env.Ctx, x.kp, label, opts, 10*time.Second)
}

// acked waits until everything the lab sent is acknowledged.
func (x *retransmits) acked(c *rawtcp.Conn) error {
	return c.WaitTCB(x.env.Ctx, func(t *tcpstate.TCB) bool { return t.SndUna == t.SndNxt })
}

func kernelRead(k net.Conn, n int) error {
	_, err := io.ReadFull(k, make([]byte, n))
	return err
}

// rtoBackoff: the first two transmissions of a segment are lost; the
// engine resends it after one RTO, then after twice that.
func (x *retransmits) rtoBackoff(rtoCfg tcpstate.Config) (*rawtcp.Conn, error) {
	drops := 0
	rto, k, err := x.dial("RTO", &rawtcp.ConnOptions{Config: &rtoCfg, SendHook: func(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
		if len(s.Payload) > 0 && drops < 2 {
			drops++
			return rawtcp.Drop
		}
		return rawtcp.Pass
	}})
	if err != nil {
		return nil, err
	}
	if _, err := rto.WriteContext(x.env.Ctx, make([]byte, 100)); err != nil {
		return nil, err
	}
	if err := kernelRead(k, 100); err != nil {
		return nil, fmt.Errorf("kernel read: %w", err)
	}
	if err := x.acked(rto); err != nil {
		return nil, err
	}
	// The backoff is checked on the engine's own timer values: the TCB
	// beside each transmission holds the RTO the retransmission timer was
	// armed with. Wall-clock gaps are reported, not judged: on a loaded
	// machine a timer fires late, never early.
	times, rtos := dataTransmissions(x.st.Records(), rto.ID())
	ok := len(times) == 3
	var g1, g2 time.Duration
	if ok {
		g1, g2 = times[1]-times[0], times[2]-times[1]
		ok = rtos[0] >= rtoCfg.MinRTO && rtos[1] == min(2*rtos[0], rtoCfg.MaxRTO) && rtos[2] == min(2*rtos[1], rtoCfg.MaxRTO)
	}
	x.env.Check("RTO: the lost segment is resent after one RTO, then after twice that (the engine's timer doubles)", ok,
		"%d transmissions armed with RTO %v; wall-clock gaps %v then %v (MinRTO %v)", len(times), rtos, g1, g2, rtoCfg.MinRTO)
	if len(rtos) > 0 {
		x.env.Metric("rto_initial_ms", float64(rtos[0].Microseconds())/1000)
	}
	x.env.Metric("rto_first_gap_ms", float64(g1.Microseconds())/1000)
	x.env.Metric("rto_second_gap_ms", float64(g2.Microseconds())/1000)
	return rto, nil
}

// dataTransmissions lists when connection id sent data and the RTO its
// engine had armed each time.
func dataTransmissions(recs []rawtcp.Record, id int) (times, rtos []time.Duration) {
	for _, rec := range recs {
		if rec.Conn == id && rec.Sent && rec.Seg.Len > 0 {
			times = append(times, rec.At)
			rtos = append(rtos, rec.TCB.RTO)
		}
	}
	return times, rtos
}

// withheldACK, as a probe: the lab's ACK of the kernel's data is lost on
// the link, so the kernel retransmits the data.
func (x *retransmits) withheldACK() (*rawtcp.Conn, error) {
	var k net.Conn
	p := &rawtcp.ProbeRun{Ctx: x.env.Ctx, Stack: x.st}
	err := rawtcp.Probe{
		{Name: "connect; the link will drop the lab's first ACK of data", Call: func(p *rawtcp.ProbeRun) error {
			c, kc, err := x.dial("withheld ACK", &rawtcp.ConnOptions{Observe: true})
			if err != nil {
				return err
			}
			p.Conn, k = c, kc
			dropped := false
			c.Faults().SetSendHook(func(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
				if !dropped && s.Flags == tcpstate.ACK && len(s.Payload) == 0 && s.Ack != t.IRS.Add(1) {
					dropped = true
					return rawtcp.Drop
				}
				return rawtcp.Pass
			})
			p.Drain() // the handshake
			return nil
		}},
		{Name: "the kernel writes 100 bytes", Call: func(p *rawtcp.ProbeRun) error {
			_, err := k.Write(make([]byte, 100))
			return err
		}},
		{Name: "the kernel's data", Expect: &rawtcp.Expect{Flags: tcpstate.ACK, Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
			if len(s.Payload) != 100 {
				return fmt.Errorf("len %d, want 100", len(s.Payload))
			}
			return nil
		}}},
		{Name: "the kernel retransmits it", Expect: &rawtcp.Expect{Flags: tcpstate.ACK, Within: 5 * time.Second, Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
			if len(s.Payload) != 100 || s.Seq != t.IRS.Add(1) {
				return fmt.Errorf("len %d seq %d, want the same 100 bytes at %d", len(s.Payload), s.Seq, t.IRS.Add(1))
			}
			return nil
		}}},
		{Name: "the lab reads the 100 bytes once and the connection is quiet", Call: func(p *rawtcp.ProbeRun) error {
			b := make([]byte, 200)
			n, err := p.Conn.ReadContext(p.Ctx, b)
			if err != nil || n != 100 {
				return fmt.Errorf("lab read %d bytes, %v; want 100", n, err)
			}
			return nil
		}},
	}.Run(p)
	var kt []time.Duration
	for _, l := range p.Log {
		if l.Got != nil {
			kt = append(kt, l.At)
		}
	}
	after := time.Duration(0)
	if len(kt) >= 2 {
		after = kt[1] - kt[0]
	}
	x.env.Check("withheld ACK: the kernel retransmits its data", err == nil, "%v", errOr(err, fmt.Sprintf("the kernel's 100 bytes came again %v after the first copy", after)))
	x.env.Metric("kernel_retransmit_after_ms", float64(after.Microseconds())/1000)
	if p.Conn == nil {
		return nil, fmt.Errorf("withheld ACK probe: %w", err)
	}
	return p.Conn, nil
}

// fastRetransmit: the first of six segments is parked on the link while
// the other five overtake it; the kernel's third duplicate ACK makes the
// engine retransmit it before its RTO.
func (x *retransmits) fastRetransmit() (*rawtcp.Conn, error) {
	parked := false
	// NewReno's rule, three duplicate ACKs: without SACK, since RFC 6675
	// may start recovery at the first duplicate that SACKs enough data
	// (tcp/sack shows that).
	noSACK := x.cfg
	noSACK.DisableSACK = true
	fr, k, err := x.dial("fast retransmit", &rawtcp.ConnOptions{Config: &noSACK, SendHook: func(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
		if !parked && len(s.Payload) > 0 {
			parked = true
			return rawtcp.Park
		}
		return rawtcp.Pass
	}})
	if err != nil {
		return nil, err
	}
	first := fr.TCB().SndNxt
	if _, err := fr.WriteContext(x.env.Ctx, make([]byte, 6000)); err != nil {
		return nil, err
	}
	if err := kernelRead(k, 6000); err != nil {
		return nil, fmt.Errorf("kernel read: %w", err)
	}
	if err := x.acked(fr); err != nil {
		return nil, err
	}
	fr.Faults().Release() // the parked original arrives late
	d := countDupACKs(x.st.Records(), fr.ID(), first)
	x.env.Check("reordering: the kernel sends duplicate ACKs and the third triggers fast retransmit (an ACK that moves the window is no duplicate)", d.dup >= 3 && d.rtxAfterDup == 3,
		"%d duplicate ACKs; retransmitted after %d of them (an RTO would have come first with fewer), %v after the original (RTO %v)", d.dup, d.rtxAfterDup, d.rtxAt-d.firstSent, fr.TCB().RTO)
	x.env.Metric("duplicate_acks_count", float64(d.dup))
	return fr, nil
}

// dupACKs is what the records of a fast retransmission show.
type dupACKs struct {
	dup         int           // duplicate ACKs of the first segment
	rtxAfterDup int           // how many had come when it was retransmitted
	firstSent   time.Duration // its first transmission
	rtxAt       time.Duration // its retransmission (0: none)
}

// countDupACKs counts, in connection id's records, the kernel's duplicate
// ACKs of the segment at first (RFC 5681: the same ACK and window, no data,
// nothing else) and when the lab retransmitted that segment. A copy the
// link released late (a note) is not the retransmission.
func countDupACKs(recs []rawtcp.Record, id int, first tcpstate.Seq) dupACKs {
	var d dupACKs
	var prevWin uint16
	for _, rec := range recs {
		if rec.Conn != id {
			continue
		}
		switch {
		case rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq == first && d.firstSent == 0:
			d.firstSent = rec.At
		case rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq == first && d.rtxAt == 0 && rec.Note == "":
			d.rtxAt, d.rtxAfterDup = rec.At, d.dup
		case !rec.Sent && rec.Seg.Len == 0 && rec.Seg.Ack == first && rec.Seg.Flags == tcpstate.ACK && rec.Seg.Window == prevWin:
			d.dup++
		}
		if !rec.Sent {
			prevWin = rec.Seg.Window
		}
	}
	return d
}
