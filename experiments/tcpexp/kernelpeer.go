package tcpexp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// kernelPeer is the kernel's side of the experiments: a listener whose
// accepted sockets arrive on a channel.
type kernelPeer struct {
	ln   *net.TCPListener
	addr netip.AddrPort
	acc  chan *net.TCPConn
}

// listenKernel opens a kernel listener on 127.0.0.1; rcvbuf > 0 sets
// SO_RCVBUF on it before listen(), so accepted sockets inherit it and the
// SYN-ACK already advertises the window: a small one for tcp/window, a
// large one where the kernel's reader must never limit the sender.
func listenKernel(ctx context.Context, rcvbuf int) (*kernelPeer, error) {
	lc := net.ListenConfig{}
	if rcvbuf > 0 {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				// FORCE ignores net.core.rmem_max (CAP_NET_ADMIN in the
				// lab's namespace); the value means the same either way.
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf)
				if serr != nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
				}
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	l, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpstate: kernel listener: %w", err)
	}
	return startKernelPeer(l.(*net.TCPListener)), nil
}

// listenKernelBacklog opens a kernel listener on 127.0.0.1 with listen()'s
// backlog argument set to backlog (the standard library always asks for
// net.core.somaxconn): the listener's SYN and accept queues are that
// short.
func listenKernelBacklog(backlog int) (*kernelPeer, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("tcpstate: kernel listener: %w", err)
	}
	f := os.NewFile(uintptr(fd), "kernel listener")
	defer f.Close() // net.FileListener keeps a duplicate
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return nil, fmt.Errorf("tcpstate: kernel listener: bind: %w", err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return nil, fmt.Errorf("tcpstate: kernel listener: listen(%d): %w", backlog, err)
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("tcpstate: kernel listener: %w", err)
	}
	return startKernelPeer(l.(*net.TCPListener)), nil
}

// startKernelPeer accepts l's connections onto the peer's channel.
func startKernelPeer(l *net.TCPListener) *kernelPeer {
	k := &kernelPeer{ln: l, acc: make(chan *net.TCPConn, 8)}
	k.addr = netip.MustParseAddrPort(l.Addr().String())
	go func() {
		defer close(k.acc)
		for {
			c, err := k.ln.AcceptTCP()
			if err != nil {
				return
			}
			k.acc <- c
		}
	}()
	return k
}

// accept waits for the kernel's next accepted socket.
func (k *kernelPeer) accept(ctx context.Context) (*net.TCPConn, error) {
	select {
	case c, ok := <-k.acc:
		if !ok {
			return nil, net.ErrClosed
		}
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (k *kernelPeer) Close() error { return k.ln.Close() }

// kernelLocal is the kernel socket's own address, for KernelState.
func kernelLocal(c net.Conn) netip.AddrPort { return netip.MustParseAddrPort(c.LocalAddr().String()) }

// deadline is a read/write deadline for kernel sockets: ctx's, or d from now.
func deadline(ctx context.Context, d time.Duration) time.Time {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		return dl
	}
	return t
}
