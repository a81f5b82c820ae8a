package tcpstate

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
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
func benchConfig() Config {
	return Config{MSS: 65535 - 40, SendBufferSize: 4 << 20, RecvBufferSize: 4 << 20, MinRTO: 200 * time.Millisecond, InitialWindow: 10, MSL: time.Second}
}

// Bench measures bulk transfer of size bytes lab → kernel, kernel → lab
// (the engine on raw sockets against the kernel's TCP) and kernel → kernel
// over loopback, in that order, in the current network namespace.
func Bench(ctx context.Context, size int64) ([]BenchResult, error) {
	st, err := NewStack(StackConfig{Engine: benchConfig(), RecordLimit: -1})
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
	return ln, netip.MustParseAddrPort(ln.Addr().String()), nil
}

func benchLabToKernel(ctx context.Context, st *Stack, size int64) (BenchResult, error) {
	ln, addr, err := benchListener(ctx)
	if err != nil {
		return BenchResult{}, err
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		k, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer k.Close()
		n, _ := io.Copy(io.Discard, k)
		got <- n
	}()
	c, err := st.Dial(ctx, addr, nil)
	if err != nil {
		return BenchResult{}, err
	}
	buf := make([]byte, 1<<20)
	start := time.Now()
	for sent := int64(0); sent < size; {
		n := min(int64(len(buf)), size-sent)
		if _, err := c.WriteContext(ctx, buf[:n]); err != nil {
			return BenchResult{}, fmt.Errorf("lab write: %w (%s)", err, c.ep.String())
		}
		sent += n
	}
	_ = c.Close()
	var n int64
	select {
	case n = <-got:
	case <-ctx.Done():
		return BenchResult{}, fmt.Errorf("lab→kernel: %w (lab %v)", ctx.Err(), c.ep.String())
	}
	d := time.Since(start)
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpstate: bench: kernel received %d of %d bytes", n, size)
	}
	return benchResult("lab→kernel", n, d), nil
}

func benchKernelToLab(ctx context.Context, st *Stack, size int64) (BenchResult, error) {
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
	c, err := l.Accept(ctx)
	if err != nil {
		return BenchResult{}, fmt.Errorf("kernel→lab accept: %w (listener %v)", err, l.Pending().ep.String())
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
			return BenchResult{}, fmt.Errorf("lab read after %d bytes: %w (%v)", n, err, c.ep.String())
		}
	}
	d := time.Since(start)
	if err := <-werr; err != nil {
		return BenchResult{}, fmt.Errorf("kernel write: %w", err)
	}
	_ = c.Close()
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpstate: bench: lab received %d of %d bytes", n, size)
	}
	return benchResult("kernel→lab", n, d), nil
}

func benchKernelToKernel(ctx context.Context, size int64) (BenchResult, error) {
	ln, addr, err := benchListener(ctx)
	if err != nil {
		return BenchResult{}, err
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		k, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer k.Close()
		n, _ := io.Copy(io.Discard, k)
		got <- n
	}()
	var d net.Dialer
	k, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return BenchResult{}, err
	}
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
	n := <-got
	if n != size {
		return BenchResult{}, fmt.Errorf("tcpstate: bench: kernel received %d of %d bytes", n, size)
	}
	return benchResult("kernel→kernel", n, time.Since(start)), nil
}
