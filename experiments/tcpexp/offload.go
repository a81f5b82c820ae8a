package tcpexp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
)

// Loopback segmentation offload. The kernel's TCP builds segments of up
// to 64 KiB for a device that segments them itself (TSO) or has the stack
// segment them late (GSO); loopback does neither and carries them whole,
// so the lab's link would receive one 9880-byte "segment" where the wire
// of any other device has ten. An experiment about which segments of a
// burst are lost turns both off on the lab namespace's lo (CAP_NET_ADMIN
// there), restoring them when it ends, through the ethtool ioctl.

// errOffload: the ethtool ioctl on lo failed.
var errOffload = errors.New("tcpexp: loopback segmentation offload")

// ethtool commands (linux/ethtool.h).
const (
	ethtoolGTSO = 0x1e
	ethtoolSTSO = 0x1f
	ethtoolGGSO = 0x23
	ethtoolSGSO = 0x24
)

type ethtoolValue struct{ cmd, data uint32 }

// ifreqData is struct ifreq with its union holding a pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

func ethtool(fd int, dev string, cmd, data uint32) (uint32, error) {
	v := ethtoolValue{cmd: cmd, data: data}
	var ifr ifreqData
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, errno
	}
	return v.data, nil
}

// noLoopbackOffload turns TSO and GSO off on lo until the experiment ends.
func noLoopbackOffload(env *lab.Env) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: socket: %w", errOffload, err)
	}
	for _, c := range []struct {
		name     string
		get, set uint32
	}{{"TSO", ethtoolGTSO, ethtoolSTSO}, {"GSO", ethtoolGGSO, ethtoolSGSO}} {
		was, err := ethtool(fd, "lo", c.get, 0)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("%w: reading %s: %w", errOffload, c.name, err)
		}
		if was == 0 {
			continue
		}
		if _, err := ethtool(fd, "lo", c.set, 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("%w: turning %s off (needs CAP_NET_ADMIN in the lab's namespace): %w", errOffload, c.name, err)
		}
		set := c.set
		env.Cleanup(func() {
			if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
				_, _ = ethtool(fd, "lo", set, was)
				unix.Close(fd)
			}
		})
	}
	return unix.Close(fd)
}
