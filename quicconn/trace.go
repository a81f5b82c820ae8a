package quicconn

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	// Fin: a STREAM frame of the packet ends its stream.
	Fin bool
	// Detail describes each frame with its arguments, in order (stream
	// offsets, ACK ranges, challenge data, connection IDs).
	Detail []string
	// Checksum is the CRC32C of the whole UDP datagram payload, which
	// quic-go logs for long header packets and the packets coalesced with
	// them (0: not logged).
	Checksum uint32
	// Dropped is the reason the endpoint dropped a packet it received
	// (qlog packet_dropped); "" for packets it sent or processed.
	Dropped string
	// Seq orders the events of one trace (packets and tuples) as quic-go
	// recorded them.
	Seq int
	// Local and Remote are this endpoint's and the peer's address on the
	// event's path; see ClaimPaths.
	Local, Remote netip.AddrPort
}

// TupleEvent is a qlog tuple_assigned event: a path gained an id, or (ID
// "") the connection's active path changed.
type TupleEvent struct {
	Time          time.Time
	ID            string
	Local, Remote netip.AddrPort
	Seq           int // see PacketEvent.Seq
}

// ConnTrace is the qlog of one endpoint of one connection, kept in memory
// and, when the tracer has a directory, written as a JSON-SEQ .sqlog file.
type ConnTrace struct {
	Role  string // "client" or "server"
	ODCID string // original destination connection ID, hex
	File  string // the .sqlog path, "" when not written

	tracer *Tracer
	file   *qlogwriter.FileSeq
	out    *recordFile
	done   chan struct{}

	mu        sync.Mutex
	seq       int
	started   TupleEvent
	packets   []PacketEvent
	dropped   []PacketEvent
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

// Dropped returns a copy of the packet_dropped events so far: packets
// the endpoint received and discarded (duplicates, undecryptable).
func (c *ConnTrace) Dropped() []PacketEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]PacketEvent(nil), c.dropped...)
}

// Started is the connection's first path, from qlog's connection_started
// (ID ""); zero until quic-go logged it.
func (c *ConnTrace) Started() TupleEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// PathedPackets returns the packet events with each one's path (Local,
// Remote) filled in from connection_started and the tuple events.
func (c *ConnTrace) PathedPackets() []PacketEvent {
	ev := c.Packets()
	ClaimPaths(ev, c.Tuples(), c.Started())
	return ev
}

// ClaimPaths replays an endpoint's qlog in the order it was recorded and
// fills each packet event's Local and Remote: the path the event's tuple
// stands for (tuple "" is the active path, start until a tuple event
// moves it; others were assigned by tuple events).
func ClaimPaths(events []PacketEvent, tuples []TupleEvent, start TupleEvent) {
	ti := 0
	ids := map[string]TupleEvent{"": start}
	for i := range events {
		for ti < len(tuples) && tuples[ti].Seq <= events[i].Seq {
			ids[tuples[ti].ID] = tuples[ti]
			ti++
		}
		t := ids[events[i].Tuple]
		events[i].Local, events[i].Remote = t.Local, t.Remote
	}
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
			if r.c.tracer.Forget {
				r.c.tracer.forget(r.c)
			}
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
		c.addPacket(packetEvent(now, true, e.Header, e.Raw, e.Frames, e.Tuple, uint32(e.DatagramPayloadChecksum)))
	case qlog.PacketReceived:
		c.addPacket(packetEvent(now, false, e.Header, e.Raw, e.Frames, e.Tuple, uint32(e.DatagramPayloadChecksum)))
	case qlog.PacketDropped:
		p := packetEvent(now, false, e.Header, e.Raw, nil, "", uint32(e.DatagramPayloadChecksum))
		p.Dropped = string(e.Trigger)
		c.mu.Lock()
		p.Seq = c.next()
		c.dropped = append(c.dropped, p)
		c.mu.Unlock()
	case qlog.PacketLost:
		if e.Header.PacketType == qlog.PacketType1RTT {
			c.mu.Lock()
			delete(c.unacked, int64(e.Header.PacketNumber))
			c.mu.Unlock()
		}
	case qlog.StartedConnection:
		c.mu.Lock()
		c.started = TupleEvent{Time: now, Local: endpoint(e.Local), Remote: endpoint(e.Remote), Seq: c.next()}
		c.mu.Unlock()
	case qlog.TupleAssigned:
		t := TupleEvent{Time: now, ID: e.TupleID, Local: endpoint(e.Local), Remote: endpoint(e.Remote)}
		c.mu.Lock()
		t.Seq = c.next()
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

// next numbers an event; c.mu is held.
func (c *ConnTrace) next() int {
	c.seq++
	return c.seq
}

func (c *ConnTrace) addPacket(p PacketEvent) {
	c.mu.Lock()
	p.Seq = c.next()
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

func packetEvent(now time.Time, sent bool, h qlog.PacketHeader, raw qlog.RawInfo, frames []qlog.Frame, tuple string, sum uint32) PacketEvent {
	p := PacketEvent{Time: now, Sent: sent, Type: string(h.PacketType), PN: int64(h.PacketNumber), Length: raw.Length, Tuple: tuple,
		DCID: hex.EncodeToString(h.DestConnectionID.Bytes()), SCID: hex.EncodeToString(h.SrcConnectionID.Bytes()), Checksum: sum}
	for _, f := range frames {
		switch f.Frame.(type) {
		case *qlog.AckFrame, *qlog.ConnectionCloseFrame: // qlog omits PADDING
		default:
			p.AckEliciting = true
		}
		name, detail := describeFrame(f.Frame)
		p.Frames = append(p.Frames, name)
		p.Detail = append(p.Detail, detail)
		switch fr := f.Frame.(type) {
		case *qlog.PathChallengeFrame:
			p.Challenge = append(p.Challenge, fr.Data)
		case *qlog.PathResponseFrame:
			p.Response = append(p.Response, fr.Data)
		case *qlog.NewConnectionIDFrame:
			p.NewCIDs = append(p.NewCIDs, hex.EncodeToString(fr.ConnectionID.Bytes()))
		case *qlog.StreamFrame:
			p.Stream += fr.Length
			p.Fin = p.Fin || fr.Fin
		case *qlog.AckFrame:
			for _, r := range fr.AckRanges {
				p.Acked = append(p.Acked, [2]int64{int64(r.Smallest), int64(r.Largest)})
			}
		}
	}
	return p
}

// describeFrame names a qlog frame as RFC 9000 does and describes it
// with the arguments a reader of the capture needs.
func describeFrame(f any) (name, detail string) {
	switch fr := f.(type) {
	case *qlog.PathChallengeFrame:
		return "PATH_CHALLENGE", fmt.Sprintf("PATH_CHALLENGE %x", fr.Data)
	case *qlog.PathResponseFrame:
		return "PATH_RESPONSE", fmt.Sprintf("PATH_RESPONSE %x", fr.Data)
	case *qlog.NewConnectionIDFrame:
		return "NEW_CONNECTION_ID", fmt.Sprintf("NEW_CONNECTION_ID seq %d %x", fr.SequenceNumber, fr.ConnectionID.Bytes())
	case *qlog.RetireConnectionIDFrame:
		return "RETIRE_CONNECTION_ID", fmt.Sprintf("RETIRE_CONNECTION_ID seq %d", fr.SequenceNumber)
	case *qlog.StreamFrame:
		d := fmt.Sprintf("STREAM %d off %d len %d", fr.StreamID, fr.Offset, fr.Length)
		if fr.Fin {
			d += " FIN"
		}
		return "STREAM", d
	case *qlog.AckFrame:
		var rs []string
		for i, r := range fr.AckRanges {
			if i == 3 {
				rs = append(rs, fmt.Sprintf("+%d ranges", len(fr.AckRanges)-3))
				break
			}
			if r.Smallest == r.Largest {
				rs = append(rs, fmt.Sprint(r.Largest))
			} else {
				rs = append(rs, fmt.Sprintf("%d-%d", r.Smallest, r.Largest))
			}
		}
		return "ACK", "ACK " + strings.Join(rs, ",")
	case *qlog.CryptoFrame:
		return "CRYPTO", fmt.Sprintf("CRYPTO off %d len %d", fr.Offset, fr.Length)
	case *qlog.PingFrame:
		return "PING", "PING"
	case *qlog.ConnectionCloseFrame:
		d := fmt.Sprintf("CONNECTION_CLOSE %#x", fr.ErrorCode)
		if fr.IsApplicationError {
			d = fmt.Sprintf("CONNECTION_CLOSE app %#x", fr.ErrorCode)
		}
		if fr.ReasonPhrase != "" {
			d += fmt.Sprintf(" %q", fr.ReasonPhrase)
		}
		return "CONNECTION_CLOSE", d
	case *qlog.HandshakeDoneFrame:
		return "HANDSHAKE_DONE", "HANDSHAKE_DONE"
	case *qlog.MaxDataFrame:
		return "MAX_DATA", fmt.Sprintf("MAX_DATA %d", fr.MaximumData)
	case *qlog.MaxStreamDataFrame:
		return "MAX_STREAM_DATA", fmt.Sprintf("MAX_STREAM_DATA %d %d", fr.StreamID, fr.MaximumStreamData)
	case *qlog.MaxStreamsFrame:
		return "MAX_STREAMS", fmt.Sprintf("MAX_STREAMS %d", fr.MaxStreamNum)
	case *qlog.NewTokenFrame:
		return "NEW_TOKEN", fmt.Sprintf("NEW_TOKEN %d B", len(fr.Token))
	case *qlog.ResetStreamFrame:
		return "RESET_STREAM", fmt.Sprintf("RESET_STREAM %d", fr.StreamID)
	case *qlog.StopSendingFrame:
		return "STOP_SENDING", fmt.Sprintf("STOP_SENDING %d", fr.StreamID)
	case *qlog.DataBlockedFrame:
		return "DATA_BLOCKED", "DATA_BLOCKED"
	case *qlog.StreamDataBlockedFrame:
		return "STREAM_DATA_BLOCKED", fmt.Sprintf("STREAM_DATA_BLOCKED %d", fr.StreamID)
	case *qlog.StreamsBlockedFrame:
		return "STREAMS_BLOCKED", "STREAMS_BLOCKED"
	case *qlog.DatagramFrame:
		return "DATAGRAM", fmt.Sprintf("DATAGRAM len %d", fr.Length)
	}
	n := strings.TrimSuffix(strings.TrimPrefix(fmt.Sprintf("%T", f), "*qlog."), "Frame")
	return n, n
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
	// Forget drops a connection's trace once the connection has ended (a
	// long-running server, which would otherwise keep one per connection
	// it ever had); Conns then holds the live connections only.
	Forget bool

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

// forget drops c from the traces kept.
func (t *Tracer) forget(c *ConnTrace) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, k := range t.conns {
		if k == c {
			t.conns = slices.Delete(t.conns, i, i+1)
			return
		}
	}
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
		path := filepath.Join(t.Dir, qlogName(t.Prefix, c.Role, c.ODCID))
		if err := os.MkdirAll(t.Dir, 0o755); err == nil {
			if f, err := os.Create(path); err == nil {
				c.File = path
				c.out = &recordFile{f: f}
				c.file = qlogwriter.NewConnectionFileSeq(c.out, isClient, odcid)
				go c.file.Run()
			}
		}
	}
	t.mu.Lock()
	t.conns = append(t.conns, c)
	t.mu.Unlock()
	return c
}

// qlogName is the file name of an endpoint's qlog:
// <prefix>-<role>-<odcid>.sqlog.
func qlogName(prefix, role, odcid string) string {
	name := role + "-" + odcid + ".sqlog"
	if prefix != "" {
		name = prefix + "-" + name
	}
	return name
}

// RemoveQlogs removes the qlog files an earlier run with this prefix left
// in dir (their names carry the connection ID, so a new run would add
// files beside them, not replace them). It returns how many it removed.
func RemoveQlogs(dir, prefix string) (int, error) {
	n := 0
	for _, role := range []string{"client", "server"} {
		old, err := filepath.Glob(filepath.Join(dir, qlogName(prefix, role, "*")))
		if err != nil {
			return n, err
		}
		for _, f := range old {
			id := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), strings.TrimSuffix(qlogName(prefix, role, ""), ".sqlog")), ".sqlog")
			if !isHex(id) {
				continue // another experiment's file that happens to share the prefix
			}
			if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Finish waits, at most wait, for every connection's qlog to be complete
// (quic-go closed the connection's last producer and the file is
// written), then completes the files of the connections still open: each
// is written up to its last whole record and closed, and what quic-go
// records later is discarded. So a run stopped early (a cancelled
// context, a signal) leaves qlog files that end on a whole record. It
// returns how many files it had to cut short. Call it after closing the
// connections' endpoints.
func (t *Tracer) Finish(wait time.Duration) int {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	cut := 0
	for _, c := range t.Conns() {
		select {
		case <-c.done:
			continue
		case <-timer.C:
		}
		// The deadline passed: this one and every later one still open.
		for _, c := range t.Conns() {
			select {
			case <-c.done:
			default:
				if c.out != nil && c.out.abandon() {
					cut++
				}
			}
		}
		return cut
	}
	return cut
}

// recordFile is the qlog's file: JSON-SEQ records (RS, a JSON object,
// newline), buffered, and written only up to the last complete record, so
// the file never ends inside one, even when the run stops before quic-go
// closes the trace (abandon).
type recordFile struct {
	mu     sync.Mutex
	f      *os.File
	buf    []byte
	closed bool
	err    error
}

// flushAt is how much the buffer holds before complete records go to the
// file.
const flushAt = 64 << 10

func (r *recordFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return len(p), nil // completed early (abandon): discarded, quietly
	}
	r.buf = append(r.buf, p...)
	if len(r.buf) >= flushAt {
		r.flushLocked()
	}
	return len(p), r.err
}

// flushLocked writes the complete records in the buffer: everything up
// to its last newline (qlog's encoder escapes newlines inside strings, so
// a raw newline only ends a record).
func (r *recordFile) flushLocked() {
	end := bytes.LastIndexByte(r.buf, '\n') + 1
	if end == 0 || r.err != nil {
		return
	}
	_, r.err = r.f.Write(r.buf[:end])
	r.buf = append(r.buf[:0], r.buf[end:]...)
}

// Close writes the complete records and closes the file; an incomplete
// last record (quic-go stopped encoding mid-event) is left out.
func (r *recordFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.flushLocked()
	if err := r.f.Close(); r.err == nil {
		r.err = err
	}
	return r.err
}

// abandon completes the file while quic-go may still be writing to it;
// what it writes later is discarded. It reports whether the file was
// still open.
func (r *recordFile) abandon() bool {
	r.mu.Lock()
	open := !r.closed
	r.mu.Unlock()
	if open {
		r.Close()
	}
	return open
}
