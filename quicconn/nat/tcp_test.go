package nat

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// ipv4TCP builds an IPv4 packet holding a TCP segment with flags.
func ipv4TCP(src, dst netip.AddrPort, flags uint8) []byte {
	b := make([]byte, 40)
	b[0], b[9] = 0x45, syscall.IPPROTO_TCP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	b[32], b[33] = 5<<4, flags
	return b
}

func TestTCPFlagsMatchesOnlyItsSegment(t *testing.T) {
	a, b := netip.MustParseAddrPort("127.0.0.1:5000"), netip.MustParseAddrPort("127.0.0.1:6000")
	udp := ipv4TCP(a, b, 0x04)
	udp[9] = syscall.IPPROTO_UDP
	for _, tc := range []struct {
		name     string
		pkt      []byte
		src, dst netip.AddrPort
		flags    uint8
		ok, rst  bool
	}{
		{"RST from src to dst", ipv4TCP(a, b, 0x04), a, b, 0x04, true, true},
		{"SYN,ACK", ipv4TCP(a, b, 0x12), a, b, 0x12, true, false},
		{"the other direction", ipv4TCP(b, a, 0x04), a, b, 0, false, false},
		{"not TCP", udp, a, b, 0, false, false},
		{"cut short", ipv4TCP(a, b, 0x04)[:30], a, b, 0, false, false},
		{"not IPv4", append([]byte{0x60}, ipv4TCP(a, b, 0x04)[1:]...), a, b, 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := tcpFlags(tc.pkt, tc.src, tc.dst)
			if f != tc.flags || ok != tc.ok || isRST(tc.pkt, tc.src, tc.dst) != tc.rst {
				t.Errorf("flags %#x ok %t rst %t; want %#x %t %t", f, ok, isRST(tc.pkt, tc.src, tc.dst), tc.flags, tc.ok, tc.rst)
			}
		})
	}
}

// A segment with its checksum filled in sums to zero, odd payload or even.
func TestTCPChecksumVerifies(t *testing.T) {
	src, dst := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for _, n := range []int{0, 1, 7, 1000} {
		seg := make([]byte, 20+n)
		seg[12], seg[13] = 5<<4, 0x18
		for i := range n {
			seg[20+i] = byte(i*7 + 3)
		}
		binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src, dst, seg))
		// Summing again with the checksum in place gives 0xffff, whose
		// complement is 0.
		if got := tcpChecksum(src, dst, seg); got != 0 {
			t.Errorf("payload %d: checksum over the filled segment = %#x, want 0", n, got)
		}
	}
}

// sink accepts one connection and counts the bytes it reads.
func sink(t *testing.T) (netip.AddrPort, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			n.Add(int64(k))
			if err != nil {
				return
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort(), &n
}

// The TCP NAT relays a connection, and a rebinding breaks it: the server
// resets the segment from the new port, the NAT relays the RST and the
// client's kernel reports ECONNRESET.
func TestTCPRebindResetsTheClient(t *testing.T) {
	server, got := sink(t)
	n, err := NewTCP("127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	c, err := net.Dial("tcp", n.Front.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * RawWait))
	const relayFirst = 3000
	ch := n.Rebind(relayFirst)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ { // until the reset arrives
		_, werr = c.Write(make([]byte, 1000))
		time.Sleep(time.Millisecond)
	}
	if werr == nil {
		_, werr = io.ReadAll(c)
	}
	var rb TCPRebinding
	select {
	case rb = <-ch:
	case <-time.After(2 * RawWait):
		t.Fatal("no rebinding reported")
	}
	outside, count := n.Outside()
	if rb.Err != nil || rb.Old != outside || !rb.New.IsValid() || rb.New == rb.Old || rb.RelayedBytes < relayFirst || !rb.SeqKnown {
		t.Errorf("rebinding %+v (outside %s)", rb, outside)
	}
	if rb.RSTAt.IsZero() || !rb.Relayed || !errors.Is(werr, syscall.ECONNRESET) {
		t.Errorf("RST seen at %v, relayed %t; client error %v, want ECONNRESET", rb.RSTAt, rb.Relayed, werr)
	}
	if count.Err != nil || count.Bytes < uint64(rb.RelayedBytes) || count.Control == 0 {
		t.Errorf("outside socket counted %+v, want the %d relayed bytes", count, rb.RelayedBytes)
	}
	if s := got.Load(); s > rb.RelayedBytes {
		t.Errorf("server read %d bytes, more than the %d relayed before the rebinding", s, rb.RelayedBytes)
	}
}
