package tcpstate

// A posted read: the buffer of a Read that waits for data, lent to the
// engine so that in-order text goes straight into it instead of through the
// receive ring (one copy of every octet fewer, the ring's write and the
// Read's copy out of it becoming one). Only text that could have been read
// at once is placed: it must arrive in order, with nothing unread in the
// ring before it and nothing out of order beyond it, and within the window.
// Placed octets count as read the moment they land, so they never narrow
// the window: what the window advertises stays the free space of the ring,
// which is what it is.

// PostRead lends p, the buffer of a Read that found nothing to read, to the
// engine until TakePosted. The caller must not touch p meanwhile, and posts
// one buffer at a time (a second PostRead replaces the first, whose placed
// octets TakePosted would then not report).
func (e *Endpoint) PostRead(p []byte) { e.post, e.placed = p, 0 }

// TakePosted ends the loan of PostRead and returns how many octets were
// placed at the front of the buffer, in order; 0 when none were (or none
// was posted).
func (e *Endpoint) TakePosted() int {
	n := e.placed
	e.post, e.placed = nil, 0
	return n
}

// place puts the front of payload, in-order text starting at RCV.NXT that
// the caller has already cut to the window, into the posted buffer when
// the conditions above hold, advances RCV.NXT over it and returns how many
// octets it took.
func (e *Endpoint) place(payload []byte) int {
	if e.placed >= len(e.post) || e.rcv.len() > 0 || e.reasm.pending() {
		return 0
	}
	k := copy(e.post[e.placed:], payload)
	e.placed += k
	e.rcv.skip(k)
	e.tcb.RcvNxt = e.tcb.RcvNxt.Add(Size(k))
	return k
}
