package tcpexp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/state-loss: two probes in which one end forgets the connection —
// the lab crashes and restarts, then the kernel aborts.
func runStateLoss(env *lab.Env) error {
	r, kp, err := newKernelRun(env, labConfig(env), 0)
	if err != nil {
		return err
	}
	x := &stateLoss{labRun: r, kp: kp}
	crash := x.labCrash()
	abort := x.kernelAbort()
	r.stop()
	for _, p := range []*rawtcp.ProbeRun{crash, abort} {
		if p.Conn != nil {
			r.ladder("probe: "+r.labelOf(p.Conn), p.Conn)
		}
		for _, l := range p.Log {
			env.Logf("%s: %s ok=%v %s", r.labelOf(p.Conn), l.Step, l.OK, l.Detail)
		}
	}
	r.states(tcpstate.Established, tcpstate.Closed)
	return nil
}

// stateLoss is tcp/state-loss's lab, kernel listener and the kernel's
// socket of the current probe.
type stateLoss struct {
	*labRun
	kp *kernelPeer
	k  *net.TCPConn
}

// connect is the step that dials the kernel listener, accepts the
// kernel's socket and drains the handshake from what the probe observed.
func (x *stateLoss) connect(label string) rawtcp.Step {
	return rawtcp.Step{Name: "connect (" + label + ")", Call: func(p *rawtcp.ProbeRun) error {
		c, k, err := x.connectKernel(p.Ctx, x.kp, label, &rawtcp.ConnOptions{Observe: true}, 5*time.Second)
		if err != nil {
			return err
		}
		x.k, p.Conn = k, c
		p.Drain() // the handshake
		return nil
	}}
}

// labCrash: the lab forgets its TCB (a crash and restart); its port
// answers the kernel's next segment as CLOSED, with a RST at the
// forgotten SND.NXT, and the kernel's socket reports ECONNRESET.
func (x *stateLoss) labCrash() *rawtcp.ProbeRun {
	var before tcpstate.TCB
	var kread error
	b := make([]byte, 16)
	p := &rawtcp.ProbeRun{Ctx: x.env.Ctx, Stack: x.st}
	err := rawtcp.Probe{
		x.connect("lab crash"),
		{Name: "the kernel writes hello", Call: func(p *rawtcp.ProbeRun) error {
			_, err := x.k.Write([]byte("hello"))
			return err
		}},
		{Name: "the lab reads hello", Call: func(p *rawtcp.ProbeRun) error {
			_, err := io.ReadFull(p.Conn, b[:5])
			return err
		}},
		{Name: "the lab forgets its TCB (crash and restart)", Call: func(p *rawtcp.ProbeRun) error {
			before = p.Conn.TCB()
			p.Conn.Faults().Crash()
			return nil
		}},
		{Name: "the kernel writes again", Call: func(p *rawtcp.ProbeRun) error {
			_, err := x.k.Write([]byte("are you there?"))
			return err
		}},
		{Name: "the kernel's read reports ECONNRESET", Call: func(p *rawtcp.ProbeRun) error {
			_, kread = x.k.Read(b)
			if !errors.Is(kread, syscall.ECONNRESET) {
				return fmt.Errorf("kernel read: %v, want ECONNRESET", kread)
			}
			return nil
		}},
		{Name: "the kernel's socket is gone", Call: func(p *rawtcp.ProbeRun) error {
			if st := rawtcp.KernelStateOr(kernelLocal(x.k), p.Conn.Local()); st != "CLOSED" {
				return fmt.Errorf("kernel socket %s", st)
			}
			return nil
		}},
		// The stack records the RST just after sending it, so the kernel
		// may report the reset a moment before the record exists: wait
		// for the record (an event of the stack's, no polling).
		{Name: "the lab's CLOSED port sent RST at the forgotten SND.NXT", Call: func(p *rawtcp.ProbeRun) error {
			wctx, cancel := context.WithTimeout(p.Ctx, 5*time.Second)
			defer cancel()
			return p.Stack.WaitRecords(wctx, func(recs []rawtcp.Record) bool {
				return closedPortRST(recs, p.Conn.Local().Port(), before.SndNxt)
			})
		}},
	}.Run(p)
	x.env.Check("after the lab forgets its TCB, the kernel's next segment draws a RST from the CLOSED port (SEQ = the kernel's ACK): its socket reports ECONNRESET and is gone",
		err == nil, "%v", errOr(err, fmt.Sprintf("kernel read: %v; RST seq=%d", kread, before.SndNxt)))
	return p
}

// closedPortRST reports whether the stack's CLOSED responder sent a RST
// from port with sequence number seq.
func closedPortRST(recs []rawtcp.Record, port uint16, seq tcpstate.Seq) bool {
	for _, rec := range recs {
		if rec.Conn == 0 && rec.Sent && rec.Seg.Flags&tcpstate.RST != 0 && rec.Seg.Seq == seq && rec.Seg.SrcPort == port {
			return true
		}
	}
	return false
}

// kernelAbort: the kernel closes with SO_LINGER 0, and its RST takes the
// lab ESTABLISHED → CLOSED with connection reset.
func (x *stateLoss) kernelAbort() *rawtcp.ProbeRun {
	var lerr error
	p := &rawtcp.ProbeRun{Ctx: x.env.Ctx, Stack: x.st}
	err := rawtcp.Probe{
		x.connect("kernel abort"),
		{Name: "the kernel closes with SO_LINGER 0", Call: func(p *rawtcp.ProbeRun) error {
			if err := x.k.SetLinger(0); err != nil {
				return err
			}
			return x.k.Close()
		}},
		{Name: "the kernel's RST", Expect: &rawtcp.Expect{Flags: tcpstate.RST | tcpstate.ACK, Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
			if t.State != tcpstate.Closed {
				return fmt.Errorf("lab in %v after the RST", t.State)
			}
			return nil
		}}},
		{Name: "the lab is CLOSED, its read reports the reset", Call: func(p *rawtcp.ProbeRun) error {
			if err := p.Conn.WaitState(p.Ctx, tcpstate.Closed); err != nil {
				return err
			}
			_, lerr = p.Conn.ReadContext(p.Ctx, make([]byte, 16))
			if !errors.Is(lerr, tcpstate.ErrConnectionReset) {
				return fmt.Errorf("lab read: %v, want connection reset", lerr)
			}
			return nil
		}},
	}.Run(p)
	victim := p.Conn
	x.env.Check("the kernel's abort takes the lab ESTABLISHED → CLOSED with connection reset", err == nil && hasPath(victim, tcpstate.Established, tcpstate.Closed),
		"%v; %s", errOr(err, fmt.Sprintf("lab read: %v", lerr)), pathOr(victim))
	return p
}
