package tcpstate

// Urgent data (RFC 9293 §3.8.5 and the sixth step of §3.10.7.4). The text
// of an urgent segment is delivered in order with the rest, as Linux does
// with SO_OOBINLINE; what the engine adds is the signal the RFC asks for:
// when a segment with URG moves the urgent pointer RCV.UP forward, an
// EventUrgent reports it (Event.Urgent = SEG.SEQ+SEG.UP, the sequence
// number of the octet following the urgent data, RFC 6093), so the user
// knows urgent data is in, or coming in, the stream.

// receiveUrgent is the sixth step: RCV.UP <- max(RCV.UP, SEG.UP), and the
// user is told when it advances, in the states that deliver data.
func (e *Endpoint) receiveUrgent(a *arrival, out *Output) {
	if !e.tcb.State.AcceptsData() {
		return
	}
	up := a.seg.Seq.Add(Size(a.seg.Urgent))
	if e.rcvUpValid && !e.rcvUp.LessThan(up) {
		return
	}
	e.rcvUp, e.rcvUpValid = up, true
	out.Events = append(out.Events, Event{Kind: EventUrgent, Urgent: up})
}
