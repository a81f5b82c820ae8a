package lb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// ErrEncap is a datagram between the balancer and a backend that does
// not carry a valid encapsulation header.
var ErrEncap = errors.New("lb: bad encapsulation")

// The encapsulation header: a version octet, the address length (4 or
// 16), the address, the port. It says whose datagram it is (balancer to
// backend: the client's address) or where it goes (backend to balancer).
const encapVersion = 1

// EncapLen is the header's length for an address.
func EncapLen(a netip.AddrPort) int {
	if a.Addr().Is4() {
		return 2 + 4 + 2
	}
	return 2 + 16 + 2
}

// Encap prepends the header for addr to payload.
func Encap(addr netip.AddrPort, payload []byte) []byte {
	a := addr.Addr()
	b := make([]byte, 0, EncapLen(addr)+len(payload))
	if a.Is4() {
		v := a.As4()
		b = append(b, encapVersion, 4)
		b = append(b, v[:]...)
	} else {
		v := a.As16()
		b = append(b, encapVersion, 16)
		b = append(b, v[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	return append(b, payload...)
}

// Decap reads the header: the address it names and the payload after it.
func Decap(b []byte) (netip.AddrPort, []byte, error) {
	if len(b) < 2 || b[0] != encapVersion {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: %d bytes, no version %d header", ErrEncap, len(b), encapVersion)
	}
	n := int(b[1])
	if n != 4 && n != 16 {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: address of %d bytes", ErrEncap, n)
	}
	if len(b) < 2+n+2 {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: header cut short (%d bytes)", ErrEncap, len(b))
	}
	a, _ := netip.AddrFromSlice(b[2 : 2+n])
	port := binary.BigEndian.Uint16(b[2+n:])
	if port == 0 || !a.IsValid() || a.IsUnspecified() {
		return netip.AddrPort{}, nil, fmt.Errorf("%w: address %s port %d", ErrEncap, a, port)
	}
	return netip.AddrPortFrom(a.Unmap(), port), b[2+n+2:], nil
}

// BackendConn is a backend's socket behind the balancer, as its QUIC
// stack sees it: datagrams from the balancer arrive from the client
// address their header names, and what the stack writes to a client goes
// to the balancer with that address in front. Anything else that arrives
// is dropped and counted.
type BackendConn struct {
	c        *net.UDPConn
	balancer netip.AddrPort
	buf      []byte // ReadFrom's; quic-go reads from one goroutine
	written  atomic.Int64
	dropped  atomic.Int64
}

// NewBackendConn wraps a backend's UDP socket behind balancer.
func NewBackendConn(c *net.UDPConn, balancer netip.AddrPort) *BackendConn {
	return &BackendConn{c: c, balancer: balancer, buf: make([]byte, 65536)}
}

// Written is how many datagrams the backend's socket wrote.
func (b *BackendConn) Written() int { return int(b.written.Load()) }

// Dropped is how many datagrams arrived that were not the balancer's or
// did not decapsulate.
func (b *BackendConn) Dropped() int { return int(b.dropped.Load()) }

// ReadFrom implements net.PacketConn.
func (b *BackendConn) ReadFrom(p []byte) (int, net.Addr, error) {
	buf := b.buf
	for {
		n, from, err := b.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return 0, nil, err
		}
		client, payload, err := Decap(buf[:n])
		if err != nil || from != b.balancer {
			b.dropped.Add(1)
			continue
		}
		return copy(p, payload), net.UDPAddrFromAddrPort(client), nil
	}
}

// WriteTo implements net.PacketConn.
func (b *BackendConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("%w: not a UDP address: %v", ErrEncap, addr)
	}
	if _, err := b.c.WriteToUDPAddrPort(Encap(ua.AddrPort(), p), b.balancer); err != nil {
		return 0, err
	}
	b.written.Add(1)
	return len(p), nil
}

// Close implements net.PacketConn.
func (b *BackendConn) Close() error { return b.c.Close() }

// LocalAddr implements net.PacketConn.
func (b *BackendConn) LocalAddr() net.Addr { return b.c.LocalAddr() }

// SetDeadline implements net.PacketConn.
func (b *BackendConn) SetDeadline(t time.Time) error { return b.c.SetDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (b *BackendConn) SetReadDeadline(t time.Time) error { return b.c.SetReadDeadline(t) }

// SetReadBuffer sets the socket's receive buffer (quic-go asks).
func (b *BackendConn) SetReadBuffer(n int) error { return b.c.SetReadBuffer(n) }

// SetWriteBuffer sets the socket's send buffer (quic-go asks).
func (b *BackendConn) SetWriteBuffer(n int) error { return b.c.SetWriteBuffer(n) }

// SetWriteDeadline implements net.PacketConn.
func (b *BackendConn) SetWriteDeadline(t time.Time) error { return b.c.SetWriteDeadline(t) }
