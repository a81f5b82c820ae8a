package tcpexp

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

const windowBytes = 64 << 10

// wantProbes is how many persist probes the lab sends into the shut window
// before the kernel reads.
const wantProbes = 3

// tcp/window: a kernel socket with an 8 KiB receive buffer does not read
// while the lab writes 64 KiB; its window shuts, the lab probes it on the
// persist timer, then the kernel reads everything.
func runWindow(env *lab.Env) error {
	r, kp, err := newKernelRun(env, labConfig(env), 8192)
	if err != nil {
		return err
	}
	x := &window{labRun: r, probes: make(chan time.Duration, 64), data: make([]byte, windowBytes)}
	c, k, err := r.connectKernel(env.Ctx, kp, "zero window", &rawtcp.ConnOptions{SendHook: x.probeHook, Events: x.persistArmed}, 10*time.Second)
	if err != nil {
		return err
	}
	x.c = c
	if _, err := io.ReadFull(env.Bytes("data"), x.data); err != nil {
		return err
	}
	if err := x.fillAndProbe(k); err != nil {
		return err
	}
	x.check()
	r.stop()
	r.ladderN("zero window and persist probes", c, 4, 4, func(rec *rawtcp.Record) bool {
		return rec.Seg.Len == 1 || (!rec.Sent && rec.Seg.Window == 0) || rec.TCB.SndWnd == 0
	})
	r.states(tcpstate.Established, tcpstate.FinWait1, tcpstate.Closed)
	return nil
}

// window is tcp/window's connection and what its hooks saw: the persist
// timer as the engine armed it (its own values, not the wall clock, which
// a loaded machine stretches), and each probe as it went out.
type window struct {
	*labRun
	c      *rawtcp.Conn
	data   []byte
	got    []byte
	probes chan time.Duration // when each probe went out
	pt     []time.Duration    // the first wantProbes of them
	zero   bool               // SND.WND was 0 while the lab probed

	mu    sync.Mutex
	armed []time.Duration // persist intervals, in order
}

// probeHook notes each one-byte probe into a shut window. It runs under
// the connection's lock and never blocks.
func (x *window) probeHook(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
	if t.SndWnd == 0 && len(s.Payload) == 1 {
		select {
		case x.probes <- x.st.Now():
		default:
		}
	}
	return rawtcp.Pass
}

// persistArmed notes each interval the engine arms the persist timer for.
func (x *window) persistArmed(_ time.Duration, e tcpstate.Event) {
	if e.Kind == tcpstate.EventTimerArmed && e.Timer == tcpstate.TimerPersist {
		x.mu.Lock()
		x.armed = append(x.armed, e.In)
		x.mu.Unlock()
	}
}

// fillAndProbe: the lab writes while the kernel does not read, until the
// lab has probed the shut window three times; then the kernel reads it
// all and both sides close.
func (x *window) fillAndProbe(k net.Conn) error {
	ctx := x.env.Ctx
	werr := make(chan error, 1)
	go func() { _, err := x.c.WriteContext(ctx, x.data); werr <- err }()
	// The wait is for the third probe, an event; its bound only guards
	// against an engine that never probes: three persist intervals are at
	// most 3×MaxRTO, plus the time to fill the window, with room for a
	// machine whose timers fire late.
	bound := wantProbes*expConfig().MaxRTO + 20*time.Second
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for len(x.pt) < wantProbes {
		select {
		case t := <-x.probes:
			x.pt = append(x.pt, t)
		case <-timeout.C:
			return fmt.Errorf("tcpexp: %d persist probes within %v, want %d", len(x.pt), bound, wantProbes)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	x.zero = x.c.TCB().SndWnd == 0
	x.got = make([]byte, windowBytes)
	if _, err := io.ReadFull(k, x.got); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	if err := <-werr; err != nil {
		return err
	}
	_ = x.c.CloseWrite()
	if _, err := io.ReadAll(k); err != nil {
		return err
	}
	_ = k.Close()
	return x.c.WaitState(ctx, tcpstate.Closed)
}

// check judges the zero window, the persist backoff and the bytes.
func (x *window) check() {
	env := x.env
	zeroAcks := 0
	for _, rec := range x.st.Records() {
		if rec.Conn == x.c.ID() && !rec.Sent && rec.Seg.Window == 0 && rec.Seg.Flags&tcpstate.ACK != 0 {
			zeroAcks++
		}
	}
	g1, g2 := x.pt[1]-x.pt[0], x.pt[2]-x.pt[1]
	x.mu.Lock()
	arms := append([]time.Duration(nil), x.armed...)
	x.mu.Unlock()
	backoff, why := persistBackoff(arms, wantProbes, expConfig().MaxRTO)
	env.Check("the kernel closes its window (zero-window ACKs)", zeroAcks > 0 && x.zero, "%d ACKs with window 0; lab SND.WND 0 while probing: %v", zeroAcks, x.zero)
	env.Check("the lab probes the shut window on its persist timer, with backoff", backoff,
		"%s; the probes went out %v and %v apart (wall clock, reported)", why, g1.Round(time.Millisecond), g2.Round(time.Millisecond))
	env.Check("the window reopens and every byte arrives", bytes.Equal(x.got, x.data), "kernel read %d of %d bytes", len(x.got), len(x.data))
	env.Metric("zero_window_acks_count", float64(zeroAcks))
	env.Metric("persist_probes_count", float64(len(x.pt)))
}

// persistBackoff judges the persist timer's intervals as the engine armed
// them: the first n must each double the one before, up to max.
func persistBackoff(armed []time.Duration, n int, max time.Duration) (bool, string) {
	if len(armed) < n {
		return false, fmt.Sprintf("persist timer armed %d times (%v), want at least %d", len(armed), armed, n)
	}
	armed = armed[:n]
	for i := 1; i < n; i++ {
		if want := min(2*armed[i-1], max); armed[i] != want {
			return false, fmt.Sprintf("persist timer armed for %v: interval %d is %v, want %v (twice the one before, at most %v)", armed, i+1, armed[i], want, max)
		}
	}
	return true, fmt.Sprintf("persist timer armed for %v (each twice the one before, at most MaxRTO %v)", armed, max)
}
