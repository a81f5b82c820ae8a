package tcpstate

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/window",
		Summary: "a kernel receiver with a small buffer stops reading: zero window, the engine's persist probes, the window reopening",
		Shows: "A kernel socket with a small receive buffer that stops reading closes its window to zero; the lab's " +
			"engine stops sending and probes the window on its persist timer with backoff, and resumes when the " +
			"kernel reads and reopens the window; every byte arrives.",
		Run: runWindow,
	})
}

const windowBytes = 64 << 10

func runWindow(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	ctx := env.Ctx
	kp, err := listenKernel(ctx, 8192)
	if err != nil {
		return err
	}
	defer kp.Close()
	// The persist timer as the engine armed it (its own values, not the
	// wall clock, which a loaded machine stretches), and each probe as it
	// goes out. Both run under the connection's lock and never block.
	var mu sync.Mutex
	var armed []time.Duration // persist intervals, in order
	probes := make(chan time.Duration, 64)
	hook := func(s *Segment, t *TCB) Verdict {
		if t.SndWnd == 0 && len(s.Payload) == 1 {
			select {
			case probes <- r.st.Now():
			default:
			}
		}
		return Pass
	}
	events := func(_ time.Duration, e Event) {
		if e.Kind == EventTimerArmed && e.Timer == TimerPersist {
			mu.Lock()
			armed = append(armed, e.In)
			mu.Unlock()
		}
	}
	c, k, err := r.connectKernel(ctx, kp, "zero window", &ConnOptions{Hook: hook, Events: events}, 10*time.Second)
	if err != nil {
		return err
	}
	data := make([]byte, windowBytes)
	if _, err := io.ReadFull(env.Bytes("data"), data); err != nil {
		return err
	}
	werr := make(chan error, 1)
	go func() { _, err := c.WriteContext(ctx, data); werr <- err }()

	// The kernel does not read until the lab has probed the shut window
	// three times. The wait is for the third probe, an event; its bound
	// only guards against an engine that never probes: three persist
	// intervals are at most 3×MaxRTO, plus the time to fill the window,
	// with room for a machine whose timers fire late.
	const wantProbes = 3
	bound := wantProbes*expConfig().MaxRTO + 20*time.Second
	var pt []time.Duration
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for len(pt) < wantProbes {
		select {
		case t := <-probes:
			pt = append(pt, t)
		case <-timeout.C:
			return fmt.Errorf("tcpstate: %d persist probes within %v, want %d", len(pt), bound, wantProbes)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	zeroWnd := c.TCB().SndWnd == 0
	got := make([]byte, windowBytes)
	if _, err := io.ReadFull(k, got); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	if err := <-werr; err != nil {
		return err
	}
	_ = c.Close()
	if _, err := io.ReadAll(k); err != nil {
		return err
	}
	_ = k.Close()
	if err := c.WaitState(ctx, Closed); err != nil {
		return err
	}

	zeroAcks := 0
	for _, rec := range r.st.Records() {
		if rec.Conn == c.ID() && !rec.Sent && rec.Seg.Window == 0 && rec.Seg.Flags&ACK != 0 {
			zeroAcks++
		}
	}
	g1, g2 := pt[1]-pt[0], pt[2]-pt[1]
	mu.Lock()
	arms := append([]time.Duration(nil), armed...)
	mu.Unlock()
	backoff, why := persistBackoff(arms, wantProbes, expConfig().MaxRTO)
	env.Check("the kernel closes its window (zero-window ACKs)", zeroAcks > 0 && zeroWnd, "%d ACKs with window 0; lab SND.WND 0 while probing: %v", zeroAcks, zeroWnd)
	env.Check("the lab probes the shut window on its persist timer, with backoff", backoff,
		"%s; the probes went out %v and %v apart (wall clock, reported)", why, g1.Round(time.Millisecond), g2.Round(time.Millisecond))
	env.Check("the window reopens and every byte arrives", bytes.Equal(got, data), "kernel read %d of %d bytes", len(got), len(data))
	env.Metric("zero_window_acks_count", float64(zeroAcks))
	env.Metric("persist_probes_count", float64(len(pt)))
	r.stop()
	r.ladderN("zero window and persist probes", c, 4, 4, func(rec *Record) bool {
		return rec.Seg.Len == 1 || (!rec.Sent && rec.Seg.Window == 0) || rec.TCB.SndWnd == 0
	})
	r.states(Established, FinWait1, Closed)
	return nil
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
