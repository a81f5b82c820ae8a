package tcpstate

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func testStack(t *testing.T) *Stack {
	t.Helper()
	s, err := NewStack(StackConfig{Engine: Config{MinRTO: 50 * time.Millisecond, InitialRTO: 200 * time.Millisecond, MSL: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestDialKernel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := testStack(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		k, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(k)
		k.Write([]byte("bye"))
		k.Close()
		got <- b
	}()
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteContext(ctx, []byte("hello kernel")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; string(b) != "hello kernel" {
		t.Fatalf("kernel read %q", b)
	}
	var buf [16]byte
	n, err := c.ReadContext(ctx, buf[:])
	if string(buf[:n]) != "bye" {
		t.Fatalf("lab read %q %v", buf[:n], err)
	}
	if err := c.WaitState(ctx, Closed); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Records() {
		t.Log(r.Sent, r.Label(), r.Comment())
	}
	t.Logf("suppressed RSTs: %d", s.Link().SuppressedRSTs())
}

func TestBenchSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := Bench(ctx, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%-14s %6.2f Gbit/s (%v)", r.Name, r.Gbps, r.Duration)
	}
}
