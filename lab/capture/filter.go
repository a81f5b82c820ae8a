package capture

import (
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// loopbackOnce is a classic BPF program that drops the outgoing copy of each
// packet in the kernel: on lo every packet passes a packet socket twice, and
// only the incoming copy is kept, as libpcap does. It halves what crosses
// into the capture's ring.
var loopbackOnce = []bpf.Instruction{
	bpf.LoadExtension{Num: bpf.ExtType},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.PACKET_OUTGOING, SkipTrue: 1},
	bpf.RetConstant{Val: 0x40000}, // keep up to 256 KiB of the packet
	bpf.RetConstant{Val: 0},       // drop
}
