package tcpstate

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/close",
		Summary: "active close (FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT) and passive close (CLOSE-WAIT, LAST-ACK) against the kernel",
		Shows: "The lab's engine closes a connection with the kernel first (FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED " +
			"after 2×MSL) and second (CLOSE-WAIT → LAST-ACK → CLOSED), the kernel's state beside each segment as the segments show it.",
		Run: runClose,
	})
}

func runClose(env *lab.Env) error {
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

	// Active close: the lab sends its FIN first. The kernel application
	// reads to EOF and closes only once the lab is in FIN-WAIT-2, so the
	// kernel's ACK of the lab's FIN and its own FIN come apart.
	active, k, err := r.connectKernel(ctx, kp, "active close", nil, 10*time.Second)
	if err != nil {
		return err
	}
	if err := active.Close(); err != nil {
		return err
	}
	if _, err := io.ReadAll(k); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	if err := active.WaitState(ctx, FinWait2); err != nil {
		return err
	}
	kFW2 := KernelStateOr(kernelLocal(k), active.Local())
	_ = k.Close()
	if err := active.WaitState(ctx, TimeWait); err != nil {
		return err
	}
	if err := active.WaitState(ctx, Closed); err != nil {
		return err
	}
	tw := timeIn(active, TimeWait)
	env.Check("active close: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED",
		hasPath(active, Established, FinWait1, FinWait2, TimeWait, Closed), "%s", path(active))
	env.Check("active close: the kernel was in CLOSE-WAIT while the lab waited in FIN-WAIT-2", kFW2 == "CLOSE-WAIT", "/proc/net/tcp: %s", kFW2)
	env.Check("active close: TIME-WAIT lasted 2×MSL", tw >= 2*expConfig().MSL, "%v in TIME-WAIT, 2×MSL = %v", tw, 2*expConfig().MSL)
	env.Metric("time_wait_ms", float64(tw.Microseconds())/1000)

	// Passive close: the kernel closes first.
	passive, k2, err := r.connectKernel(ctx, kp, "passive close", nil, 10*time.Second)
	if err != nil {
		return err
	}
	_ = k2.Close()
	if err := passive.WaitState(ctx, CloseWait); err != nil {
		return err
	}
	var b [8]byte
	n, rerr := passive.ReadContext(ctx, b[:])
	env.Check("passive close: the lab reads EOF in CLOSE-WAIT", n == 0 && errors.Is(rerr, io.EOF), "read %d bytes, %v", n, rerr)
	kFW := KernelStateOr(kernelLocal(k2), passive.Local())
	if err := passive.Close(); err != nil {
		return err
	}
	if err := passive.WaitState(ctx, Closed); err != nil {
		return err
	}
	kTW := KernelStateOr(kernelLocal(k2), passive.Local())
	env.Check("passive close: CLOSE-WAIT → LAST-ACK → CLOSED", hasPath(passive, Established, CloseWait, LastAck, Closed), "%s", path(passive))
	env.Check("passive close: the kernel goes FIN-WAIT-2 then TIME-WAIT", kFW == "FIN-WAIT-2" && kTW == "TIME-WAIT", "/proc/net/tcp: %s, then %s", kFW, kTW)

	r.stop()
	r.ladder("active close: the lab closes first", active)
	r.ladder("passive close: the kernel closes first", passive)
	r.states(FinWait1, FinWait2, TimeWait, CloseWait, LastAck, Closed)
	return nil
}

// timeIn returns how long the connection stayed in st (the first time).
func timeIn(c *Conn, st State) (d time.Duration) {
	h := c.History()
	for i, x := range h {
		if x.To == st && i+1 < len(h) {
			return h[i+1].At - x.At
		}
	}
	return 0
}
