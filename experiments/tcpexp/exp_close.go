package tcpexp

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/close: the lab closes a connection with the kernel first (active
// close), then the kernel closes one first (passive close).
func runClose(env *lab.Env) error {
	r, kp, err := newKernelRun(env, labConfig(env), 0)
	if err != nil {
		return err
	}
	active, err := activeClose(r, kp)
	if err != nil {
		return err
	}
	passive, err := passiveClose(r, kp)
	if err != nil {
		return err
	}
	r.stop()
	r.ladder("active close: the lab closes first", active)
	r.ladder("passive close: the kernel closes first", passive)
	r.states(tcpstate.FinWait1, tcpstate.FinWait2, tcpstate.TimeWait, tcpstate.CloseWait, tcpstate.LastAck, tcpstate.Closed)
	return nil
}

// activeClose: the lab sends its FIN first. The kernel application reads
// to EOF and closes only once the lab is in FIN-WAIT-2, so the kernel's
// ACK of the lab's FIN and its own FIN come apart.
func activeClose(r *labRun, kp *kernelPeer) (*rawtcp.Conn, error) {
	env, ctx := r.env, r.env.Ctx
	active, k, err := r.connectKernel(ctx, kp, "active close", nil, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if err := active.CloseWrite(); err != nil {
		return nil, err
	}
	if _, err := io.ReadAll(k); err != nil {
		return nil, fmt.Errorf("kernel read: %w", err)
	}
	if err := active.WaitState(ctx, tcpstate.FinWait2); err != nil {
		return nil, err
	}
	kFW2 := rawtcp.KernelStateOr(kernelLocal(k), active.Local())
	_ = k.Close()
	if err := active.WaitState(ctx, tcpstate.TimeWait); err != nil {
		return nil, err
	}
	if err := active.WaitState(ctx, tcpstate.Closed); err != nil {
		return nil, err
	}
	tw := timeIn(active, tcpstate.TimeWait)
	env.Check("active close: FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED",
		hasPath(active, tcpstate.Established, tcpstate.FinWait1, tcpstate.FinWait2, tcpstate.TimeWait, tcpstate.Closed), "%s", path(active))
	env.Check("active close: the kernel was in CLOSE-WAIT while the lab waited in FIN-WAIT-2", kFW2 == "CLOSE-WAIT", "/proc/net/tcp: %s", kFW2)
	env.Check("active close: TIME-WAIT lasted 2×MSL", tw >= 2*expConfig().MSL, "%v in TIME-WAIT, 2×MSL = %v", tw.Truncate(time.Millisecond/10), 2*expConfig().MSL)
	env.Shortened("2×MSL", 2*expConfig().MSL, 4*time.Minute, "RFC 9293 §3.4.2, MSL 2 minutes")
	env.Metric("time_wait_ms", float64(tw.Microseconds())/1000)
	return active, nil
}

// passiveClose: the kernel closes first; the lab reads EOF in CLOSE-WAIT
// and closes (LAST-ACK).
func passiveClose(r *labRun, kp *kernelPeer) (*rawtcp.Conn, error) {
	env, ctx := r.env, r.env.Ctx
	passive, k, err := r.connectKernel(ctx, kp, "passive close", nil, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = k.Close()
	if err := passive.WaitState(ctx, tcpstate.CloseWait); err != nil {
		return nil, err
	}
	var b [8]byte
	n, rerr := passive.ReadContext(ctx, b[:])
	env.Check("passive close: the lab reads EOF in CLOSE-WAIT", n == 0 && errors.Is(rerr, io.EOF), "read %d bytes, %v", n, rerr)
	kFW := rawtcp.KernelStateOr(kernelLocal(k), passive.Local())
	if err := passive.CloseWrite(); err != nil {
		return nil, err
	}
	if err := passive.WaitState(ctx, tcpstate.Closed); err != nil {
		return nil, err
	}
	kTW := rawtcp.KernelStateOr(kernelLocal(k), passive.Local())
	env.Check("passive close: CLOSE-WAIT → LAST-ACK → CLOSED", hasPath(passive, tcpstate.Established, tcpstate.CloseWait, tcpstate.LastAck, tcpstate.Closed), "%s", path(passive))
	env.Check("passive close: the kernel goes FIN-WAIT-2 then TIME-WAIT", kFW == "FIN-WAIT-2" && kTW == "TIME-WAIT", "/proc/net/tcp: %s, then %s", kFW, kTW)
	return passive, nil
}
