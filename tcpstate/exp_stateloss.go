package tcpstate

import (
	"errors"
	"io"
	"syscall"
	"time"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "tcp/state-loss",
		Summary: "one side forgets the connection: the lab crashes (kernel gets ECONNRESET), the kernel aborts (lab goes CLOSED)",
		Shows: "TCP state lives only in the two endpoints: when the lab forgets its TCB (a crash and restart), the " +
			"kernel's next segment meets a CLOSED endpoint, is answered with RST and the kernel socket reports " +
			"ECONNRESET; when the kernel aborts (SO_LINGER 0) its RST takes the lab from ESTABLISHED to CLOSED.",
		Run: runStateLoss,
	})
}

func runStateLoss(env *lab.Env) error {
	r, err := newLabRun(env, expConfig())
	if err != nil {
		return err
	}
	ctx := env.Ctx
	kp, err := listenKernel(ctx, 0)
	if err != nil {
		return err
	}
	defer kp.Close()

	// 1. The lab crashes and restarts: the TCB is gone, the port answers
	// as CLOSED.
	crash, err := r.st.Dial(ctx, kp.addr, nil)
	r.track(crash, "lab crash")
	if err != nil {
		return err
	}
	k, err := kp.accept(ctx)
	if err != nil {
		return err
	}
	defer k.Close()
	_ = k.SetDeadline(deadline(ctx, 5*time.Second))
	if _, err := k.Write([]byte("hello")); err != nil {
		return err
	}
	b := make([]byte, 16)
	if _, err := io.ReadFull(crash, b[:5]); err != nil {
		return err
	}
	before := crash.TCB()
	crash.Forget()
	_, werr := k.Write([]byte("are you there?"))
	_, rerr := k.Read(b)
	kst := KernelStateOr(kernelLocal(k), crash.Local())
	env.Check("after the lab forgets its TCB, the kernel's next segment draws a RST: its socket reports ECONNRESET",
		werr == nil && errors.Is(rerr, syscall.ECONNRESET), "kernel write: %v; kernel read: %v", werr, rerr)
	env.Check("the kernel's socket is gone", kst == "CLOSED", "kernel socket %s", kst)
	// The stack records the RST just after sending it, so the kernel may
	// report the reset a moment before the record exists.
	rstSeq := waitRecords(ctx, r.st, func(recs []Record) bool {
		for _, rec := range recs {
			if rec.Conn == 0 && rec.Sent && rec.Seg.Flags&RST != 0 && rec.Seg.Seq == before.SndNxt {
				return true
			}
		}
		return false
	}) == nil
	env.Check("the RST comes from the CLOSED port, at the sequence number the kernel expects", rstSeq,
		"a RST with SEQ = the forgotten SND.NXT %d (the kernel's ACK)", before.SndNxt)

	// 2. The kernel aborts: SO_LINGER 0 then close sends RST.
	victim, err := r.st.Dial(ctx, kp.addr, nil)
	r.track(victim, "kernel abort")
	if err != nil {
		return err
	}
	k2, err := kp.accept(ctx)
	if err != nil {
		return err
	}
	if err := k2.SetLinger(0); err != nil {
		return err
	}
	_ = k2.Close()
	if err := victim.WaitState(ctx, Closed); err != nil {
		return err
	}
	_, lerr := victim.ReadContext(ctx, b)
	env.Check("the kernel's abort takes the lab ESTABLISHED → CLOSED with connection reset", hasPath(victim, Established, Closed) && errors.Is(lerr, ErrConnectionReset),
		"%s; lab read: %v", path(victim), lerr)

	r.stop()
	r.ladder("the lab forgets its TCB", crash)
	r.ladder("the kernel aborts", victim)
	r.states(Established, Closed)
	return nil
}
