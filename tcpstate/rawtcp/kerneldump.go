package rawtcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// ErrDiagDump: a sock_diag dump could not be made or its answer read.
var ErrDiagDump = errors.New("rawtcp: sock_diag dump")

// KernelSocket is one IPv4 TCP socket of the kernel's, as a sock_diag dump
// lists it. A request socket (a SYN the kernel answered and remembers, its
// SYN-RECEIVED) is listed as "SYN-RECEIVED" beside the listener it belongs
// to; a SYN answered with a SYN cookie leaves nothing to list.
type KernelSocket struct {
	Local, Remote netip.AddrPort
	State         string // RFC 9293 name
	// RQueue and WQueue are inet_diag's idiag_rqueue and idiag_wqueue: for
	// a listener, its accept queue's length and its backlog (the listen()
	// argument as the kernel took it); for other sockets, bytes queued.
	RQueue, WQueue uint32
}

// KernelSockets dumps the kernel's IPv4 TCP sockets of the current network
// namespace in every state, request sockets included, and returns those
// whose local port is port.
func KernelSockets(port uint16) ([]KernelSocket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiagDump, err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(time.Second))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Sendto(fd, diagDumpRequest(), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiagDump, err)
	}
	var out []KernelSocket
	buf := make([]byte, 64<<10)
	for range 1 << 16 { // bounded: a namespace of the lab's holds a handful of sockets
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrDiagDump, err)
		}
		socks, done, err := parseDiagDump(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, s := range socks {
			if s.Local.Port() == port {
				out = append(out, s)
			}
		}
		if done {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%w: no end of dump", ErrDiagDump)
}

// diagDumpRequest is an inet_diag_req_v2 for every IPv4 TCP socket in
// every state (SYN_RECV and NEW_SYN_RECV, the request sockets, included).
func diagDumpRequest() []byte {
	const reqLen = 16 + 56
	req := make([]byte, reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], reqLen)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1)
	r := req[16:]
	r[0], r[1] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // all states
	return req
}

// diagMsgLen is the size of struct inet_diag_msg.
const diagMsgLen = 72

// parseDiagDump reads one datagram of a sock_diag dump's answer: the
// sockets its messages list, and whether it holds the dump's end
// (NLMSG_DONE). A malformed message is an error, never a panic.
func parseDiagDump(b []byte) ([]KernelSocket, bool, error) {
	ne := binary.NativeEndian
	var out []KernelSocket
	for len(b) > 0 {
		if len(b) < 16 {
			return nil, false, fmt.Errorf("%w: %d bytes left, shorter than a netlink header", ErrDiagDump, len(b))
		}
		l := int(ne.Uint32(b[0:]))
		if l < 16 || l > len(b) {
			return nil, false, fmt.Errorf("%w: netlink message length %d of %d bytes", ErrDiagDump, l, len(b))
		}
		body := b[16:l]
		switch ne.Uint16(b[4:]) {
		case unix.NLMSG_DONE:
			return out, true, nil
		case unix.NLMSG_ERROR:
			if len(body) >= 4 {
				return nil, false, fmt.Errorf("%w: kernel error %d", ErrDiagDump, -int32(ne.Uint32(body)))
			}
			return nil, false, fmt.Errorf("%w: truncated error message", ErrDiagDump)
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(body) < diagMsgLen {
				return nil, false, fmt.Errorf("%w: inet_diag_msg of %d bytes, want %d", ErrDiagDump, len(body), diagMsgLen)
			}
			if body[0] == unix.AF_INET {
				out = append(out, diagSocket(body))
			}
		}
		// Messages are 4-byte aligned.
		l = (l + 3) &^ 3
		if l >= len(b) {
			break
		}
		b = b[l:]
	}
	return out, false, nil
}

// diagSocket reads one inet_diag_msg of an IPv4 socket.
func diagSocket(m []byte) KernelSocket {
	ne := binary.NativeEndian
	id := m[4:]
	var la, ra [4]byte
	copy(la[:], id[4:8])
	copy(ra[:], id[20:24])
	st, ok := kernelStates[uint64(m[1])]
	if !ok {
		st = fmt.Sprintf("state %d", m[1])
	}
	return KernelSocket{
		Local:  netip.AddrPortFrom(netip.AddrFrom4(la), binary.BigEndian.Uint16(id[0:])),
		Remote: netip.AddrPortFrom(netip.AddrFrom4(ra), binary.BigEndian.Uint16(id[2:])),
		State:  st,
		RQueue: ne.Uint32(m[56:]),
		WQueue: ne.Uint32(m[60:]),
	}
}
