package rawtcp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/tcpstate"
)

func TestMain(m *testing.M) {
	// The driver's tests run in a network namespace of their own, which
	// the lab's sandbox makes (rootless, where user namespaces exist).
	sandbox.TestMain(m)
}

// netNS is the namespace the tests' links may alter: the one the sandbox
// made for this test binary.
func netNS(t testing.TB) string {
	t.Helper()
	if err := sandbox.InsideErr(); err != nil {
		t.Fatalf("not in the sandbox's namespace: %v", err)
	}
	ns, err := CurrentNetNS()
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// newTestStack opens a stack in the test's namespace with cfg (its NetNS
// filled in), closed when the test ends.
func newTestStack(t testing.TB, cfg StackConfig) *Stack {
	t.Helper()
	cfg.Link.NetNS = netNS(t)
	s, err := NewStack(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testStack(t *testing.T) *Stack {
	t.Helper()
	return newTestStack(t, StackConfig{Engine: tcpstate.Config{MinRTO: 50 * time.Millisecond, InitialRTO: 200 * time.Millisecond, MSL: 100 * time.Millisecond}})
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
	if err := c.CloseWrite(); err != nil {
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
	if err := c.WaitState(ctx, tcpstate.Closed); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.Records() {
		t.Log(r.Sent, r.Label(), r.Comment())
	}
	t.Logf("suppressed RSTs: %d", s.Link().SuppressedRSTs())
}

// Without the namespace named, or with another one named, the link is
// refused before it touches anything.
func TestOpenLinkRefusesANamespaceNotNamed(t *testing.T) {
	for _, ns := range []string{"", "net:[1]"} {
		l, err := OpenLink(LinkConfig{NetNS: ns})
		if err == nil {
			l.Close()
			t.Fatalf("OpenLink with NetNS %q succeeded", ns)
		}
		if !errors.Is(err, ErrNamespace) {
			t.Errorf("OpenLink with NetNS %q: %v, want ErrNamespace", ns, err)
		}
		if _, err := NewStack(StackConfig{Link: LinkConfig{NetNS: ns}}); !errors.Is(err, ErrNamespace) {
			t.Errorf("NewStack with NetNS %q: %v, want ErrNamespace", ns, err)
		}
	}
}

// WaitRecords wakes on the stack's record event, and gives up with ctx.
func TestWaitRecords(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := testStack(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		done <- s.WaitRecords(ctx, func(recs []Record) bool {
			for _, r := range recs {
				if !r.Sent && r.Seg.Flags == tcpstate.SYN|tcpstate.ACK {
					return true
				}
			}
			return false
		})
	}()
	if _, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitRecords: %v", err)
	}
	short, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := s.WaitRecords(short, func([]Record) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitRecords with a canceled ctx: %v", err)
	}
}

// PeerState may block (a netlink round trip), so it must never run while
// a connection's lock is held: here it takes that lock itself, which
// deadlocks (and fails on the context) if the driver calls it under it.
func TestPeerStateOutsideConnLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conn atomic.Pointer[Conn]
	var calls atomic.Int32
	s := newTestStack(t, StackConfig{
		Engine: tcpstate.Config{MinRTO: 200 * time.Millisecond, MSL: 100 * time.Millisecond},
		PeerState: func(lab, peer netip.AddrPort) string {
			calls.Add(1)
			if c := conn.Load(); c != nil {
				return "lab sees " + c.State().String()
			}
			return "?"
		},
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		k, err := ln.Accept()
		if err != nil {
			return
		}
		defer k.Close()
		b := make([]byte, 5)
		if _, err := io.ReadFull(k, b); err == nil {
			k.Write(b)
		}
	}()
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Store(c)
	if _, err := c.WriteContext(ctx, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(readerCtx{ctx, c}, b); err != nil {
		t.Fatalf("read (a deadlock here means PeerState ran under the connection's lock): %v", err)
	}
	recs := s.Records()
	if calls.Load() == 0 || recs[len(recs)-1].PeerState == "" {
		t.Fatalf("PeerState called %d times; last record's peer %q", calls.Load(), recs[len(recs)-1].PeerState)
	}
}

type readerCtx struct {
	ctx context.Context
	c   *Conn
}

func (r readerCtx) Read(p []byte) (int, error) { return r.c.ReadContext(r.ctx, p) }

// A record's At is the moment the engine handled the segment (or emitted
// it), not a later reading of the clock: with a clock that moves on every
// reading and a timestamp offset of 0, each segment the lab sends carries
// the engine's moment as its TSval (one tick a millisecond), which must be
// its record's At.
func TestRecordsCarryTheEnginesMoment(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := newTestStack(t, StackConfig{Engine: tcpstate.Config{MinRTO: 50 * time.Millisecond, MSL: 100 * time.Millisecond,
		TimestampClock: time.Millisecond, TSOffset: func() uint32 { return 0 }}})
	var tick atomic.Int64
	s.testClock = func() time.Duration { return time.Duration(tick.Add(1)) * time.Millisecond }
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		k, err := ln.Accept()
		if err == nil {
			io.Copy(k, k)
			k.Close()
		}
	}()
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.WriteContext(ctx, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		var buf [4]byte
		if _, err := io.ReadFull(readerCtx{ctx, c}, buf[:]); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, r := range s.Records() {
		if !r.Sent || !r.Seg.HasTS || r.Conn != c.ID() {
			continue
		}
		n++
		if at := uint32(r.At / time.Millisecond); at != r.Seg.TSVal {
			t.Errorf("%s: recorded at %d ms, sent by the engine at %d ms (its TSval)", r.Label(), at, r.Seg.TSVal)
		}
	}
	if n == 0 {
		t.Fatal("no sent segment with timestamps")
	}
}
