package quicconn

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// PacketEvent is one QUIC packet as an endpoint's qlog recorded it: the
// per-packet record the experiments match against the capture.
type PacketEvent struct {
	Time      time.Time
	Sent      bool   // sent by this endpoint; false: received
	Type      string // qlog packet type: initial, handshake, 1RTT, …
	DCID      string // hex
	SCID      string // hex, long headers only
	PN        int64
	Length    int    // whole packet, header and AEAD tag included
	Tuple     string // qlog tuple id; "" is the active path
	Challenge [][8]byte
	Response  [][8]byte
	NewCIDs   []string // NEW_CONNECTION_ID frames, hex
	Stream    int64    // STREAM bytes
	Frames    []string // frame names, in order
	// AckEliciting: the packet carries a frame other than ACK, PADDING
	// or CONNECTION_CLOSE, so the peer must acknowledge it.
	AckEliciting bool
	// Acked are the [smallest, largest] packet number ranges of its ACK
	// frames.
	Acked [][2]int64
	// Remote is the peer address of the event's path; see ClaimPaths.
	Remote netip.AddrPort
}

// TupleEvent is a qlog tuple_assigned event: a path gained an id, or (ID
// "") the connection's active path changed.
type TupleEvent struct {
	Time          time.Time
	ID            string
	Local, Remote netip.AddrPort
}

// ConnTrace is the qlog of one endpoint of one connection, kept in memory
// and, when the tracer has a directory, written as a JSON-SEQ .sqlog file.
type ConnTrace struct {
	Role  string // "client" or "server"
	ODCID string // original destination connection ID, hex
	File  string // the .sqlog path, "" when not written

	tracer *Tracer
	file   *qlogwriter.FileSeq
	done   chan struct{}

	mu        sync.Mutex
	packets   []PacketEvent
	tuples    []TupleEvent
	producers int
	// unacked are the 1-RTT ack-eliciting packets this endpoint sent that
	// its qlog has seen neither acknowledged nor declared lost.
	unacked map[int64]bool
}

// Packets returns a copy of the packet events so far.
func (c *ConnTrace) Packets() []PacketEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]PacketEvent(nil), c.packets...)
}

// Tuples returns a copy of the tuple events so far.
func (c *ConnTrace) Tuples() []TupleEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]TupleEvent(nil), c.tuples...)
}

// Done is closed when quic-go has closed every producer of the trace (the
// connection is gone) and the qlog file is complete.
func (c *ConnTrace) Done() <-chan struct{} { return c.done }

// AddProducer implements qlogwriter.Trace.
func (c *ConnTrace) AddProducer() qlogwriter.Recorder {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.producers++
	r := &recorder{c: c}
	if c.file != nil {
		r.next = c.file.AddProducer()
	}
	return r
}

type recorder struct {
	c    *ConnTrace
	next qlogwriter.Recorder
	once sync.Once
}

func (r *recorder) RecordEvent(ev qlogwriter.Event) {
	r.c.record(ev)
	if r.next != nil {
		r.next.RecordEvent(ev)
	}
}

func (r *recorder) Close() error {
	r.once.Do(func() {
		if r.next != nil {
			r.next.Close() // the last one closes the file
		}
		r.c.mu.Lock()
		r.c.producers--
		last := r.c.producers == 0
		r.c.mu.Unlock()
		if last {
			close(r.c.done)
		}
	})
	return nil
}

func (c *ConnTrace) record(ev qlogwriter.Event) {
	now := time.Now()
	if c.tracer.TuplesOnly {
		if _, ok := ev.(qlog.TupleAssigned); !ok {
			return
		}
	}
	switch e := ev.(type) {
	case qlog.PacketSent:
		c.addPacket(packetEvent(now, true, e.Header, e.Raw, e.Frames, e.Tuple))
	case qlog.PacketReceived:
		c.addPacket(packetEvent(now, false, e.Header, e.Raw, e.Frames, e.Tuple))
	case qlog.PacketLost:
		if e.Header.PacketType == qlog.PacketType1RTT {
			c.mu.Lock()
			delete(c.unacked, int64(e.Header.PacketNumber))
			c.mu.Unlock()
		}
	case qlog.TupleAssigned:
		t := TupleEvent{Time: now, ID: e.TupleID, Local: endpoint(e.Local), Remote: endpoint(e.Remote)}
		c.mu.Lock()
		c.tuples = append(c.tuples, t)
		c.mu.Unlock()
		if c.tracer.OnTuple != nil {
			c.tracer.OnTuple(c, t)
		}
	default:
		return
	}
	c.tracer.changed()
}

func (c *ConnTrace) addPacket(p PacketEvent) {
	c.mu.Lock()
	c.packets = append(c.packets, p)
	if p.Type == string(qlog.PacketType1RTT) {
		if c.unacked == nil {
			c.unacked = map[int64]bool{}
		}
		switch {
		case p.Sent && p.AckEliciting:
			c.unacked[p.PN] = true
		case !p.Sent:
			for _, r := range p.Acked {
				for pn := range c.unacked {
					if pn >= r[0] && pn <= r[1] {
						delete(c.unacked, pn)
					}
				}
			}
		}
	}
	c.mu.Unlock()
}

// InFlight is how many 1-RTT ack-eliciting packets this endpoint has sent
// that are neither acknowledged nor declared lost, as far as its qlog shows.
func (c *ConnTrace) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unacked)
}

func endpoint(i qlog.TupleEndpointInfo) netip.AddrPort {
	if i.IPv4.IsValid() {
		return i.IPv4
	}
	return i.IPv6
}

func packetEvent(now time.Time, sent bool, h qlog.PacketHeader, raw qlog.RawInfo, frames []qlog.Frame, tuple string) PacketEvent {
	p := PacketEvent{Time: now, Sent: sent, Type: string(h.PacketType), PN: int64(h.PacketNumber), Length: raw.Length, Tuple: tuple,
		DCID: hex.EncodeToString(h.DestConnectionID.Bytes()), SCID: hex.EncodeToString(h.SrcConnectionID.Bytes())}
	for _, f := range frames {
		switch f.Frame.(type) {
		case *qlog.AckFrame, *qlog.ConnectionCloseFrame: // qlog omits PADDING
		default:
			p.AckEliciting = true
		}
		switch fr := f.Frame.(type) {
		case *qlog.PathChallengeFrame:
			p.Challenge = append(p.Challenge, fr.Data)
			p.Frames = append(p.Frames, "PATH_CHALLENGE")
		case *qlog.PathResponseFrame:
			p.Response = append(p.Response, fr.Data)
			p.Frames = append(p.Frames, "PATH_RESPONSE")
		case *qlog.NewConnectionIDFrame:
			p.NewCIDs = append(p.NewCIDs, hex.EncodeToString(fr.ConnectionID.Bytes()))
			p.Frames = append(p.Frames, "NEW_CONNECTION_ID")
		case *qlog.StreamFrame:
			p.Stream += fr.Length
			p.Frames = append(p.Frames, "STREAM")
		case *qlog.AckFrame:
			for _, r := range fr.AckRanges {
				p.Acked = append(p.Acked, [2]int64{int64(r.Smallest), int64(r.Largest)})
			}
			p.Frames = append(p.Frames, "ACK")
		case *qlog.CryptoFrame:
			p.Frames = append(p.Frames, "CRYPTO")
		case *qlog.RetireConnectionIDFrame:
			p.Frames = append(p.Frames, "RETIRE_CONNECTION_ID")
		case *qlog.PingFrame:
			p.Frames = append(p.Frames, "PING")
		case *qlog.ConnectionCloseFrame:
			p.Frames = append(p.Frames, "CONNECTION_CLOSE")
		case *qlog.HandshakeDoneFrame:
			p.Frames = append(p.Frames, "HANDSHAKE_DONE")
		case *qlog.MaxDataFrame, *qlog.MaxStreamDataFrame:
			p.Frames = append(p.Frames, "MAX_DATA")
		default:
			p.Frames = append(p.Frames, fmt.Sprintf("%T", f.Frame))
		}
	}
	return p
}

// Tracer hands quic-go a ConnTrace for every connection (quic.Config.Tracer)
// and keeps them, so an experiment can read what each endpoint saw.
type Tracer struct {
	// Dir, when set, receives a qlog file per connection endpoint:
	// Dir/<Prefix>-<role>-<odcid>.sqlog.
	Dir, Prefix string
	// OnTuple, when set, is called for every tuple event (path changes).
	OnTuple func(*ConnTrace, TupleEvent)
	// TuplesOnly keeps the tuple events and drops the packet events (a
	// benchmark's path changes without a per-packet record).
	TuplesOnly bool

	mu     sync.Mutex
	conns  []*ConnTrace
	notify chan struct{} // closed and replaced at every event
	last   time.Time     // of the last packet or tuple event
}

// changed wakes whoever waits for the next event.
func (t *Tracer) changed() {
	t.mu.Lock()
	t.last = time.Now()
	if t.notify != nil {
		close(t.notify)
		t.notify = nil
	}
	t.mu.Unlock()
}

// WaitQuiet returns once every live connection of the tracer is quiescent:
// no endpoint has a 1-RTT ack-eliciting packet in flight (sent, neither
// acknowledged nor declared lost) and no endpoint has sent or received a
// packet for quiet. It waits on the qlog's events; quiet is the only timer,
// a bounded quiescence deadline for what no event announces (a pending
// delayed ACK), so it should exceed the peer's max_ack_delay (25 ms by
// default). It gives up when ctx ends, reporting what was still in flight.
func (t *Tracer) WaitQuiet(ctx context.Context, quiet time.Duration) error {
	for range 1 << 20 { // bounded: each round waits for an event or quiet
		t.mu.Lock()
		if t.notify == nil {
			t.notify = make(chan struct{})
		}
		ch, last, conns := t.notify, t.last, t.conns
		t.mu.Unlock()
		inflight := 0
		for _, c := range conns {
			select {
			case <-c.done:
			default:
				inflight += c.InFlight()
			}
		}
		var timer <-chan time.Time
		var tm *time.Timer
		if inflight == 0 {
			left := quiet - time.Since(last)
			if left <= 0 {
				return nil
			}
			tm = time.NewTimer(left)
			timer = tm.C
		}
		var err error
		select {
		case <-ch:
		case <-timer:
		case <-ctx.Done():
			err = fmt.Errorf("%w: not quiescent (%d packets in flight): %w", ErrMigration, inflight, context.Cause(ctx))
		}
		if tm != nil {
			tm.Stop()
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: not quiescent", ErrMigration)
}

// Conns returns the traces so far, in creation order.
func (t *Tracer) Conns() []*ConnTrace {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*ConnTrace(nil), t.conns...)
}

// Role returns the first trace of a role ("client" or "server"), or nil.
func (t *Tracer) Role(role string) *ConnTrace {
	for _, c := range t.Conns() {
		if c.Role == role {
			return c
		}
	}
	return nil
}

// Hook is the function for quic.Config.Tracer.
func (t *Tracer) Hook(_ context.Context, isClient bool, odcid quic.ConnectionID) qlogwriter.Trace {
	c := &ConnTrace{Role: "server", ODCID: hex.EncodeToString(odcid.Bytes()), tracer: t, done: make(chan struct{})}
	if isClient {
		c.Role = "client"
	}
	if t.Dir != "" {
		name := c.Role + "-" + c.ODCID + ".sqlog"
		if t.Prefix != "" {
			name = t.Prefix + "-" + name
		}
		path := filepath.Join(t.Dir, name)
		if err := os.MkdirAll(t.Dir, 0o755); err == nil {
			if f, err := os.Create(path); err == nil {
				c.File = path
				c.file = qlogwriter.NewConnectionFileSeq(&bufferedFile{Writer: bufio.NewWriter(f), f: f}, isClient, odcid)
				go c.file.Run()
			}
		}
	}
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return c
}

type bufferedFile struct {
	*bufio.Writer
	f *os.File
}

func (b *bufferedFile) Close() error {
	err := b.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}
