package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// loopbackOnce is a classic BPF program that drops the outgoing copy of each
// packet in the kernel: on lo every packet passes a packet socket twice, and
// only the incoming copy is kept, as libpcap does. It halves what crosses
// into user space; read() still checks pkttype in case the filter is absent.
var loopbackOnce = []bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
	bpf.RetConstant{Val: 0x40000}, // keep up to 256 KiB of the packet
	bpf.RetConstant{Val: 0},       // drop
}

// attachFilter installs prog on the socket.
func attachFilter(fd int, prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("capture: assembling BPF: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("capture: attaching BPF: %w", err)
	}
	return nil
}
