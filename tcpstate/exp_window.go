package tcpstate

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
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
	r, err := newLabRun(env, expConfig())
	if err != nil {
		return err
	}
	ctx := env.Ctx
	kp, err := listenKernel(ctx, 8192)
	if err != nil {
		return err
	}
	defer kp.Close()
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
	c, k, err := r.connectKernel(ctx, kp, "zero window", &ConnOptions{Hook: hook}, 10*time.Second)
	if err != nil {
		return err
	}
	data := make([]byte, windowBytes)
	for i := range data {
		data[i] = byte(env.Rand.Uint32())
	}
	werr := make(chan error, 1)
	go func() { _, err := c.WriteContext(ctx, data); werr <- err }()

	// The kernel does not read until the lab has probed the shut window
	// three times.
	var pt []time.Duration
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for len(pt) < 3 {
		select {
		case t := <-probes:
			pt = append(pt, t)
		case <-timeout.C:
			return fmt.Errorf("tcpstate: %d persist probes in 5s, want 3", len(pt))
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
	ratio := float64(g2) / float64(g1)
	env.Check("the kernel closes its window (zero-window ACKs)", zeroAcks > 0 && zeroWnd, "%d ACKs with window 0; lab SND.WND 0 while probing: %v", zeroAcks, zeroWnd)
	env.Check("the lab probes the shut window on its persist timer, with backoff", ratio > 1.5 && ratio < 3,
		"probes %v and %v apart", g1, g2)
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
