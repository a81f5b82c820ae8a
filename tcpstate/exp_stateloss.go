package tcpstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/state-loss",
		Summary: "one side forgets the connection: the lab crashes (kernel gets ECONNRESET), the kernel aborts (lab goes CLOSED)",
		Shows: "TCP state lives only in the two endpoints: when the lab forgets its TCB (a crash and restart), the " +
			"kernel's next segment meets a CLOSED endpoint, is answered with RST and the kernel socket reports " +
			"ECONNRESET; when the kernel aborts (SO_LINGER 0) its RST takes the lab from ESTABLISHED to CLOSED.",
		Run: runStateLoss,
	})
}

func runStateLoss(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	ctx := env.Ctx
	kp, err := listenKernel(ctx, 0)
	if err != nil {
		return err
	}
	defer kp.Close()
	var k *net.TCPConn // the kernel's socket of the current probe
	connect := func(label string) Step {
		return Step{Name: "connect (" + label + ")", Call: func(p *ProbeRun) error {
			c, err := p.Stack.Dial(p.Ctx, kp.addr, &ConnOptions{Observe: true})
			r.track(c, label)
			if err != nil {
				return err
			}
			k, err = kp.accept(p.Ctx)
			if err != nil {
				return err
			}
			env.Cleanup(func() { k.Close() })
			_ = k.SetDeadline(deadline(p.Ctx, 5*time.Second))
			p.Conn = c
			p.Drain() // the handshake
			return nil
		}}
	}
	b := make([]byte, 16)

	// 1. The lab crashes and restarts: the TCB is gone, the port answers
	// as CLOSED.
	var before TCB
	var kread error
	crash := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		connect("lab crash"),
		{Name: "the kernel writes hello", Call: func(p *ProbeRun) error {
			_, err := k.Write([]byte("hello"))
			return err
		}},
		{Name: "the lab reads hello", Call: func(p *ProbeRun) error {
			_, err := io.ReadFull(p.Conn, b[:5])
			return err
		}},
		{Name: "the lab forgets its TCB (crash and restart)", Call: func(p *ProbeRun) error {
			before = p.Conn.TCB()
			p.Conn.Forget()
			return nil
		}},
		{Name: "the kernel writes again", Call: func(p *ProbeRun) error {
			_, err := k.Write([]byte("are you there?"))
			return err
		}},
		{Name: "the kernel's read reports ECONNRESET", Call: func(p *ProbeRun) error {
			_, kread = k.Read(b)
			if !errors.Is(kread, syscall.ECONNRESET) {
				return fmt.Errorf("kernel read: %v, want ECONNRESET", kread)
			}
			return nil
		}},
		{Name: "the kernel's socket is gone", Call: func(p *ProbeRun) error {
			if st := KernelStateOr(kernelLocal(k), p.Conn.Local()); st != "CLOSED" {
				return fmt.Errorf("kernel socket %s", st)
			}
			return nil
		}},
		// The stack records the RST just after sending it, so the kernel
		// may report the reset a moment before the record exists: wait
		// for the record (an event of the stack's, no polling).
		{Name: "the lab's CLOSED port sent RST at the forgotten SND.NXT", Call: func(p *ProbeRun) error {
			wctx, cancel := context.WithTimeout(p.Ctx, 5*time.Second)
			defer cancel()
			return p.Stack.WaitRecords(wctx, func(recs []Record) bool {
				for _, rec := range recs {
					if rec.Conn == 0 && rec.Sent && rec.Seg.Flags&RST != 0 && rec.Seg.Seq == before.SndNxt &&
						rec.Seg.SrcPort == p.Conn.Local().Port() {
						return true
					}
				}
				return false
			})
		}},
	}.Run(crash)
	env.Check("after the lab forgets its TCB, the kernel's next segment draws a RST from the CLOSED port (SEQ = the kernel's ACK): its socket reports ECONNRESET and is gone",
		err == nil, "%v", errOr(err, fmt.Sprintf("kernel read: %v; RST seq=%d", kread, before.SndNxt)))

	// 2. The kernel aborts: SO_LINGER 0 then close sends RST.
	var lerr error
	abort := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		connect("kernel abort"),
		{Name: "the kernel closes with SO_LINGER 0", Call: func(p *ProbeRun) error {
			if err := k.SetLinger(0); err != nil {
				return err
			}
			return k.Close()
		}},
		{Name: "the kernel's RST", Expect: &Expect{Flags: RST | ACK, Check: func(s *Segment, t *TCB) error {
			if t.State != Closed {
				return fmt.Errorf("lab in %v after the RST", t.State)
			}
			return nil
		}}},
		{Name: "the lab is CLOSED, its read reports the reset", Call: func(p *ProbeRun) error {
			if err := p.Conn.WaitState(p.Ctx, Closed); err != nil {
				return err
			}
			_, lerr = p.Conn.ReadContext(p.Ctx, b)
			if !errors.Is(lerr, ErrConnectionReset) {
				return fmt.Errorf("lab read: %v, want connection reset", lerr)
			}
			return nil
		}},
	}.Run(abort)
	victim := abort.Conn
	env.Check("the kernel's abort takes the lab ESTABLISHED → CLOSED with connection reset", err == nil && hasPath(victim, Established, Closed),
		"%v; %s", errOr(err, fmt.Sprintf("lab read: %v", lerr)), pathOr(victim))

	r.stop()
	for _, pr := range []*ProbeRun{crash, abort} {
		if pr.Conn != nil {
			r.ladder("probe: "+r.labels[pr.Conn.ID()], pr.Conn)
		}
		for _, l := range pr.Log {
			env.Logf("%s: %s ok=%v %s", r.labelOf(pr.Conn), l.Step, l.OK, l.Detail)
		}
	}
	r.states(Established, Closed)
	return nil
}

// pathOr is path for a connection that may not exist.
func pathOr(c *Conn) string {
	if c == nil {
		return "no connection"
	}
	return path(c)
}
