package rawtcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// The checksum-offload path. On loopback the kernel never sums TCP
// payloads: its segments go out CHECKSUM_PARTIAL, the field holding only
// the pseudo-header's sum, and lo's "hardware" is trusted to have done the
// rest. A segment sent on the raw IP socket is CHECKSUM_NONE instead: the
// lab sums the payload to fill the field, and the receiving kernel sums it
// again to check it. A packet socket with PACKET_VNET_HDR lets the lab say
// what a virtual NIC's driver says, "checksum needed from csum_start, into
// csum_offset" (struct virtio_net_hdr, VIRTIO_NET_HDR_F_NEEDS_CSUM), so the
// segment is CHECKSUM_PARTIAL like the kernel's own, and neither side sums
// the payload. The frame goes to lo's queue directly, not through the IP
// layer: the link writes the IPv4 header itself, and the nftables OUTPUT
// hook, where the RST filter sits, never sees the lab's segments (so the
// lab's own RSTs need no mark to pass it).

// Frame layout: virtio_net_hdr, then an Ethernet header (lo's addresses
// are all zeros), then IPv4 and TCP.
const (
	vnetHdrLen  = 10
	ethHdrLen   = 14
	ipv4HdrLen  = 20
	vnetNeedsCS = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
)

// A frame put on lo's queue reaches IPv4 without the route a locally sent
// packet carries, so the input route lookup judges it as if it came from a
// wire: a destination in 127.0.0.0/8 is martian unless lo's route_localnet
// is on, and a source that is one of the namespace's own addresses is
// martian unless lo's accept_local is on. The link turns both on in its
// namespace (which OpenLink has checked is the one it was given) while any
// offloading link of the process is open, and puts back what was there when
// the last closes.
var loSysctls = [...]string{"/proc/sys/net/ipv4/conf/lo/accept_local", "/proc/sys/net/ipv4/conf/lo/route_localnet"}

var localnet struct {
	sync.Mutex
	users int
	saved [len(loSysctls)][]byte
}

// acquireLocalnet turns lo's accept_local and route_localnet on, or
// counts one more user; on failure it leaves them as they were.
func acquireLocalnet() error {
	localnet.Lock()
	defer localnet.Unlock()
	if localnet.users > 0 {
		localnet.users++
		return nil
	}
	for i, p := range loSysctls {
		old, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(p, []byte("1"), 0)
		}
		if err != nil {
			for j := range i {
				_ = os.WriteFile(loSysctls[j], localnet.saved[j], 0)
			}
			return err
		}
		localnet.saved[i] = old
	}
	localnet.users = 1
	return nil
}

// releaseLocalnet puts lo's settings back when the last user goes.
func releaseLocalnet() {
	localnet.Lock()
	defer localnet.Unlock()
	if localnet.users--; localnet.users > 0 {
		return
	}
	for i, p := range loSysctls {
		_ = os.WriteFile(p, localnet.saved[i], 0)
	}
}

// openOffload opens a send-only packet socket on lo (protocol 0: it
// receives nothing) with virtio-net headers on, and lets lo's input accept
// what it sends. It needs CAP_NET_RAW and CAP_NET_ADMIN in the namespace,
// as the raw socket and the RST filter do.
func openOffload() (*os.File, int, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, 0, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, 0, err
	}
	if err := acquireLocalnet(); err != nil {
		unix.Close(fd)
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int, error) {
		unix.Close(fd)
		releaseLocalnet()
		return nil, 0, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: lo.Index}); err != nil {
		return fail(err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	return os.NewFile(uintptr(fd), "packet-lo"), lo.Index, nil
}

// sendOffload sends seg to dst as one frame on lo, its checksum left to
// the offload. Caller holds wmu.
func (l *Link) sendOffload(seg *tcpstate.Segment, dst [4]byte) error {
	total := ipv4HdrLen + seg.HeaderLen() + len(seg.Payload)
	if total > 0xffff {
		return fmt.Errorf("%w: sendmsg: a %d-byte IPv4 packet: %w", ErrRawSocket, total, unix.EMSGSIZE)
	}
	b := l.wbuf[:0]
	// The virtio-net header's fields are in the host's byte order (a
	// legacy virtio header: little-endian on little-endian hosts).
	b = append(b, vnetNeedsCS, 0, 0, 0, 0, 0) // flags, gso_type none, hdr_len, gso_size
	b = binary.NativeEndian.AppendUint16(b, ethHdrLen+ipv4HdrLen)
	b = binary.NativeEndian.AppendUint16(b, 16) // the TCP checksum's offset
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00)
	l.ipID++
	ip := len(b)
	b = append(b, 0x45, 0, byte(total>>8), byte(total), byte(l.ipID>>8), byte(l.ipID),
		0x40, 0, // DF, as the kernel's TCP sends on lo
		64, unix.IPPROTO_TCP, 0, 0)
	b = append(b, l.addr[:]...)
	b = append(b, dst[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], ipv4Checksum(b[ip:ip+ipv4HdrLen]))
	b, err := seg.AppendHeaderOffload(b, l.addr, dst)
	if err != nil {
		return err
	}
	return l.sendmsg(l.pkt, b, seg.Payload, &unix.SockaddrLinklayer{Ifindex: l.loIdx, Protocol: htons(unix.ETH_P_IP)})
}

// ipv4Checksum is the checksum of an IPv4 header whose checksum field is
// zero (RFC 791, RFC 1071).
func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// htons is v in network byte order, as sockaddr_ll's protocol field holds
// it in memory.
func htons(v uint16) uint16 { return binary.NativeEndian.Uint16([]byte{byte(v >> 8), byte(v)}) }

// Offloaded reports whether the link sends with checksum offload.
func (l *Link) Offloaded() bool { return l.pkt != nil }
