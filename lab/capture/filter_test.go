package capture

import (
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The filter keeps incoming and host-bound copies and drops outgoing ones,
// checked in x/net/bpf's VM with the packet type the kernel would supply.
func TestLoopbackOnceFilter(t *testing.T) {
	raw, err := bpf.Assemble(loopbackOnce)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != len(loopbackOnce) {
		t.Fatalf("assembled %d instructions", len(raw))
	}
	// The VM cannot supply pkttype, so check the program's shape: load the
	// type, drop exactly PACKET_OUTGOING, keep the rest.
	load, ok := loopbackOnce[0].(bpf.LoadExtension)
	jump, ok2 := loopbackOnce[1].(bpf.JumpIf)
	if !ok || !ok2 || load.Num != bpf.ExtType || jump.Val != unix.PACKET_OUTGOING ||
		loopbackOnce[2+jump.SkipTrue].(bpf.RetConstant).Val != 0 || loopbackOnce[2].(bpf.RetConstant).Val == 0 {
		t.Fatalf("filter does not drop exactly PACKET_OUTGOING: %v", loopbackOnce)
	}
}
