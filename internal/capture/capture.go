package capture

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Errors returned by this package.
var (
	ErrStopped = errors.New("capture: already stopped")
	ErrSocket  = errors.New("capture: cannot open a packet socket")
)

// Options describe a capture. Zero values pick sensible defaults.
type Options struct {
	// Interface to capture on; default "lo".
	Interface string
	// Experiment names the experiment in the section and interface blocks.
	Experiment string
	// Description is a sentence written as the section comment.
	Description string
	// Keep, when set, decides which packets are recorded (for example only
	// the ports an experiment uses). Nil keeps everything.
	Keep func(*Packet) bool
	// Quiet is how long the socket must stay silent before Stop considers
	// the queue drained; default 20ms. MaxDrain bounds that wait; default 2s.
	Quiet, MaxDrain time.Duration
	// Snaplen is the most bytes kept per packet; default 262144.
	Snaplen int
}

// Capture is a running or stopped packet capture.
type Capture struct {
	path string
	opts Options
	fd   int
	file *os.File // the packet socket, in Go's poller

	mu      sync.Mutex
	packets []*Packet
	last    time.Time
	stopped bool
	secrets [][]byte
	readErr error
	done    chan struct{}
	closed  bool
}

// Start opens a packet socket on the interface and begins recording. The
// capture file is written to path by Close.
func Start(path string, opts Options) (*Capture, error) {
	if opts.Interface == "" {
		opts.Interface = "lo"
	}
	if opts.Quiet == 0 {
		opts.Quiet = 20 * time.Millisecond
	}
	if opts.MaxDrain == 0 {
		opts.MaxDrain = 2 * time.Second
	}
	if opts.Snaplen == 0 {
		opts.Snaplen = 262144
	}
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("capture: interface %q: %w", opts.Interface, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("%w on %s (needs CAP_NET_RAW in the lab's namespace): %w", ErrSocket, opts.Interface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("capture: binding to %s: %w", opts.Interface, err)
	}
	if err := attachFilter(fd, loopbackOnce); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A generous queue so a burst is not dropped while the reader is
	// descheduled on a loaded machine; drops are counted by Stats.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	c := &Capture{path: path, opts: opts, fd: fd, done: make(chan struct{}), last: time.Now()}
	c.file = os.NewFile(uintptr(fd), "packet:"+opts.Interface)
	go c.read()
	return c, nil
}

// Path is where Close writes the capture.
func (c *Capture) Path() string { return c.path }

func (c *Capture) read() {
	defer close(c.done)
	rc, err := c.file.SyscallConn()
	if err != nil {
		c.setErr(err)
		return
	}
	buf := make([]byte, c.opts.Snaplen)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err != nil { // the socket was closed by Stop
			return
		}
		if rerr != nil {
			c.setErr(rerr)
			return
		}
		now := time.Now()
		// On lo every packet passes twice, once outgoing and once incoming.
		// Keep the incoming copy, as libpcap does; otherwise Wireshark flags
		// every segment as a retransmission.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n > len(buf) {
			n = len(buf)
		}
		p := &Packet{Time: now, Data: append([]byte(nil), buf[:n]...)}
		if c.opts.Keep != nil && !c.opts.Keep(p) {
			c.mu.Lock()
			c.last = now
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		c.packets = append(c.packets, p)
		c.last = now
		c.mu.Unlock()
	}
}

func (c *Capture) setErr(err error) {
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
}

// Stop waits until the socket has been quiet for Options.Quiet (at most
// MaxDrain), stops reading and returns every packet recorded, in arrival
// order. The packets may be inspected and commented until Close. Stop is
// idempotent.
func (c *Capture) Stop() ([]*Packet, error) {
	c.mu.Lock()
	if c.stopped {
		defer c.mu.Unlock()
		return c.packets, c.readErr
	}
	c.mu.Unlock()
	deadline := time.Now().Add(c.opts.MaxDrain)
	t := time.NewTimer(c.opts.Quiet)
	for {
		<-t.C
		c.mu.Lock()
		idle := time.Since(c.last)
		c.mu.Unlock()
		if idle >= c.opts.Quiet || time.Now().After(deadline) {
			break
		}
		t.Reset(c.opts.Quiet - idle)
	}
	c.file.Close() // unblocks the reader
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	return c.packets, c.readErr
}

// Packets returns the packets recorded so far. Before Stop the slice may
// still grow; the caller must not modify it.
func (c *Capture) Packets() []*Packet {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets[:len(c.packets):len(c.packets)]
}

// AddSecrets embeds a TLS key log (NSS key log format, as written by
// crypto/tls's KeyLogWriter) in the file as a decryption-secrets block.
func (c *Capture) AddSecrets(keylog []byte) {
	if len(keylog) == 0 {
		return
	}
	c.mu.Lock()
	c.secrets = append(c.secrets, append([]byte(nil), keylog...))
	c.mu.Unlock()
}

// Close stops the capture if needed and writes the file: section and
// interface blocks naming the experiment, the decryption secrets, then every
// packet with its comments. It is safe to call more than once.
func (c *Capture) Close() error {
	if _, err := c.Stop(); err != nil {
		// A read error ends recording early; still write what we have.
		_ = err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return WriteFile(c.path, File{
		Experiment:  c.opts.Experiment,
		Description: c.opts.Description,
		Interface:   c.opts.Interface,
		Snaplen:     c.opts.Snaplen,
		Secrets:     c.secrets,
		Packets:     c.packets,
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
