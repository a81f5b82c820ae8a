package rawtcp

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// A Read that waits lends its buffer to the engine (tcpstate's posted
// read); text that lands in it while the wait ends for another reason is
// returned, not lost. Each row ends the wait its own way while the kernel's
// segment is handled under the same lock, so both of the waiter's
// select cases are ready when it runs: whichever it takes, the octets must
// come back from this Read.
func TestReadReturnsWhatLandedInItsBufferWhenItsWaitEnds(t *testing.T) {
	s := testStack(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rows := []struct {
		name    string
		end     func(c *Conn, cancel context.CancelFunc) // c.mu held
		wantErr error                                    // the next Read's, after the octets
	}{
		{"the context is cancelled", func(_ *Conn, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"the connection is closed", func(c *Conn, _ context.CancelFunc) { c.userClosed = true; c.changed() }, net.ErrClosed},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			for i := range 8 { // the waiter's select picks at random: both orders
				readAfterWaitEnds(t, s, ln, i, row.end, row.wantErr)
			}
		})
	}
}

func readAfterWaitEnds(t *testing.T, s *Stack, ln net.Listener, i int, end func(*Conn, context.CancelFunc), wantErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, k, err := dialKernel(ctx, s, ln)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	defer k.Close()

	// The kernel's segment is held back from the engine until the
	// waiter has lent its buffer.
	held := make(chan tcpstate.Segment, 1)
	c.mu.Lock()
	c.rhook = func(seg *tcpstate.Segment, _ *tcpstate.TCB) Verdict {
		if len(seg.Payload) == 0 {
			return Pass
		}
		cp := *seg
		cp.Payload = append([]byte(nil), seg.Payload...)
		select {
		case held <- cp:
		default:
		}
		return Drop
	}
	c.mu.Unlock()
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	type result struct {
		n   int
		err error
	}
	res := make(chan result, 1)
	buf := make([]byte, 64)
	go func() {
		n, err := c.ReadContext(rctx, buf)
		res <- result{n, err}
	}()
	if _, err := k.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	var seg tcpstate.Segment
	select {
	case seg = <-held:
	case <-ctx.Done():
		t.Fatal("the kernel's segment never came")
	}
	for !lent(c) { // bounded by ctx: the reader is about to wait
		select {
		case <-ctx.Done():
			t.Fatal("the Read never lent its buffer")
		case <-time.After(time.Millisecond):
		}
	}

	c.mu.Lock()
	c.rhook = nil
	end(c, rcancel)
	c.handle(&seg) // the text lands in the lent buffer
	c.unlock()

	r := <-res
	if r.n != 5 || r.err != nil || string(buf[:r.n]) != "hello" {
		t.Fatalf("round %d: Read = %d %q, %v; want 5 \"hello\", nil", i, r.n, buf[:r.n], r.err)
	}
	if _, err := c.ReadContext(rctx, buf); !errors.Is(err, wantErr) {
		t.Fatalf("round %d: the next Read's error %v, want %v", i, err, wantErr)
	}
}

func lent(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lent
}
