package tcpstate

import "fmt"

// State is one of the eleven TCP connection states of RFC 9293 §3.3.2.
// The allowed moves between them are the rows of [Transitions]; the engine
// never changes state except by one of those rows.
type State uint8

const (
	// Closed: no connection. Leaves by passive OPEN (to LISTEN) or active
	// OPEN (to SYN-SENT).
	Closed State = iota
	// Listen: waiting for a SYN. Goes to SYN-RECEIVED on rcv SYN, to
	// SYN-SENT on active OPEN (§3.10.1), to CLOSED on CLOSE or ABORT.
	Listen
	// SynSent: our SYN is out. Goes to ESTABLISHED on rcv SYN,ACK, to
	// SYN-RECEIVED on rcv SYN (simultaneous open), to CLOSED on an acceptable
	// RST, CLOSE, ABORT or retransmission timeout.
	SynSent
	// SynReceived: SYN received and SYN,ACK sent. Goes to ESTABLISHED on the
	// ACK of our SYN, FIN-WAIT-1 on CLOSE, back to LISTEN on RST or SYN when it
	// came from LISTEN, to CLOSED on RST (active open), ABORT or timeout.
	SynReceived
	// Established: data flows both ways. Goes to FIN-WAIT-1 on CLOSE,
	// CLOSE-WAIT on rcv FIN, CLOSED on RST, ABORT or timeout.
	Established
	// FinWait1: our FIN is queued or sent. Goes to FIN-WAIT-2 on its ACK,
	// CLOSING on rcv FIN, TIME-WAIT on rcv FIN together with the ACK of our
	// FIN, CLOSED on RST, ABORT or timeout.
	FinWait1
	// FinWait2: our FIN is acknowledged; waiting for the peer's FIN. Goes to
	// TIME-WAIT on rcv FIN, CLOSED on RST or ABORT.
	FinWait2
	// CloseWait: the peer's FIN arrived; waiting for the local CLOSE. Goes to
	// LAST-ACK on CLOSE, CLOSED on RST, ABORT or timeout.
	CloseWait
	// Closing: both FINs sent, ours not yet acknowledged. Goes to TIME-WAIT on
	// the ACK of our FIN, CLOSED on RST, ABORT or timeout.
	Closing
	// LastAck: we sent our FIN after the peer's. Goes to CLOSED on the ACK of
	// our FIN, RST, ABORT or timeout.
	LastAck
	// TimeWait: waiting 2×MSL so late duplicates die out. Goes to CLOSED on
	// the 2MSL timeout, RST or ABORT.
	TimeWait

	numStates = int(TimeWait) + 1
)

var stateNames = [numStates]string{
	"CLOSED", "LISTEN", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
	"FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT",
}

// String returns the RFC 9293 name of the state, e.g. "SYN-SENT".
func (s State) String() string {
	if int(s) < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// States returns all states in RFC order.
func States() []State {
	out := make([]State, numStates)
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// Synchronized reports whether the state is one of the synchronized states of
// RFC 9293 §3.5.2 (ESTABLISHED and later), in which both sequence spaces are
// known and a bad ACK is answered with an empty ACK rather than a RST.
func (s State) Synchronized() bool { return s >= Established && s <= TimeWait }

// SendClosed reports whether the local side has closed (its FIN is queued,
// sent or acknowledged), so SEND is refused.
func (s State) SendClosed() bool {
	switch s {
	case FinWait1, FinWait2, Closing, LastAck, TimeWait:
		return true
	}
	return false
}

// ReceiveClosed reports whether the peer's FIN has been received, so no more
// data will arrive.
func (s State) ReceiveClosed() bool {
	switch s {
	case CloseWait, Closing, LastAck, TimeWait:
		return true
	}
	return false
}

// AcceptsData reports whether segment text is delivered to the user in this
// state (RFC 9293 §3.10.7.4, seventh step).
func (s State) AcceptsData() bool {
	return s == Established || s == FinWait1 || s == FinWait2
}

// Cause is what made a transition happen: a user call, a received segment or
// a timer.
type Cause uint8

const (
	CausePassiveOpen       Cause = iota // user: OPEN (passive)
	CauseActiveOpen                     // user: OPEN (active)
	CauseClose                          // user: CLOSE
	CauseAbort                          // user: ABORT
	CauseRcvSYN                         // segment: SYN without ACK
	CauseRcvSYNACK                      // segment: SYN,ACK acknowledging our SYN
	CauseRcvACKOfSYN                    // segment: ACK acknowledging our SYN
	CauseRcvFIN                         // segment: FIN
	CauseRcvACKOfFIN                    // segment: ACK acknowledging our FIN
	CauseRcvFINACK                      // segment: FIN that also acknowledges our FIN
	CauseRcvRST                         // segment: acceptable RST
	CauseTimeWaitTimeout                // timer: 2×MSL expired
	CauseRetransmitTimeout              // timer: retransmissions exhausted
	CauseUserTimeout                    // timer: data or probes unanswered for the user timeout (RFC 5482)
	CauseKeepAliveTimeout               // timer: keep-alive probes unanswered (RFC 1122 §4.2.3.6)

	numCauses = int(CauseKeepAliveTimeout) + 1
)

var causeNames = [numCauses]string{
	"passive OPEN", "active OPEN", "CLOSE", "ABORT", "rcv SYN", "rcv SYN,ACK",
	"rcv ACK of SYN", "rcv FIN", "rcv ACK of FIN", "rcv FIN,ACK", "rcv RST",
	"timeout=2MSL", "retransmit timeout", "user timeout", "keep-alive timeout",
}

// String returns the label used in the state diagram, e.g. "rcv SYN".
func (c Cause) String() string {
	if int(c) < numCauses {
		return causeNames[c]
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// Transition is one row of the TCP state table: in state From, Cause moves
// the connection to To while the engine performs Action.
type Transition struct {
	From, To State
	Cause    Cause
	Action   string
}

// String renders the row as "FROM -> TO on cause / action".
func (t Transition) String() string {
	s := t.From.String() + " -> " + t.To.String() + " on " + t.Cause.String()
	if t.Action != "" {
		s += " / " + t.Action
	}
	return s
}

// transitions is the TCP state machine as data: RFC 9293 Figure 5 plus the
// RST, ABORT and timeout edges that the figure leaves to the text of §3.10.
// The engine checks each state change against it, the tests exercise every
// row and DiagramDOT draws it.
var transitions = []Transition{
	{Closed, Listen, CausePassiveOpen, "create TCB"},
	{Closed, SynSent, CauseActiveOpen, "snd SYN"},

	{Listen, SynReceived, CauseRcvSYN, "snd SYN,ACK"},
	{Listen, SynSent, CauseActiveOpen, "snd SYN"}, // §3.10.1: LISTEN turned active
	{Listen, Closed, CauseClose, "delete TCB"},
	{Listen, Closed, CauseAbort, "delete TCB"},

	{SynSent, SynReceived, CauseRcvSYN, "snd SYN,ACK"},
	{SynSent, Established, CauseRcvSYNACK, "snd ACK"},
	{SynSent, Closed, CauseRcvRST, "signal refused"},
	{SynSent, Closed, CauseClose, "delete TCB"},
	{SynSent, Closed, CauseAbort, "delete TCB"},
	{SynSent, Closed, CauseRetransmitTimeout, "signal timeout"},
	{SynSent, Closed, CauseUserTimeout, "signal timeout"},

	{SynReceived, Established, CauseRcvACKOfSYN, ""},
	{SynReceived, FinWait1, CauseClose, "snd FIN"},
	{SynReceived, Listen, CauseRcvRST, "back to LISTEN"},
	{SynReceived, Listen, CauseRcvSYN, "back to LISTEN"},
	{SynReceived, Closed, CauseRcvRST, "signal refused"},
	{SynReceived, Closed, CauseAbort, "snd RST"},
	{SynReceived, Closed, CauseRetransmitTimeout, "signal timeout"},
	{SynReceived, Closed, CauseUserTimeout, "signal timeout"},

	{Established, FinWait1, CauseClose, "snd FIN"},
	{Established, CloseWait, CauseRcvFIN, "snd ACK"},
	{Established, Closed, CauseRcvRST, "signal reset"},
	{Established, Closed, CauseAbort, "snd RST"},
	{Established, Closed, CauseRetransmitTimeout, "signal timeout"},
	{Established, Closed, CauseUserTimeout, "signal timeout"},
	{Established, Closed, CauseKeepAliveTimeout, "snd RST, signal timeout"},

	{FinWait1, FinWait2, CauseRcvACKOfFIN, ""},
	{FinWait1, Closing, CauseRcvFIN, "snd ACK"},
	{FinWait1, TimeWait, CauseRcvFINACK, "snd ACK"},
	{FinWait1, Closed, CauseRcvRST, "signal reset"},
	{FinWait1, Closed, CauseAbort, "snd RST"},
	{FinWait1, Closed, CauseRetransmitTimeout, "signal timeout"},
	{FinWait1, Closed, CauseUserTimeout, "signal timeout"},

	{FinWait2, TimeWait, CauseRcvFIN, "snd ACK"},
	{FinWait2, Closed, CauseRcvRST, "signal reset"},
	{FinWait2, Closed, CauseAbort, "snd RST"},

	{CloseWait, LastAck, CauseClose, "snd FIN"},
	{CloseWait, Closed, CauseRcvRST, "signal reset"},
	{CloseWait, Closed, CauseAbort, "snd RST"},
	{CloseWait, Closed, CauseRetransmitTimeout, "signal timeout"},
	{CloseWait, Closed, CauseUserTimeout, "signal timeout"},
	{CloseWait, Closed, CauseKeepAliveTimeout, "snd RST, signal timeout"},

	{Closing, TimeWait, CauseRcvACKOfFIN, ""},
	{Closing, Closed, CauseRcvRST, "delete TCB"},
	{Closing, Closed, CauseAbort, "delete TCB"},
	{Closing, Closed, CauseRetransmitTimeout, "signal timeout"},
	{Closing, Closed, CauseUserTimeout, "signal timeout"},

	{LastAck, Closed, CauseRcvACKOfFIN, "delete TCB"},
	{LastAck, Closed, CauseRcvRST, "delete TCB"},
	{LastAck, Closed, CauseAbort, "delete TCB"},
	{LastAck, Closed, CauseRetransmitTimeout, "signal timeout"},
	{LastAck, Closed, CauseUserTimeout, "signal timeout"},

	{TimeWait, Closed, CauseTimeWaitTimeout, "delete TCB"},
	{TimeWait, Closed, CauseRcvRST, "delete TCB"},
	{TimeWait, Closed, CauseAbort, "delete TCB"},
}

// Transitions returns a copy of the state table.
func Transitions() []Transition {
	return append([]Transition(nil), transitions...)
}

// allowed[from][to] is a bit set of the causes that the table permits.
var allowed = func() (a [numStates][numStates]uint32) {
	for _, t := range transitions {
		a[t.From][t.To] |= 1 << t.Cause
	}
	return a
}()

// Allowed reports whether the table has a row From -> To on cause.
func Allowed(from, to State, cause Cause) bool {
	if int(from) >= numStates || int(to) >= numStates || int(cause) >= numCauses {
		return false
	}
	return allowed[from][to]&(1<<cause) != 0
}

// strictTransitions makes the engine panic on a state change that is not in
// the table. The tests turn it on; in production an unknown transition is
// still taken and reported, so a driver never crashes on an engine bug.
var strictTransitions = false
