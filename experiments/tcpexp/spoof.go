package tcpexp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// sendAs puts seg on the lab namespace's loopback as if src had sent it to
// dst: a raw IPv4 packet with its own header (IPPROTO_RAW), for a segment
// no endpoint would send now — tcp/timestamps replays a kernel segment
// with its old timestamp. Both addresses must be loopback ones.

// errSpoof: the segment could not be sent.
var errSpoof = errors.New("tcpexp: sending a segment as the kernel")

func sendAs(src, dst netip.AddrPort, seg tcpstate.Segment) error {
	if !src.Addr().Is4() || !src.Addr().IsLoopback() || !dst.Addr().Is4() || !dst.Addr().IsLoopback() {
		return fmt.Errorf("%w: %v → %v: loopback IPv4 only", errSpoof, src, dst)
	}
	seg.SrcPort, seg.DstPort = src.Port(), dst.Port()
	tcp, err := seg.AppendWire(nil, src.Addr().As4(), dst.Addr().As4())
	if err != nil {
		return fmt.Errorf("%w: %w", errSpoof, err)
	}
	pkt := ipv4Header(src.Addr().As4(), dst.Addr().As4(), len(tcp))
	pkt = append(pkt, tcp...)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("%w: raw socket (needs CAP_NET_RAW in the lab's namespace): %w", errSpoof, err)
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()}); err != nil {
		return fmt.Errorf("%w: sendto: %w", errSpoof, err)
	}
	return nil
}

// ipv4Header is a 20-byte IPv4 header for a TCP payload of n bytes, with
// its checksum.
func ipv4Header(src, dst [4]byte, n int) []byte {
	h := make([]byte, 20, 20+n)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+n))
	binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
	h[8], h[9] = 64, unix.IPPROTO_TCP
	copy(h[12:], src[:])
	copy(h[16:], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
	return h
}
