package tcpexp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// BenchResult is one bulk transfer's figures.
type BenchResult struct {
	Name     string        `json:"name"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	Gbps     float64       `json:"gbit_per_s"`
	// CPU is the process's CPU time (user + system, every thread: the
	// lab's engine and the kernel's TCP working for the process) over the
	// transfer, and CPUPerGiB that per GiB moved.
	CPU       time.Duration `json:"cpu_ns"`
	CPUPerGiB float64       `json:"cpu_s_per_gib"`
}

func benchResult(name string, n int64, d time.Duration) BenchResult {
	return BenchResult{Name: name, Bytes: n, Duration: d, Gbps: float64(n) * 8 / d.Seconds() / 1e9}
}

// side is the result as one side of a benchcmp round.
func (r BenchResult) side() benchcmp.Side {
	return benchcmp.NewSide(r.Gbps, float64(r.Bytes)/(1<<30), r.CPU.Seconds())
}

// benchConfig is the engine set up for bulk transfer on lo: the largest MSS
// an IPv4 packet allows, 4 MiB buffers, and no segment records.
func benchConfig() tcpstate.Config {
	return tcpstate.Config{MSS: 65535 - 40, SendBufferSize: 4 << 20, RecvBufferSize: 4 << 20, MinRTO: 200 * time.Millisecond, InitialWindow: 10, MSL: time.Second}
}

// BenchTimeout is the time Bench allows itself when ctx has no deadline: a
// minute, plus a second per 8 MiB moved in each direction of each round
// (64 Mbit/s, far below anything that works).
func BenchTimeout(size int64, rounds int) time.Duration {
	return time.Minute + time.Duration(int64(max(rounds, 1))*3*size/(8<<20))*time.Second
}

// BenchReport is a `bench tcp` run: every transfer of every round, and
// lab→kernel and kernel→lab each compared with kernel→kernel of the same
// round.
type BenchReport struct {
	Bytes       int64                 `json:"bytes"`
	Rounds      [][]BenchResult       `json:"round_results"` // per round: lab→kernel, kernel→lab, kernel→kernel
	Comparisons []benchcmp.Comparison `json:"comparisons"`
}

// Bench measures bulk transfer of size bytes lab → kernel, kernel → lab
// (the engine on raw sockets against the kernel's TCP) and kernel → kernel
// over loopback in rounds interleaved by benchcmp.Interleave (the lab's
// two transfers, with the raw socket open, and the kernel's alone, the
// order swapped each round), in the lab's network namespace (the
// sandbox's, which the caller has entered). Each transfer's clock and CPU
// count start before its connection is dialled, so before the first byte
// can move. It never outlives ctx, nor BenchTimeout when ctx has no
// deadline: every wait selects on ctx and the kernel's sockets are closed
// when it ends.
func Bench(ctx context.Context, size int64, rounds int) (BenchReport, error) {
	rounds = max(rounds, 1)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, BenchTimeout(size, rounds))
		defer cancel()
	}
	rep := BenchReport{Bytes: size, Rounds: make([][]BenchResult, rounds)}
	err := benchcmp.Interleave(rounds, 2, func(round, side int) error {
		if side == 1 {
			res, err := benchMeasured(func() (BenchResult, error) { return benchKernelToKernel(ctx, size) })
			if err != nil {
				return err
			}
			rep.Rounds[round] = append(rep.Rounds[round], res)
			return nil
		}
		st, err := openStack(rawtcp.StackConfig{Engine: benchConfig(), RecordLimit: -1})
		if err != nil {
			return err
		}
		defer st.Close() // the raw socket stops copying loopback traffic
		a, err := benchMeasured(func() (BenchResult, error) { return benchLabToKernel(ctx, st, size) })
		if err != nil {
			return err
		}
		b, err := benchMeasured(func() (BenchResult, error) { return benchKernelToLab(ctx, st, size) })
		if err != nil {
			return err
		}
		rep.Rounds[round] = append([]BenchResult{a, b}, rep.Rounds[round]...)
		return nil
	})
	if err != nil {
		return rep, err
	}
	var l2k, k2l []benchcmp.Round
	for _, r := range rep.Rounds {
		l2k = append(l2k, benchcmp.Round{Lab: r[0].side(), Baseline: r[2].side()})
		k2l = append(k2l, benchcmp.Round{Lab: r[1].side(), Baseline: r[2].side()})
	}
	rep.Comparisons = []benchcmp.Comparison{
		benchcmp.Compare("lab→kernel", "kernel→kernel", "Gbit/s", "GiB", l2k),
		benchcmp.Compare("kernel→lab", "kernel→kernel", "Gbit/s", "GiB", k2l),
	}
	return rep, nil
}

// benchMeasured runs one transfer and adds the process's CPU time over it.
func benchMeasured(f func() (BenchResult, error)) (BenchResult, error) {
	var res BenchResult
	cpu, _, err := benchcmp.Measure(func() error {
		var err error
		res, err = f()
		return err
	})
	res.CPU = cpu
	if res.Bytes > 0 {
		res.CPUPerGiB = cpu.Seconds() / (float64(res.Bytes) / (1 << 30))
	}
	return res, err
}

func benchListener(ctx context.Context) (net.Listener, netip.AddrPort, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	return ln, netip.MustParseAddrPort(ln.Addr().String()), nil
}

// benchSink accepts one kernel connection on ln and counts what it reads
// until EOF; it sends the count (-1: accept failed) on the returned
// channel. The socket is closed when ctx ends, so the copy cannot outlive it.
func benchSink(ctx context.Context, ln net.Listener) <-chan int64 {
	got := make(chan int64, 1)
	go func() {
		k, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		stop := context.AfterFunc(ctx, func() { k.Close() })
		defer stop()
		defer k.Close()
		got <- benchDrain(k)
	}()
	return got
}

// benchDrain reads r until EOF or an error with a 1 MiB buffer, the size
// the lab's reader uses, and returns the count. Not io.Copy(io.Discard, r):
// a *net.TCPConn then reads through io.Discard's 8 KiB buffer, 128 read
// calls per MiB against the lab's one, and the kernel's side would pay for
// system calls the lab's does not make.
func benchDrain(r io.Reader) int64 {
	buf := make([]byte, 1<<20)
	var n int64
	for range 1 << 30 { // bounded (1 PiB at 1 MiB a read): each read returns data, EOF or an error
		m, err := r.Read(buf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	return n
}

// benchWait waits for the sink's count or ctx.
func benchWait(ctx context.Context, got <-chan int64, what string, c *rawtcp.Conn) (int64, error) {
	select {
	case n := <-got:
		return n, nil
	case <-ctx.Done():
		if c != nil {
			return 0, fmt.Errorf("tcpexp: bench %s: %w (lab %v)", what, ctx.Err(), c)
		}
		return 0, fmt.Errorf("tcpexp: bench %s: %w", what, ctx.Err())
	}
}

func benchLabToKernel(ctx context.Context, st *rawtcp.Stack, size int64) (BenchResult, error) {
	ln, addr, err := benchListener(ctx)
	if err != nil {
		return BenchResult{}, err
	}
	defer ln.Close()
	got := benchSink(ctx, ln)
	buf := make([]byte, 1<<20)
	start := time.Now()
	c, err := st.Dial(ctx, addr, nil)
	if err != nil {
		return BenchResult{}, err
	}
	for sent := int64(0); sent < size; {
		n := min(int64(len(buf)), size-sent)
		if _, err := c.WriteContext(ctx, buf[:n]); err != nil {
			return BenchResult{}, fmt.Errorf("tcpexp: bench lab write: %w (%v)", err, c)
		}
		sent += n
	}
	_ = c.CloseWrite()
	n, err := benchWait(ctx, got, "lab→kernel", c)
	if err != nil {
		return BenchResult{}, err
	}
	d := time.Since(start)
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpexp: bench: kernel received %d of %d bytes", n, size)
	}
	return benchResult("lab→kernel", n, d), nil
}

func benchKernelToLab(ctx context.Context, st *rawtcp.Stack, size int64) (BenchResult, error) {
	l, err := st.Listen(0, nil)
	if err != nil {
		return BenchResult{}, err
	}
	defer l.Close()
	// The clock starts before the kernel dials: its writer sends as soon
	// as the connection is up, perhaps before AcceptConn returns.
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		var d net.Dialer
		k, err := d.DialContext(ctx, "tcp4", l.Addr().String())
		if err != nil {
			werr <- err
			return
		}
		stop := context.AfterFunc(ctx, func() { k.Close() })
		defer stop()
		defer k.Close()
		buf := make([]byte, 1<<20)
		for sent := int64(0); sent < size; {
			n := min(int64(len(buf)), size-sent)
			if _, err := k.Write(buf[:n]); err != nil {
				werr <- err
				return
			}
			sent += n
		}
		werr <- nil
	}()
	c, err := l.AcceptConn(ctx)
	if err != nil {
		return BenchResult{}, fmt.Errorf("tcpexp: bench kernel→lab accept: %w (listener %v)", err, l.Pending())
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := c.ReadContext(ctx, buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return BenchResult{}, fmt.Errorf("tcpexp: bench lab read after %d bytes: %w (%v)", n, err, c)
		}
	}
	d := time.Since(start)
	select {
	case err := <-werr:
		if err != nil {
			return BenchResult{}, fmt.Errorf("tcpexp: bench kernel write: %w", err)
		}
	case <-ctx.Done():
		return BenchResult{}, fmt.Errorf("tcpexp: bench kernel→lab: %w", ctx.Err())
	}
	_ = c.CloseWrite()
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpexp: bench: lab received %d of %d bytes", n, size)
	}
	return benchResult("kernel→lab", n, d), nil
}

func benchKernelToKernel(ctx context.Context, size int64) (BenchResult, error) {
	ln, addr, err := benchListener(ctx)
	if err != nil {
		return BenchResult{}, err
	}
	defer ln.Close()
	got := benchSink(ctx, ln)
	buf := make([]byte, 1<<20)
	start := time.Now()
	var d net.Dialer
	k, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return BenchResult{}, err
	}
	stop := context.AfterFunc(ctx, func() { k.Close() })
	defer stop()
	for sent := int64(0); sent < size; {
		n := min(int64(len(buf)), size-sent)
		if _, err := k.Write(buf[:n]); err != nil {
			return BenchResult{}, err
		}
		sent += n
	}
	_ = k.Close()
	n, err := benchWait(ctx, got, "kernel→kernel", nil)
	if err != nil {
		return BenchResult{}, err
	}
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpexp: bench: kernel received %d of %d bytes", n, size)
	}
	return benchResult("kernel→kernel", n, time.Since(start)), nil
}
