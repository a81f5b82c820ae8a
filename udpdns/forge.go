package udpdns

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Forger sends UDP datagrams with any IPv4 source address and port it likes,
// through a raw socket: the off-path attacker of the spoofing experiment.
// It needs CAP_NET_RAW, which the lab's namespace grants.
type Forger struct {
	fd   int
	buf  []byte
	sent int
}

// NewForger opens the raw socket.
func NewForger() (*Forger, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("udpdns: raw socket for forged replies (needs CAP_NET_RAW): %w", err)
	}
	return &Forger{fd: fd, buf: make([]byte, 0, 1500)}, nil
}

// Send writes payload as a UDP datagram from src to dst. Only loopback
// destinations are allowed.
func (f *Forger) Send(src, dst netip.AddrPort, payload []byte) error {
	if !src.Addr().Is4() || !dst.Addr().Is4() || !dst.Addr().IsLoopback() {
		return fmt.Errorf("udpdns: forger sends IPv4 to loopback only, not %v → %v", src, dst)
	}
	total := 20 + 8 + len(payload)
	b := f.buf[:0]
	b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0x40, 0, 64, unix.IPPROTO_UDP, 0, 0)
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[10:], ipChecksum(b[:20]))
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(payload)))
	b = append(b, 0, 0) // no UDP checksum: allowed over IPv4
	b = append(b, payload...)
	f.buf = b
	if err := unix.Sendto(f.fd, b, 0, &unix.SockaddrInet4{Addr: d4}); err != nil {
		return fmt.Errorf("udpdns: forging %v → %v: %w", src, dst, err)
	}
	f.sent++
	return nil
}

// Sent counts datagrams forged.
func (f *Forger) Sent() int { return f.sent }

// Close closes the raw socket.
func (f *Forger) Close() error { return unix.Close(f.fd) }

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
