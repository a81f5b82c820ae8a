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
	// Quiet is how long the socket must stay silent before Stop (with no
	// completion test) considers the traffic over; default 20ms. MaxDrain
	// bounds the wait for traffic to end or for StopWhen's test; default 5s.
	// Either way Stop then reads the ring to its end.
	Quiet, MaxDrain time.Duration
	// Snaplen is the most bytes kept per packet; default 262144.
	Snaplen int
	// Done, when closed, ends Stop's wait for traffic to end or for
	// StopWhen's test (the ring is still read to its end): an experiment
	// passes its context's Done so a cancelled run stops at once.
	Done <-chan struct{}
}

// Capture is a running or stopped packet capture.
type Capture struct {
	path string
	opts Options
	tp   *afpacket.TPacket

	stop     chan struct{} // closed by Stop to end the reader
	stopOnce sync.Once

	mu      sync.Mutex
	grew    chan struct{} // closed and replaced whenever packets are added
	packets []*Packet
	last    time.Time
	stopAt  time.Time // when Stop asked the reader to finish the ring
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
// the initial namespace).
//
// The kernel hands a block to user space when it fills or blockTimeout
// after its first packet, so under a trickle of packets every block holds
// only a few of them, and the ring lasts ringBlocks × blockTimeout before
// the kernel drops: with 32 blocks and a 1 ms timeout that was 32 ms, less
// than a reader goroutine waits for a core when two CPU hogs run beside the
// lab (measured: 1009 of 3000 datagrams dropped). 256 blocks of 256 KiB at
// 8 ms last 2 s of trickle and 64 MiB of burst, more than any experiment
// sends; a block of 256 KiB still holds the largest loopback packet.
const (
	ringBlockSize = 256 << 10
	ringBlocks    = 256
	blockTimeout  = 8 * time.Millisecond
	pollTimeout   = 10 * time.Millisecond
	// retireMargin is how long after Stop the reader keeps polling before
	// an empty poll means the ring is read to its end: the kernel retires
	// the block that was filling at Stop within a jiffy or two of
	// blockTimeout.
	retireMargin = 3*blockTimeout + 10*time.Millisecond
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
		opts.MaxDrain = 5 * time.Second
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
	c := &Capture{path: path, opts: opts, tp: tp, stop: make(chan struct{}), done: make(chan struct{}), grew: make(chan struct{}), last: time.Now()}
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

// read copies packets out of the ring until Stop has asked it to finish
// and the ring is read to its end: a poll that found nothing, begun
// retireMargin after Stop, when the kernel has retired the last block.
func (c *Capture) read() {
	defer close(c.done)
	stopping := false
	for {
		if !stopping {
			select {
			case <-c.stop:
				stopping = true
			default:
			}
		} else if time.Since(c.stopTime()) > c.opts.MaxDrain {
			return // traffic that never pauses: bounded all the same
		}
		polled := time.Now()
		data, ci, err := c.tp.ZeroCopyReadPacketData()
		if errors.Is(err, afpacket.ErrTimeout) {
			if stopping && polled.Sub(c.stopTime()) >= retireMargin {
				return
			}
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
			close(c.grew)
			c.grew = make(chan struct{})
		}
		c.last = time.Now()
		c.mu.Unlock()
	}
}

func (c *Capture) stopTime() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopAt
}

func (c *Capture) setErr(err error) {
	c.mu.Lock()
	if c.readErr == nil {
		c.readErr = err
	}
	c.mu.Unlock()
}

// Stop waits until the socket has been quiet for Options.Quiet (at most
// MaxDrain), then reads the ring to its end and returns every packet
// recorded, in arrival order. The packets may be inspected and commented
// until Close. Stop and StopWhen are idempotent: only the first call waits.
func (c *Capture) Stop() ([]*Packet, error) { return c.StopWhen(nil) }

// StopWhen is Stop for a capture that knows what it should hold: it waits
// until complete reports true for the packets kept so far (it is called
// after each new packet, never concurrently) or MaxDrain passes, then reads
// the ring to its end. Waiting on the packets themselves, not on a quiet
// interval, is what keeps a capture whole when the reader is starved of
// CPU. The caller still checks completeness: StopWhen returns what it has
// when MaxDrain runs out.
func (c *Capture) StopWhen(complete func([]*Packet) bool) ([]*Packet, error) {
	c.stopOnce.Do(func() { c.drainAndStop(complete) })
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.packets, c.readErr
}

func (c *Capture) drainAndStop(complete func([]*Packet) bool) {
	deadline := time.NewTimer(c.opts.MaxDrain)
	defer deadline.Stop()
	if complete != nil {
		c.waitComplete(complete, deadline.C)
	} else {
		c.waitQuiet(deadline.C)
	}
	c.mu.Lock()
	c.stopAt = time.Now()
	c.mu.Unlock()
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

func (c *Capture) waitComplete(complete func([]*Packet) bool, deadline <-chan time.Time) {
	for {
		c.mu.Lock()
		pkts, grew := c.packets[:len(c.packets):len(c.packets)], c.grew
		c.mu.Unlock()
		if complete(pkts) {
			return
		}
		select {
		case <-grew:
		case <-c.done: // the reader failed; nothing more will come
			return
		case <-deadline:
			return
		case <-c.opts.Done:
			return
		}
	}
}

func (c *Capture) waitQuiet(deadline <-chan time.Time) {
	t := time.NewTimer(c.opts.Quiet)
	defer t.Stop()
	for {
		select {
		case <-deadline:
			return
		case <-c.opts.Done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		idle := time.Since(c.last)
		c.mu.Unlock()
		if idle >= c.opts.Quiet {
			return
		}
		t.Reset(c.opts.Quiet - idle)
	}
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
