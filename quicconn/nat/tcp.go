package nat

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TCP is the UDP NAT's counterpart for TCP. UDP relays datagrams and cannot
// carry TCP, so TCP goes through this NAT, built like it: it relays a
// client's connection to the server from an outside port of its own and, on
// Rebind, does to TCP what UDP.Rebind does to QUIC — forgets the binding
// (nothing more is relayed on the old outside connection) and sends the
// client's next bytes from a new port, as a segment crafted on a raw socket
// with the old connection's sequence numbers. The server's kernel knows no
// connection on the new 4-tuple and answers RST: a TCP connection is its
// 4-tuple. Like a real NAT, which translates the server's RST back to the
// client, it watches for that RST on the new port and relays it: it resets
// the client's connection, so the client's kernel reports ECONNRESET.
//
// The raw sockets need CAP_NET_RAW (a network namespace of one's own
// gives it); without it the NAT relays, and a rebinding reports the error.
type TCP struct {
	Front netip.AddrPort

	server netip.AddrPort
	ln     *net.TCPListener
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   []net.Conn
	rebind  chan TCPRebinding
	after   int64 // relayed bytes before the rebinding
	relayed int64
	fromSrv int64 // bytes read from the server on the outside connection
	closed  bool
	outside netip.AddrPort
	out     *net.TCPConn
	// iss are the outside connection's initial sequence numbers, its own
	// and the server's, read from the SYN,ACK on a raw socket (ok: seen).
	iss struct {
		own, server uint32
		ok          bool
	}
}

// TCPRebinding is what a TCP rebinding did.
type TCPRebinding struct {
	Old, New netip.AddrPort
	At       time.Time
	// Seq and Ack are the crafted segment's: the old connection's next
	// sequence number (its ISS + 1 + the bytes relayed on it) and
	// acknowledgment (the server's ISS + 1 + the bytes it sent), from the
	// ISNs the NAT read off the handshake (SeqKnown false: not seen, zeros).
	Seq, Ack uint32
	SeqKnown bool
	// RelayedBytes is how many of the client's bytes went out on the old
	// connection before the rebinding.
	RelayedBytes int64
	Sent         int   // payload bytes sent from the new port
	Err          error // crafting or sending the segment
	// RSTAt is when the server's RST to the new port was seen (zero: not
	// seen within RawWait); Relayed, that the client was reset then.
	RSTAt   time.Time
	Relayed bool
}

// RawWait bounds each wait on a raw socket: for the SYN,ACK of the
// outside connection's handshake and for the server's RST to the new port.
const RawWait = 8 * time.Second

// NewTCP listens on front and relays to server.
func NewTCP(front string, server netip.AddrPort) (*TCP, error) {
	la, err := net.ResolveTCPAddr("tcp", front)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNAT, err)
	}
	ln, err := net.ListenTCP("tcp", la)
	if err != nil {
		return nil, fmt.Errorf("%w: listening on %s: %w", ErrNAT, front, err)
	}
	n := &TCP{Front: ln.Addr().(*net.TCPAddr).AddrPort(), server: server, ln: ln}
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// Rebind arms a rebinding: once after bytes of the client's have been
// relayed, the next ones leave from a new port. The channel receives what
// happened.
func (n *TCP) Rebind(after int64) <-chan TCPRebinding {
	ch := make(chan TCPRebinding, 1)
	n.mu.Lock()
	n.rebind, n.after = ch, after
	n.mu.Unlock()
	return ch
}

// Close stops relaying.
func (n *TCP) Close() error {
	n.mu.Lock()
	n.closed = true
	conns := n.conns
	n.mu.Unlock()
	n.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	n.wg.Wait()
	return nil
}

func (n *TCP) track(c net.Conn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		c.Close()
		return false
	}
	n.conns = append(n.conns, c)
	return true
}

func (n *TCP) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return
		}
		if !n.track(c) {
			return
		}
		out, err := n.dialServer()
		if err != nil {
			c.Close()
			continue
		}
		if !n.track(out) {
			return
		}
		n.mu.Lock()
		n.outside = out.LocalAddr().(*net.TCPAddr).AddrPort()
		n.out = out
		n.mu.Unlock()
		dead := make(chan struct{})
		n.wg.Add(2)
		go n.serverToClient(c, out, dead)
		go n.clientToServer(c, out, dead)
	}
}

// dialServer opens the outside connection to the server, reading both
// initial sequence numbers off its SYN,ACK on a raw socket opened before
// the dial (when the NAT may open one).
func (n *TCP) dialServer() (*net.TCPConn, error) {
	raw, rerr := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if rerr == nil {
		defer unix.Close(raw)
	}
	out, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, net.TCPAddrFromAddrPort(n.server))
	if err != nil || rerr != nil {
		return out, err
	}
	outside := out.LocalAddr().(*net.TCPAddr).AddrPort()
	seg, ok := waitSegment(raw, time.Now().Add(RawWait), func(b []byte) bool {
		f, ok := tcpFlags(b, n.server, outside)
		return ok && f&0x12 == 0x12 // SYN|ACK
	})
	if ok {
		ihl := int(seg[0]&0x0f) * 4
		n.mu.Lock()
		n.iss.server = binary.BigEndian.Uint32(seg[ihl+4:])
		n.iss.own = binary.BigEndian.Uint32(seg[ihl+8:]) - 1
		n.iss.ok = true
		n.mu.Unlock()
	}
	return out, nil
}

// serverToClient relays the server's bytes until the binding is
// forgotten (dead closed) or the connection ends.
func (n *TCP) serverToClient(c net.Conn, out *net.TCPConn, dead <-chan struct{}) {
	defer n.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		k, err := out.Read(buf)
		select {
		case <-dead:
			return
		default:
		}
		if k > 0 {
			n.mu.Lock()
			n.fromSrv += int64(k)
			n.mu.Unlock()
			c.Write(buf[:k])
		}
		if err != nil {
			return
		}
	}
}

// clientToServer relays the client's bytes on the outside connection
// until an armed rebinding is due; then it forgets the binding (closes
// dead), sends the next bytes from a new port and relays the server's RST
// to the client.
func (n *TCP) clientToServer(c net.Conn, out *net.TCPConn, dead chan<- struct{}) {
	defer n.wg.Done()
	buf := make([]byte, 1000) // at most one crafted segment's payload
	for {
		k, err := c.Read(buf)
		if k > 0 {
			if ch := n.due(); ch != nil {
				close(dead)
				ch <- n.rebindNow(c, buf[:k])
				io.Copy(io.Discard, c) // the rest goes nowhere
				return
			}
			if _, err := out.Write(buf[:k]); err != nil {
				return
			}
			n.mu.Lock()
			n.relayed += int64(k)
			n.mu.Unlock()
		}
		if err != nil {
			out.CloseWrite()
			return
		}
	}
}

// due returns the armed rebinding's channel, disarming it, once enough of
// the client's bytes were relayed; nil otherwise.
func (n *TCP) due() chan TCPRebinding {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := n.rebind
	if ch == nil || n.relayed < n.after {
		return nil
	}
	n.rebind = nil
	return ch
}

// rebindNow sends payload from a new port and, once the server's RST is
// seen, resets the client's connection (linger 0: close sends RST).
func (n *TCP) rebindNow(c net.Conn, payload []byte) TCPRebinding {
	r := n.sendFromNewPort(payload)
	if !r.RSTAt.IsZero() {
		if tc, ok := c.(*net.TCPConn); ok && tc.SetLinger(0) == nil && tc.Close() == nil {
			r.Relayed = true
		}
	}
	return r
}

// sendFromNewPort crafts the client's bytes as a TCP segment (ACK|PSH) from
// a new port with the old connection's sequence numbers.
func (n *TCP) sendFromNewPort(payload []byte) TCPRebinding {
	n.mu.Lock()
	old := n.outside
	r := TCPRebinding{Old: old, At: time.Now(), Sent: len(payload), RelayedBytes: n.relayed, SeqKnown: n.iss.ok}
	if n.iss.ok {
		r.Seq = n.iss.own + 1 + uint32(n.relayed)
		r.Ack = n.iss.server + 1 + uint32(n.fromSrv)
	}
	n.mu.Unlock()
	// A free port: bind one, note it, release it, so the kernel has no
	// socket there: the server's RST to it reaches no socket, and the
	// NAT relays it to the client itself (waitRST).
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.Err = err
		return r
	}
	r.New = l.Addr().(*net.TCPAddr).AddrPort()
	l.Close()
	// Watch for the server's answer before sending, so it cannot be missed.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		r.Err = fmt.Errorf("%w: raw socket (needs CAP_NET_RAW in the lab's namespace): %w", ErrNAT, err)
		return r
	}
	defer unix.Close(fd)
	if r.Err = sendRawTCP(r.New, n.server, r.Seq, r.Ack, payload); r.Err != nil {
		return r
	}
	if _, ok := waitSegment(fd, time.Now().Add(RawWait), func(b []byte) bool { return isRST(b, n.server, r.New) }); ok {
		r.RSTAt = time.Now()
	}
	return r
}

// TCPCount is what one end of a TCP connection counted (tcp_info): the
// segments it sent without data, and the payload bytes it sent (with
// retransmissions). Both are exact counts of what a capture shows;
// the number of data segments is not: the kernel counts a segment sent as
// one packet of several MSS (segmentation offload: loopback carries it
// whole) as several, by an MSS that changed since.
type TCPCount struct {
	// Control is segs_out − data_segs_out: SYN, pure ACKs, FIN and RST
	// without data, window probes.
	Control uint32
	// Bytes is bytes_sent (Linux ≥ 4.19).
	Bytes uint64
	Err   error
}

// CountTCP reads what a TCP socket counted (its tcp_info).
func CountTCP(c *net.TCPConn) TCPCount {
	if c == nil {
		return TCPCount{Err: fmt.Errorf("%w: no connection", ErrNAT)}
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return TCPCount{Err: err}
	}
	var info *unix.TCPInfo
	var ierr error
	if err := rc.Control(func(fd uintptr) { info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return TCPCount{Err: err}
	}
	if ierr != nil {
		return TCPCount{Err: ierr}
	}
	return TCPCount{Control: info.Segs_out - info.Data_segs_out, Bytes: info.Bytes_sent}
}

// Outside is the NAT's outside connection to the server (zero before a
// client connected) and what its socket counted.
func (n *TCP) Outside() (netip.AddrPort, TCPCount) {
	n.mu.Lock()
	out, addr := n.out, n.outside
	n.mu.Unlock()
	return addr, CountTCP(out)
}

// waitSegment reads IPv4 TCP segments from the raw socket fd until match
// reports true for one, or until deadline; it returns that segment.
func waitSegment(fd int, deadline time.Time, match func([]byte) bool) ([]byte, bool) {
	buf := make([]byte, 65536)
	for range 1 << 16 { // bounded: every read returns a segment or times out
		left := time.Until(deadline)
		if left <= 0 {
			return nil, false
		}
		tv := unix.NsecToTimeval(left.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return nil, false
		}
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, false
		}
		if match(buf[:k]) {
			return append([]byte(nil), buf[:k]...), true
		}
	}
	return nil, false
}

// tcpFlags returns the flags of the IPv4 packet b if it is a TCP segment
// from src to dst.
func tcpFlags(b []byte, src, dst netip.AddrPort) (uint8, bool) {
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_TCP {
		return 0, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 || len(b) < ihl+14 {
		return 0, false
	}
	s, d := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
	t := b[ihl:]
	sp, dp := binary.BigEndian.Uint16(t[0:]), binary.BigEndian.Uint16(t[2:])
	if netip.AddrPortFrom(s, sp) != src || netip.AddrPortFrom(d, dp) != dst {
		return 0, false
	}
	return t[13] & 0x3f, true
}

// isRST reports whether the IPv4 packet b is a TCP segment from src to dst
// with RST set.
func isRST(b []byte, src, dst netip.AddrPort) bool {
	f, ok := tcpFlags(b, src, dst)
	return ok && f&0x04 != 0
}

// sendRawTCP sends one IPv4 TCP segment with ACK|PSH on a raw socket.
func sendRawTCP(src, dst netip.AddrPort, seq, ack uint32, payload []byte) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("%w: raw socket (needs CAP_NET_RAW in the lab's namespace): %w", ErrNAT, err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.Addr().As4()}); err != nil {
		return fmt.Errorf("%w: binding the raw socket: %w", ErrNAT, err)
	}
	seg := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], seq)
	binary.BigEndian.PutUint32(seg[8:], ack)
	seg[12] = 5 << 4
	seg[13] = 0x18 // PSH|ACK
	binary.BigEndian.PutUint16(seg[14:], 65535)
	copy(seg[20:], payload)
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src.Addr(), dst.Addr(), seg))
	if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()}); err != nil {
		return fmt.Errorf("%w: sending the segment: %w", ErrNAT, err)
	}
	return nil
}

func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	var sum uint32
	s, d := src.As4(), dst.As4()
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(s[:])
	add(d[:])
	sum += 6 + uint32(len(seg))
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
