package udpdns

import "fmt"

// Reason is why a datagram that arrived on a client socket completed no
// query.
type Reason uint8

// Rejection reasons, in the order the reply path tests them (RFC 5452 §9.1).
const (
	// Malformed: header or question unparsable, or a matched reply's
	// records not whole (a name, fixed fields or RDATA running past the
	// end; with cookies on, a message miekg/dns would not unpack).
	Malformed Reason = iota
	// NotResponse: QR=0, or an opcode other than the query's.
	NotResponse
	// WrongID: no query in flight (or recently ended) has this ID.
	WrongID
	// WrongSource: the ID is in flight but the datagram did not come from
	// the address and port the query was sent to.
	WrongSource
	// WrongQuestion: ID and source match but QNAME, QTYPE or QCLASS do
	// not (with DNS 0x20, QNAME must match letter case too).
	WrongQuestion
	// MissingCookie: everything above matches, but the answer carries no
	// DNS cookie although the server has given the client one (Config.Cookies).
	MissingCookie
	// WrongCookie: the answer's cookie is not the client's own, or is
	// malformed (Config.Cookies).
	WrongCookie
	numReasons
)

var reasonNames = [numReasons]string{"malformed", "not a response", "wrong ID", "wrong source", "wrong question", "missing cookie", "wrong cookie"}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Stats are a client's counters. A snapshot is taken atomically, so
// Sent == Matched + Lost + InFlight holds in every snapshot.
type Stats struct {
	// Sent counts query attempts registered and handed to the socket
	// (each retry is an attempt with a fresh ID).
	Sent uint64
	// Matched counts attempts completed by their reply.
	Matched uint64
	// Lost counts attempts that ended without one: TimedOut + Cancelled +
	// SendFailed.
	Lost       uint64
	TimedOut   uint64
	Cancelled  uint64 // context cancelled or client closed
	SendFailed uint64
	// InFlight is attempts awaiting their reply now.
	InFlight uint64
	// Late counts replies that matched an attempt that had already timed
	// out or been cancelled: they complete nothing.
	Late uint64
	// Duplicate counts further copies of a reply already delivered.
	Duplicate uint64
	// Rejected counts other datagrams by reason.
	Rejected [numReasons]uint64
	// IDOnly counts rejected datagrams whose ID was in flight at arrival:
	// the ones a matcher that checks only the ID would have accepted.
	IDOnly uint64
	// Retries counts attempts after the first.
	Retries uint64
	// BadCookie counts answers that said BADCOOKIE (the query went
	// again); Truncated matched UDP answers with TC set; TCPSent queries
	// retried over TCP and TCPAnswered those answered there.
	BadCookie, Truncated, TCPSent, TCPAnswered uint64
}

// Consistent reports the counters' invariant.
func (s Stats) Consistent() bool { return s.Sent == s.Matched+s.Lost+s.InFlight }

// RejectedTotal sums Rejected.
func (s Stats) RejectedTotal() uint64 {
	var n uint64
	for _, v := range s.Rejected {
		n += v
	}
	return n
}

func (s *Stats) add(o *Stats) {
	s.Sent += o.Sent
	s.Matched += o.Matched
	s.Lost += o.Lost
	s.TimedOut += o.TimedOut
	s.Cancelled += o.Cancelled
	s.SendFailed += o.SendFailed
	s.InFlight += o.InFlight
	s.Late += o.Late
	s.Duplicate += o.Duplicate
	for i := range s.Rejected {
		s.Rejected[i] += o.Rejected[i]
	}
	s.IDOnly += o.IDOnly
	s.Retries += o.Retries
	s.BadCookie += o.BadCookie
	s.Truncated += o.Truncated
	s.TCPSent += o.TCPSent
	s.TCPAnswered += o.TCPAnswered
}

// String is a one-line summary.
func (s Stats) String() string {
	return fmt.Sprintf("sent=%d matched=%d lost=%d (timeout=%d cancelled=%d sendfail=%d) inflight=%d late=%d duplicate=%d "+
		"rejected: malformed=%d not-response=%d wrong-id=%d wrong-source=%d wrong-question=%d missing-cookie=%d wrong-cookie=%d retries=%d "+
		"badcookie=%d truncated=%d tcp=%d/%d",
		s.Sent, s.Matched, s.Lost, s.TimedOut, s.Cancelled, s.SendFailed, s.InFlight, s.Late, s.Duplicate,
		s.Rejected[Malformed], s.Rejected[NotResponse], s.Rejected[WrongID], s.Rejected[WrongSource], s.Rejected[WrongQuestion],
		s.Rejected[MissingCookie], s.Rejected[WrongCookie], s.Retries, s.BadCookie, s.Truncated, s.TCPAnswered, s.TCPSent)
}
