package capture

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/net/bpf"
)

// Errors returned by this package.
var (
	ErrSocket = errors.New("capture: cannot open a packet socket")
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
	tp   *afpacket.TPacket

	stop     chan struct{} // closed by Stop to end the reader
	stopOnce sync.Once

	mu      sync.Mutex
	packets []*Packet
	last    time.Time
	stopped bool
	drops   uint
	secrets [][]byte
	readErr error
	done    chan struct{}
	closed  bool
}

// The ring: TPACKET_V3 blocks in memory shared with the kernel. Unlike a
// socket's receive buffer, its size is not capped by net.core.rmem_max,
// which a rootless lab cannot raise (SO_RCVBUFFORCE needs CAP_NET_ADMIN in
// the initial namespace): with the 208 KiB default a QUIC burst overflowed
// it. A block is handed to user space when it fills or after blockTimeout,
// which must stay well below Options.Quiet.
const (
	ringBlockSize = 1 << 20
	ringBlocks    = 32
	blockTimeout  = time.Millisecond
	pollTimeout   = 10 * time.Millisecond
)

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
	if _, err := net.InterfaceByName(opts.Interface); err != nil {
		return nil, fmt.Errorf("capture: interface %q: %w", opts.Interface, err)
	}
	tp, err := afpacket.NewTPacket(
		afpacket.OptInterface(opts.Interface),
		afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
		afpacket.OptBlockSize(ringBlockSize),
		afpacket.OptNumBlocks(ringBlocks),
		afpacket.OptFrameSize(1<<16),
		afpacket.OptBlockTimeout(blockTimeout),
		afpacket.OptPollTimeout(pollTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("%w on %s (needs CAP_NET_RAW in the lab's namespace): %w", ErrSocket, opts.Interface, err)
	}
	raw, err := bpf.Assemble(loopbackOnce)
	if err == nil {
		err = tp.SetBPF(raw)
	}
	if err != nil {
		tp.Close()
		return nil, fmt.Errorf("capture: attaching BPF: %w", err)
	}
	c := &Capture{path: path, opts: opts, tp: tp, stop: make(chan struct{}), done: make(chan struct{}), last: time.Now()}
	go c.read()
	return c, nil
}

// Path is where Close writes the capture.
func (c *Capture) Path() string { return c.path }

// Drops is how many packets the kernel dropped because the ring was full;
// known after Stop.
func (c *Capture) Drops() uint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drops
}

func (c *Capture) read() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		data, ci, err := c.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			continue // a chance to see stop; the ring keeps filling meanwhile
		}
		if err != nil {
			c.setErr(err)
			return
		}
		n := min(len(data), c.opts.Snaplen)
		p := &Packet{Time: ci.Timestamp, Data: append([]byte(nil), data[:n]...)}
		keep := c.opts.Keep == nil || c.opts.Keep(p)
		c.mu.Lock()
		if keep {
			c.packets = append(c.packets, p)
		}
		c.last = time.Now()
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
	c.stopOnce.Do(c.drainAndStop)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets, c.readErr
}

func (c *Capture) drainAndStop() {
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
	close(c.stop)
	<-c.done
	var drops uint
	if _, v3, err := c.tp.SocketStats(); err == nil {
		drops = v3.Drops()
	}
	c.tp.Close()
	c.mu.Lock()
	c.stopped = true
	c.drops = drops
	c.mu.Unlock()
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
