package tcpexp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// BenchResult is one bulk transfer's figures.
type BenchResult struct {
	Name     string        `json:"name"`
	Bytes    int64         `json:"bytes"`
	Duration time.Duration `json:"duration_ns"`
	Gbps     float64       `json:"gbit_per_s"`
}

func benchResult(name string, n int64, d time.Duration) BenchResult {
	return BenchResult{Name: name, Bytes: n, Duration: d, Gbps: float64(n) * 8 / d.Seconds() / 1e9}
}

// benchConfig is the engine set up for bulk transfer on lo: the largest MSS
// an IPv4 packet allows, 4 MiB buffers, and no segment records.
func benchConfig() tcpstate.Config {
	return tcpstate.Config{MSS: 65535 - 40, SendBufferSize: 4 << 20, RecvBufferSize: 4 << 20, MinRTO: 200 * time.Millisecond, InitialWindow: 10, MSL: time.Second}
}

// BenchTimeout is the time Bench allows itself when ctx has no deadline: a
// minute, plus a second per 8 MiB moved in each direction (64 Mbit/s, far
// below anything that works).
func BenchTimeout(size int64) time.Duration {
	return time.Minute + time.Duration(size/(8<<20))*time.Second
}

// Bench measures bulk transfer of size bytes lab → kernel, kernel → lab
// (the engine on raw sockets against the kernel's TCP) and kernel → kernel
// over loopback, in that order, in the lab's network namespace (the
// sandbox's, which the caller has entered). It never
// outlives ctx, nor BenchTimeout(size) when ctx has no deadline: every
// wait selects on ctx and the kernel's sockets are closed when it ends.
func Bench(ctx context.Context, size int64) ([]BenchResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, BenchTimeout(size))
		defer cancel()
	}
	st, err := openStack(rawtcp.StackConfig{Engine: benchConfig(), RecordLimit: -1})
	if err != nil {
		return nil, err
	}
	var out []BenchResult
	res, err := benchLabToKernel(ctx, st, size)
	if err != nil {
		st.Close()
		return nil, err
	}
	out = append(out, res)
	res, err = benchKernelToLab(ctx, st, size)
	st.Close() // the raw socket stops copying loopback traffic
	if err != nil {
		return nil, err
	}
	out = append(out, res)
	res, err = benchKernelToKernel(ctx, size)
	if err != nil {
		return nil, err
	}
	return append(out, res), nil
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
		n, _ := io.Copy(io.Discard, k)
		got <- n
	}()
	return got
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
	c, err := st.Dial(ctx, addr, nil)
	if err != nil {
		return BenchResult{}, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
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
	start := time.Now()
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
	var d net.Dialer
	k, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return BenchResult{}, err
	}
	stop := context.AfterFunc(ctx, func() { k.Close() })
	defer stop()
	buf := make([]byte, 1<<20)
	start := time.Now()
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
