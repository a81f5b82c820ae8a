package rawtcp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// The faults act on the connection's segments and the records say so: a
// dropped segment is retransmitted, a crashed connection's port answers as
// CLOSED, with a RST the kernel reports as ECONNRESET.
func TestFaults(t *testing.T) {
	s := testStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { k, _ := ln.Accept(); acc <- k }()
	dropped := false
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), &ConnOptions{
		SendHook: func(seg *tcpstate.Segment, _ *tcpstate.TCB) Verdict {
			if len(seg.Payload) > 0 && !dropped {
				dropped = true
				return Drop
			}
			return Pass
		}})
	if err != nil {
		t.Fatal(err)
	}
	k := <-acc
	defer k.Close()
	_ = k.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 5)
	if _, err := io.ReadFull(k, b); err != nil || string(b) != "hello" {
		t.Fatalf("kernel read %q, %v", b, err)
	}
	// The stack records a segment just after sending it: wait for the
	// record of the copy the kernel read.
	var notes []string
	var end tcpstate.Seq // the data's end, which the kernel acknowledges
	err = s.WaitRecords(ctx, func(recs []Record) bool {
		notes = notes[:0]
		for _, r := range recs {
			if r.Sent && r.Seg.Len == 5 {
				notes = append(notes, r.Note)
				end = r.Seg.Seq.Add(5)
			}
		}
		return len(notes) >= 2
	})
	if err != nil || len(notes) != 2 || notes[0] != "dropped by the link" || notes[1] != "" {
		t.Errorf("the data segment's records say %q (%v), want the dropped copy, then the retransmission", notes, err)
	}
	// The kernel acknowledges the data on its own time: wait until the
	// connection has taken that ACK. One that arrived after the crash
	// would meet the CLOSED responder, whose RST resets the kernel's
	// socket before it writes.
	err = s.WaitRecords(ctx, func(recs []Record) bool {
		for _, r := range recs {
			if r.Conn != 0 && !r.Sent && r.Seg.Flags&tcpstate.ACK != 0 && r.Seg.Ack == end {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the lab never took the kernel's ACK of the data (up to %d): %v", end, err)
	}

	c.Faults().Crash()
	if _, err := c.Write([]byte("x")); !errors.Is(err, tcpstate.ErrConnectionAborted) {
		t.Errorf("Write after a crash: %v, want ErrConnectionAborted", err)
	}
	if _, err := k.Write([]byte("are you there?")); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Read(b); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("kernel read after the lab's crash: %v, want ECONNRESET", err)
	}
	err = s.WaitRecords(ctx, func(recs []Record) bool {
		for _, r := range recs {
			if r.Conn == 0 && r.Sent && r.Seg.Flags&tcpstate.RST != 0 {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Errorf("no RST from the stack's CLOSED responder: %v", err)
	}
}

// A send hook that adds SACK-permitted and timestamps to the lab's SYN
// and a timestamp to its ACK puts them on the wire: the kernel's socket
// reports both options negotiated (TCP_INFO), though the engine knows
// neither.
func TestSendHookRewritesOptions(t *testing.T) {
	s := testStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() { k, _ := ln.Accept(); acc <- k }()
	var peerTS uint32
	c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), &ConnOptions{
		RecvHook: func(seg *tcpstate.Segment, _ *tcpstate.TCB) Verdict {
			peerTS = seg.Options.TSVal
			return Pass
		},
		SendHook: func(seg *tcpstate.Segment, _ *tcpstate.TCB) Verdict {
			seg.Options.SACKPermitted = seg.Flags&tcpstate.SYN != 0
			seg.Options.HasTimestamps, seg.Options.TSVal, seg.Options.TSEcr = true, 1000, peerTS
			return Pass
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Abort()
	var k net.Conn
	select {
	case k = <-acc:
	case <-ctx.Done():
		t.Fatal("no accept")
	}
	defer k.Close()
	raw, err := k.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var opts uint8
	var serr error
	_ = raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if info != nil {
			opts = info.Options
		}
	})
	if serr != nil {
		t.Fatal(serr)
	}
	const want = 1 | 2 // TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK (linux/tcp.h)
	if opts&want != want {
		t.Errorf("kernel tcpi_options %#x, want timestamps and SACK (%#x) from the rewritten SYN", opts, want)
	}
}
