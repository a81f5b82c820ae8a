package rawtcp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// diagMsg builds one netlink message of a dump's answer holding an
// inet_diag_msg.
func diagMsg(state uint8, local, remote netip.AddrPort, rq, wq uint32) []byte {
	ne := binary.NativeEndian
	m := make([]byte, 16+diagMsgLen)
	ne.PutUint32(m[0:], uint32(len(m)))
	ne.PutUint16(m[4:], unix.SOCK_DIAG_BY_FAMILY)
	b := m[16:]
	b[0], b[1] = unix.AF_INET, state
	binary.BigEndian.PutUint16(b[4:], local.Port())
	binary.BigEndian.PutUint16(b[6:], remote.Port())
	la, ra := local.Addr().As4(), remote.Addr().As4()
	copy(b[8:], la[:])
	copy(b[24:], ra[:])
	ne.PutUint32(b[56:], rq)
	ne.PutUint32(b[60:], wq)
	return m
}

func nlDone() []byte {
	m := make([]byte, 20)
	binary.NativeEndian.PutUint32(m[0:], 20)
	binary.NativeEndian.PutUint16(m[4:], unix.NLMSG_DONE)
	return m
}

func TestParseDiagDump(t *testing.T) {
	lst := netip.MustParseAddrPort("127.0.0.1:5000")
	peer := netip.MustParseAddrPort("127.0.0.1:61000")
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	tests := []struct {
		name    string
		in      []byte
		want    []KernelSocket
		done    bool
		errText string
	}{
		{"a listener with its backlog, then the end", cat(diagMsg(0x0A, lst, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0, 1), nlDone()),
			[]KernelSocket{{Local: lst, Remote: netip.AddrPortFrom(netip.IPv4Unspecified(), 0), State: "LISTEN", WQueue: 1}}, true, ""},
		{"a request socket is SYN-RECEIVED", diagMsg(0x03, lst, peer, 0, 0),
			[]KernelSocket{{Local: lst, Remote: peer, State: "SYN-RECEIVED"}}, false, ""},
		{"an unknown state is named by number", diagMsg(0x2A, lst, peer, 0, 0),
			[]KernelSocket{{Local: lst, Remote: peer, State: "state 42"}}, false, ""},
		{"the end alone", nlDone(), nil, true, ""},
		{"a short header", []byte{1, 2, 3}, nil, false, "shorter than a netlink header"},
		{"a length beyond the datagram", func() []byte { m := nlDone(); binary.NativeEndian.PutUint32(m, 99); return m }(), nil, false, "netlink message length 99"},
		{"a truncated inet_diag_msg", func() []byte { m := diagMsg(1, lst, peer, 0, 0)[:40]; binary.NativeEndian.PutUint32(m, 40); return m }(), nil, false, "inet_diag_msg of 24 bytes"},
		{"a kernel error", func() []byte {
			m := make([]byte, 20)
			binary.NativeEndian.PutUint32(m[0:], 20)
			binary.NativeEndian.PutUint16(m[4:], unix.NLMSG_ERROR)
			binary.NativeEndian.PutUint32(m[16:], uint32(0xffffffff-uint32(unix.EPERM)+1))
			return m
		}(), nil, false, "kernel error 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, done, err := parseDiagDump(tt.in)
			if tt.errText != "" {
				if err == nil || !errors.Is(err, ErrDiagDump) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("err %v, want ErrDiagDump with %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if done != tt.done || len(got) != len(tt.want) {
				t.Fatalf("got %+v done=%v, want %+v done=%v", got, done, tt.want, tt.done)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("socket %d: %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseDiagDump(f *testing.F) {
	lst := netip.MustParseAddrPort("127.0.0.1:5000")
	f.Add(diagMsg(0x0A, lst, lst, 0, 1))
	f.Add(nlDone())
	f.Add([]byte{})
	f.Add([]byte{16, 0, 0, 0, 20, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _, err := parseDiagDump(b)
		if err != nil && socks != nil {
			t.Fatalf("sockets %v with error %v", socks, err)
		}
	})
}

// A kernel listener with backlog 1 is in the dump with its backlog, and
// the dump lists nothing for another port.
func TestKernelSocketsListsAListenerAndItsBacklog(t *testing.T) {
	netNS(t)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(sa.(*unix.SockaddrInet4).Port)
	socks, err := KernelSockets(port)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 1 || socks[0].State != "LISTEN" || socks[0].WQueue != 1 || socks[0].RQueue != 0 {
		t.Fatalf("dump for port %d: %+v, want one LISTEN socket with backlog 1", port, socks)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other := netip.MustParseAddrPort(ln.Addr().String()).Port()
	if socks, err := KernelSockets(other + 1); err != nil || len(socks) != 0 {
		t.Fatalf("dump for an unused port: %+v, %v", socks, err)
	}
}
