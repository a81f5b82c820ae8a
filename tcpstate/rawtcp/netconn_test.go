package rawtcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/nettest"
)

// dialKernel connects the lab to the kernel listener ln: the lab's Conn
// and the kernel's accepted socket.
func dialKernel(ctx context.Context, s *Stack, ln net.Listener) (*Conn, net.Conn, error) {
	acc := make(chan net.Conn, 1)
	go func() {
		k, _ := ln.Accept()
		acc <- k
	}()
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
	if err != nil {
		return nil, nil, err
	}
	k := <-acc
	if k == nil {
		c.Abort()
		return nil, nil, errors.New("the kernel's accept failed")
	}
	return c, k, nil
}

// Conn passes x/net's net.Conn conformance tests against a kernel socket:
// as the connection under test when the lab dials and when it accepts,
// and as the echoing peer of a kernel connection under test.
func TestConnIsANetConn(t *testing.T) {
	s := testStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	labDials := func() (lab *Conn, kernel net.Conn, stop func(), err error) {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, nil, err
		}
		c, k, err := dialKernel(ctx, s, ln)
		if err != nil {
			ln.Close()
			return nil, nil, nil, err
		}
		return c, k, func() { c.Close(); k.Close(); c.Abort(); ln.Close() }, nil
	}
	kernelDials := func() (lab *Conn, kernel net.Conn, stop func(), err error) {
		l, err := s.Listen(0, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		k, err := net.Dial("tcp4", l.Addr().String())
		if err != nil {
			l.Close()
			return nil, nil, nil, err
		}
		c, err := l.AcceptConn(ctx)
		if err != nil {
			k.Close()
			l.Close()
			return nil, nil, nil, err
		}
		return c, k, func() { c.Close(); k.Close(); c.Abort(); l.Close() }, nil
	}
	t.Run("the lab dials", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) { return labDials() })
	})
	t.Run("the lab accepts", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) { return kernelDials() })
	})
	t.Run("the lab echoes", func(t *testing.T) {
		nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
			c, k, stop, err := labDials()
			return k, c, stop, err
		})
	})
}

// A closed Conn unregisters itself once CLOSED, so its port is free again.
func TestCloseUnregistersOnceClosed(t *testing.T) {
	s := testStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			k, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { b := make([]byte, 1); k.Read(b); k.Close() }() // EOF, then close
		}
	}()
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	port := c.Local().Port()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != net.ErrClosed {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != net.ErrClosed {
		t.Errorf("a second Close: %v, want net.ErrClosed", err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatalf("the connection never reached CLOSED: %v", c)
	}
	// TIME-WAIT (2×MSL = 200 ms) is over: the port is free for a new
	// connection to the same kernel end.
	c2, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), &ConnOptions{LocalPort: port})
	if err != nil {
		t.Fatalf("dialing again from port %d: %v", port, err)
	}
	c2.Abort()
}
