package rawtcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's side of a connection, observed with a sock_diag netlink
// lookup of the exact 4-tuple (a hash lookup in the kernel, a few
// microseconds, cheap enough beside every segment) or, for a listener,
// /proc/net/tcp of the current network namespace (a walk of the whole
// table, too slow for the segment path).

// kernelStates maps the st column of /proc/net/tcp (include/net/tcp_states.h)
// to RFC 9293 names.
var kernelStates = map[uint64]string{
	0x01: "ESTABLISHED", 0x02: "SYN-SENT", 0x03: "SYN-RECEIVED", 0x04: "FIN-WAIT-1",
	0x05: "FIN-WAIT-2", 0x06: "TIME-WAIT", 0x07: "CLOSED", 0x08: "CLOSE-WAIT",
	0x09: "LAST-ACK", 0x0A: "LISTEN", 0x0B: "CLOSING", 0x0C: "SYN-RECEIVED",
}

// KernelState returns the RFC 9293 name of the state of the kernel's IPv4
// socket with the given local and remote ends, and false when the kernel
// has no such socket (it is CLOSED). A zero remote matches a listener.
func KernelState(local, remote netip.AddrPort) (string, bool) {
	if remote.IsValid() && local.Addr().Is4() && remote.Addr().Is4() {
		if st, ok, err := diagState(local, remote); err == nil {
			return st, ok
		}
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return "", false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 4 {
			continue
		}
		l, ok1 := procAddr(f[1])
		r, ok2 := procAddr(f[2])
		if !ok1 || !ok2 || l != local || (remote.IsValid() && r != remote) {
			continue
		}
		st, err := strconv.ParseUint(string(f[3]), 16, 8)
		if err != nil {
			continue
		}
		return kernelStates[st], true
	}
	return "", false
}

// KernelStateOr is KernelState with "CLOSED" for a missing socket.
func KernelStateOr(local, remote netip.AddrPort) string {
	if s, ok := KernelState(local, remote); ok {
		return s
	}
	return "CLOSED"
}

// procAddr parses "0100007F:EA60": the address as the kernel's native-endian
// print of a network-order word, the port in hex.
func procAddr(b []byte) (netip.AddrPort, bool) {
	h, p, ok := bytes.Cut(b, []byte{':'})
	if !ok || len(h) != 8 {
		return netip.AddrPort{}, false
	}
	var raw [4]byte
	if _, err := hex.Decode(raw[:], h); err != nil {
		return netip.AddrPort{}, false
	}
	v := binary.BigEndian.Uint32(raw[:])
	var a [4]byte
	binary.NativeEndian.PutUint32(a[:], v)
	port, err := strconv.ParseUint(string(p), 16, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port)), true
}

// diagState asks sock_diag for the TCP socket local↔remote (no dump: the
// kernel looks the 4-tuple up in its established hash, TIME-WAIT and
// request sockets included).
func diagState(local, remote netip.AddrPort) (string, bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return "", false, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const reqLen = 16 + 56
	req := make([]byte, reqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], reqLen)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(req[8:], 1)
	r := req[16:]
	r[0], r[1] = unix.AF_INET, unix.IPPROTO_TCP
	ne.PutUint32(r[4:], 0xffffffff) // all states
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	la, ra := local.Addr().As4(), remote.Addr().As4()
	copy(id[4:], la[:])
	copy(id[20:], ra[:])
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return "", false, err
	}
	var buf [512]byte
	n, _, err := unix.Recvfrom(fd, buf[:], 0)
	if err != nil {
		return "", false, err
	}
	if n < 16+2 {
		return "", false, unix.EBADMSG
	}
	switch ne.Uint16(buf[4:]) {
	case unix.NLMSG_ERROR:
		if n >= 20 && int32(ne.Uint32(buf[16:])) == -int32(unix.ENOENT) {
			return "", false, nil
		}
		return "", false, unix.EIO
	case unix.SOCK_DIAG_BY_FAMILY:
		if n < 16+8 || binary.BigEndian.Uint16(buf[22:]) != remote.Port() {
			return "", false, nil // the lookup fell back to a listener
		}
		return kernelStates[uint64(buf[17])], true, nil
	}
	return "", false, unix.EBADMSG
}
