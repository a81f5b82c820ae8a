package rawtcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// The link reads the kernel's segments from a raw IPv4 socket, and puts
// the engine's on lo through a packet socket with the checksum offloaded
// (offload.go) or, with LinkConfig.SoftwareChecksum or where that socket
// cannot be had, through the same raw socket with the checksum summed by
// the lab.
//
// Why a raw IP socket (and not a packet socket on an address the kernel
// does not own): inside a namespace of its own the only interface is lo, and
// every address of 127.0.0.0/8 is local on lo, so there is no address the
// kernel does not own without adding interfaces and routes. A raw
// IPPROTO_TCP socket bound to the lab's address receives a copy of every
// TCP segment delivered to that address (after netfilter INPUT, which we
// leave alone), and sends segments whose IPv4 header the kernel builds. A
// classic BPF filter attached to the socket keeps only segments for the
// lab's port range, so the reader does not copy the lab's own outgoing
// segments looping back on lo or unrelated kernel traffic.
//
// The price is that the kernel's TCP also sees the segments addressed to the
// lab's ports, finds no socket and answers each with a RST. Those RSTs are
// suppressed by an nftables OUTPUT rule (rstfilter.go). Segments the link
// sends on the raw socket carry SO_MARK LinkConfig.Mark, and the rule drops
// only RSTs without that mark, so the lab's own RSTs go out; those it sends
// on the packet socket never pass OUTPUT at all.

// Errors of the link and driver.
var (
	// ErrLinkClosed: the link (or the stack on it) was closed.
	ErrLinkClosed = errors.New("rawtcp: link closed")
	// ErrRawSocket: the raw socket could not be opened or configured.
	ErrRawSocket = errors.New("rawtcp: raw socket")
	// ErrNotLoopback: the driver only talks inside 127.0.0.0/8.
	ErrNotLoopback = errors.New("rawtcp: address outside 127.0.0.0/8")
	// ErrSegmentLost: the kernel had no buffer for an outgoing segment
	// (ENOBUFS). The segment is lost, as on a congested link, and counted
	// (Link.LostSegments); TCP's retransmission recovers it.
	ErrSegmentLost = errors.New("rawtcp: segment lost (no buffer space)")
)

// LinkConfig configures a raw link. Zero values pick the defaults shown.
type LinkConfig struct {
	// Addr is the lab's IPv4 address (default 127.0.0.1). It must be in
	// 127.0.0.0/8: the driver never sends anywhere else.
	Addr netip.Addr
	// PortMin..PortMax are the lab's ports (default 61000..61999, above
	// Linux's default ephemeral range 32768..60999 so kernel sockets do
	// not collide with them). The kernel's RSTs from these ports are
	// suppressed while the link is open.
	PortMin, PortMax uint16
	// Mark is the SO_MARK of the lab's own segments (default 0x5741B).
	Mark uint32
	// NoRSTFilter leaves the kernel's RSTs alone (for showing what they do).
	NoRSTFilter bool
	// NetNS is the network namespace the link may alter, as CurrentNetNS
	// names it ("net:[4026532281]"): the link installs its nftables rule
	// and sends raw segments there. OpenLink refuses (ErrNamespace) unless
	// it names the namespace the process is in, so the driver never
	// touches a namespace its caller did not mean. Run the program in a
	// network namespace of its own (unshare -rn, ip netns exec, a
	// container, statelab's sandbox) and pass CurrentNetNS() from there.
	NetNS string
	// SoftwareChecksum sends every segment through the raw IP socket with
	// its checksum computed by the lab, as before the offload: on
	// loopback the lab then sums each payload, and so does the kernel
	// that receives it. By default the link sends on a packet socket on lo
	// with a virtio-net header that asks for checksum offload (when it can
	// open one): the segment's checksum field holds the pseudo-header's
	// sum, as the kernel's own segments on lo do, and nobody sums the
	// payload. With AllowInitNetNS the link never offloads: the offload
	// turns on lo's accept_local and route_localnet (offload.go), which a
	// host's namespace should not have changed under it.
	SoftwareChecksum bool
	// AllowInitNetNS lets NetNS be the namespace of PID 1 — on a machine,
	// the host's own — where the rule would suppress the RSTs of every
	// socket on the lab's ports. Without it OpenLink refuses that
	// namespace when it can tell (when /proc/1/ns/net is readable).
	AllowInitNetNS bool
}

// WithDefaults is c with the defaults of its zero fields filled in.
func (c LinkConfig) WithDefaults() LinkConfig {
	if !c.Addr.IsValid() {
		c.Addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if c.PortMin == 0 {
		c.PortMin = 61000
	}
	if c.PortMax == 0 || c.PortMax < c.PortMin {
		c.PortMax = max(c.PortMin, 61999)
	}
	if c.Mark == 0 {
		c.Mark = 0x5741B
	}
	return c
}

// frame is one received IPv4 TCP segment.
type frame struct {
	src, dst [4]byte
	seg      tcpstate.Segment
}

// Link is a raw IPv4 TCP socket for the lab's address and port range, with
// the kernel's RSTs for that range suppressed.
type Link struct {
	cfg  LinkConfig
	addr [4]byte
	fd   int
	file *os.File
	rst  *rstFilter

	wmu  sync.Mutex
	wbuf []byte
	iov  [2][]byte    // header (wbuf) and payload of the segment being sent; guarded by wmu
	lost atomic.Int64 // segments the kernel refused with ENOBUFS

	// The checksum-offload path (offload.go): a packet socket on lo, nil
	// when LinkConfig.SoftwareChecksum is set or it could not be opened.
	pkt   *os.File
	loIdx int
	ipID  uint16 // guarded by wmu

	closeOnce sync.Once
}

// OpenLink opens the raw socket and installs the RST filter. It needs
// CAP_NET_RAW and CAP_NET_ADMIN in the current network namespace, which a
// user namespace gives an unprivileged user in a network namespace it made.
// It refuses (ErrNamespace) unless cfg.NetNS names the namespace the
// process is in (see LinkConfig.NetNS): in any other, the RST rule would
// break that namespace's own TCP on the lab's ports, and the raw segments
// would reach its loopback.
func OpenLink(cfg LinkConfig) (*Link, error) {
	if err := checkNetNS(cfg.NetNS, cfg.AllowInitNetNS); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if !cfg.Addr.Is4() || !cfg.Addr.IsLoopback() {
		return nil, fmt.Errorf("%w: %v", ErrNotLoopback, cfg.Addr)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("%w: socket (needs CAP_NET_RAW in this network namespace): %w", ErrRawSocket, err)
	}
	l := &Link{cfg: cfg, addr: cfg.Addr.As4(), fd: fd, wbuf: make([]byte, 0, 65536)}
	fail := func(what string, err error) (*Link, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: %s: %w", ErrRawSocket, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(cfg.Mark)); err != nil {
		return fail("SO_MARK (needs CAP_NET_ADMIN)", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: l.addr}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, portFilter(cfg.PortMin, cfg.PortMax)); err != nil {
		return fail("attaching the port filter", err)
	}
	// Room for a burst of 64 KiB segments while the reader is descheduled.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	if !cfg.NoRSTFilter {
		r, err := installRSTFilter(l.addr, cfg.PortMin, cfg.PortMax, cfg.Mark)
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		l.rst = r
	}
	l.file = os.NewFile(uintptr(fd), "raw-tcp")
	if !cfg.SoftwareChecksum && !cfg.AllowInitNetNS {
		// Without it the raw socket sends everything, checksums summed
		// by the lab: slower, the same segments. Never in a namespace
		// that may be the host's: the offload changes lo's settings.
		l.pkt, l.loIdx, _ = openOffload()
	}
	return l, nil
}

// portFilter is a classic BPF program for a raw IPv4 socket (the program
// sees the packet from the IP header): accept TCP segments whose
// destination port is in [lo, hi].
func portFilter(lo, hi uint16) *unix.SockFprog {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0}, // X = IP header length
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: 2},  // A = TCP destination port
		{Code: unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, Jt: 0, Jf: 2, K: uint32(lo)},
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, Jt: 1, Jf: 0, K: uint32(hi)},
		{Code: unix.BPF_RET | unix.BPF_K, K: 1 << 18},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	return &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
}

// Addr is the lab's address.
func (l *Link) Addr() netip.Addr { return l.cfg.Addr }

// Config returns the link's configuration with defaults filled in.
func (l *Link) Config() LinkConfig { return l.cfg }

// SuppressedRSTs returns how many kernel RSTs the filter has dropped, or
// -1 when it cannot tell.
func (l *Link) SuppressedRSTs() int64 {
	if l.rst == nil {
		return -1
	}
	return l.rst.count()
}

// LostSegments returns how many segments Send lost to ENOBUFS.
func (l *Link) LostSegments() int64 { return l.lost.Load() }

// Send encodes seg with its checksum and sends it to dst. It is safe for
// concurrent use. When the socket's buffer is full (EAGAIN) it waits until
// the socket is writable again, which it becomes as soon as loopback has
// delivered a queued segment. ENOBUFS (the kernel out of buffers, with no
// promise of a writability event) is not waited for: the segment is lost,
// counted, and ErrSegmentLost returned; the engine's retransmission timer
// recovers it as it would a segment lost on the wire.
func (l *Link) Send(seg *tcpstate.Segment, dst [4]byte) error {
	if dst[0] != 127 {
		return fmt.Errorf("%w: %v", ErrNotLoopback, netip.AddrFrom4(dst))
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if l.pkt != nil {
		return l.sendOffload(seg, dst)
	}
	// The header is built in wbuf; the payload goes out from where it is
	// (two buffers of one sendmsg), not copied after the header.
	b, err := seg.AppendHeader(l.wbuf[:0], l.addr, dst)
	if err != nil {
		return err
	}
	return l.sendmsg(l.file, b, seg.Payload, &unix.SockaddrInet4{Addr: dst})
}

// sendmsg sends hdr (in wbuf, which it keeps for the next segment) and
// payload as two buffers of one sendmsg on f to sa, waiting while the
// socket's buffer is full, and judges the result. Caller holds wmu.
func (l *Link) sendmsg(f *os.File, hdr, payload []byte, sa unix.Sockaddr) error {
	l.wbuf = hdr[:0]
	l.iov[0], l.iov[1] = hdr, payload
	defer func() { l.iov[1] = nil }()
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkClosed, err)
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgBuffers(int(fd), l.iov[:], nil, sa, 0)
		return serr != unix.EAGAIN
	})
	return l.sent(err, serr)
}

// sent judges a send: the socket closed (err), or the system call's error.
func (l *Link) sent(err, serr error) error {
	if err != nil {
		return fmt.Errorf("%w: %w", ErrLinkClosed, err)
	}
	if serr == unix.ENOBUFS {
		l.lost.Add(1)
		return ErrSegmentLost
	}
	if serr != nil {
		return fmt.Errorf("%w: sendmsg: %w", ErrRawSocket, serr)
	}
	return nil
}

// receive reads segments until the link is closed, calling deliver for
// each. The frame and its payload are valid only during the call.
func (l *Link) receive(deliver func(*frame)) error {
	rc, err := l.file.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<17)
	var f frame
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			// read(2), not recvfrom: the source is in the IP header, and
			// x/sys's Recvfrom spends a getsockopt per datagram decoding
			// an AF_INET address (its L2TP check).
			n, rerr = unix.Read(int(fd), buf)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return ErrLinkClosed
		}
		if rerr != nil {
			if rerr == unix.EINTR || rerr == unix.ENOBUFS {
				continue
			}
			return fmt.Errorf("%w: read: %w", ErrRawSocket, rerr)
		}
		if !parseIPv4(buf[:n], &f) {
			continue
		}
		// The checksum is not verified: on lo the kernel leaves TCP
		// checksums to "hardware" (CHECKSUM_PARTIAL), so the field of a
		// segment the kernel sent holds only the pseudo-header sum.
		deliver(&f)
	}
}

// parseIPv4 decodes an IPv4 packet carrying TCP into f.
func parseIPv4(b []byte, f *frame) bool {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_TCP {
		return false
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || total < ihl || total > len(b) {
		return false
	}
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 { // a fragment
		return false
	}
	copy(f.src[:], b[12:16])
	copy(f.dst[:], b[16:20])
	return f.seg.Decode(b[ihl:total]) == nil
}

// Close removes the RST filter and closes the socket.
func (l *Link) Close() error {
	var err error
	l.closeOnce.Do(func() {
		err = l.file.Close()
		if l.pkt != nil {
			l.pkt.Close()
			releaseLocalnet()
		}
		if l.rst != nil {
			if rerr := l.rst.remove(); err == nil {
				err = rerr
			}
		}
	})
	return err
}
