package tcpstate

import (
	"strconv"
	"time"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventStateChanged: a transition of the state table was taken (From,
	// To, Cause).
	EventStateChanged EventKind = iota
	// EventReadable: in-order data or the peer's FIN is ready for Receive.
	EventReadable
	// EventWritable: acknowledged data freed room in the send buffer.
	EventWritable
	// EventReset: the peer reset the connection (Err = ErrConnectionReset).
	EventReset
	// EventRefused: the peer refused the connection (Err =
	// ErrConnectionRefused).
	EventRefused
	// EventTimeout: retransmissions were exhausted, the user timeout
	// passed or keep-alive probes went unanswered (Err = ErrTimeout).
	EventTimeout
	// EventTimerArmed: Timer must fire at At (replacing any earlier
	// deadline of the same timer).
	EventTimerArmed
	// EventTimerCanceled: Timer no longer needs to fire.
	EventTimerCanceled
	// EventUrgent: a segment with URG moved the urgent pointer forward
	// (Urgent); the urgent text is delivered in order with the rest.
	EventUrgent
)

var eventNames = [...]string{"state", "readable", "writable", "reset", "refused", "timeout", "timer-armed", "timer-canceled", "urgent"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one thing the engine reports besides segments.
type Event struct {
	Kind     EventKind
	From, To State         // EventStateChanged
	Cause    Cause         // EventStateChanged
	Timer    Timer         // EventTimerArmed, EventTimerCanceled
	At       time.Duration // EventTimerArmed
	In       time.Duration // EventTimerArmed: At less the time of the call that armed it
	Err      error         // EventReset, EventRefused, EventTimeout
	Urgent   Seq           // EventUrgent: RCV.UP, the octet following the urgent data
}

// String describes the event, e.g. "state SYN-SENT -> ESTABLISHED (rcv SYN,ACK)".
func (e Event) String() string {
	s := e.Kind.String()
	switch e.Kind {
	case EventStateChanged:
		s += " " + e.From.String() + " -> " + e.To.String() + " (" + e.Cause.String() + ")"
	case EventTimerArmed:
		s += " " + e.Timer.String() + " at " + e.At.String()
	case EventTimerCanceled:
		s += " " + e.Timer.String()
	case EventUrgent:
		s += " up=" + strconv.FormatUint(uint64(e.Urgent), 10)
	case EventReset, EventRefused, EventTimeout:
		if e.Err != nil {
			s += ": " + e.Err.Error()
		}
	}
	return s
}

// Output collects what engine calls produce: segments to transmit and events.
// The caller owns it and passes it to every call; calls append. Reset empties
// it and keeps the capacity, so a driver that reuses one Output does not
// allocate in steady state. Payloads of emitted segments live in an arena
// inside the Output and stay valid until the next Reset, unless
// BorrowPayloads is set.
type Output struct {
	Segments []Segment
	Events   []Event
	// BorrowPayloads lets an emitted payload alias the endpoint's send
	// buffer where the buffer holds it in one piece, instead of copying it
	// into the arena: it then stays valid only until the caller's next
	// call on that endpoint (a Send may reuse octets an ACK freed). A
	// driver that transmits every segment before its next call on the
	// endpoint (rawtcp's Conn does, under the connection's lock) sets it
	// and saves a copy of every payload; a payload the buffer holds in two
	// pieces (where it wraps) is still joined in the arena.
	BorrowPayloads bool
	arena          []byte
}

// Reset empties o, keeping its storage.
func (o *Output) Reset() {
	clear(o.Segments) // drop references to old payloads
	o.Segments = o.Segments[:0]
	o.Events = o.Events[:0]
	o.arena = o.arena[:0]
}

// payload returns a and b joined: copied into the arena, or a itself
// (capacity cut to its length) when payloads may be borrowed and b is
// empty.
func (o *Output) payload(a, b []byte) []byte {
	n := len(a) + len(b)
	if n == 0 {
		return nil
	}
	if o.BorrowPayloads && len(b) == 0 {
		return a[:n:n]
	}
	if cap(o.arena)-len(o.arena) < n {
		// Start a new arena; slices handed out earlier keep the old one alive.
		o.arena = make([]byte, 0, max(2*cap(o.arena), n, 16<<10))
	}
	start := len(o.arena)
	o.arena = append(o.arena, a...)
	o.arena = append(o.arena, b...)
	return o.arena[start : start+n : start+n]
}
