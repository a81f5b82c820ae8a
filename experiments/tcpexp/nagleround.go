package tcpexp

import (
	"fmt"
	"slices"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// One request/response round of tcp/nagle-delayed-ack, read from the lab
// driver's records of one connection: the client writes a small header,
// then a small body, and reads the server's response, which the server
// sends once it holds the whole request. All times are the lab's clock
// (rawtcp.Stack.Now): when the lab sent a segment or handled one.

// nagleRound is one round as the records show it.
type nagleRound struct {
	found bool // header, body and the header's ACK are all in the records

	header, headerACK, body, response time.Duration
	// hdrRec, ackRec, bodyRec are the records' indices: their order is
	// the order the lab sent or handled them.
	hdrRec, ackRec, bodyRec, respRec int
	// pureACK: the first segment acknowledging the header carried no data
	// (a delayed or quick ACK, not the response).
	pureACK bool
	// wireGap is how long after the header the body crossed the loopback
	// by the capture's timestamps, when both were captured (wired): a
	// starved lab reads segments late, the wire does not.
	wireGap time.Duration
	wired   bool
	// bodyResent: the client sent the body's octets again before the
	// header's ACK (the sender's tail-loss probe, the receiver's answer
	// being late).
	bodyResent bool
}

// gap is how long after the header the body went: on the wire when both
// were captured, else by the lab's records.
func (n nagleRound) gap() time.Duration {
	if n.wired {
		return n.wireGap
	}
	return n.bodyWait()
}

// ackDelay is how long the header waited for its ACK.
func (n nagleRound) ackDelay() time.Duration { return n.headerACK - n.header }

// bodyWait is how long after the header the body went (or arrived).
func (n nagleRound) bodyWait() time.Duration { return n.body - n.header }

// bodyAfterACK: the body left only after the header was acknowledged
// (what Nagle does with a small segment while data is in flight).
func (n nagleRound) bodyAfterACK() bool { return n.found && n.bodyRec > n.ackRec }

// probed: the body left before the header's ACK, but only once the gap
// (header to body, on the wire when captured) had reached the sender's
// tail-loss probe floor: with Nagle on, that is the probe timer sending
// what Nagle held (Linux sends new data as its probe, tcp_send_loss_probe),
// not Nagle failing. It happens when the receiver's delayed ACK is late
// past the floor.
func (n nagleRound) probed() bool {
	return n.found && n.bodyRec != n.hdrRec && !n.bodyAfterACK() && n.gap() >= kernelProbeFloor
}

// writerLate: the body left after the header's pure ACK because its
// writer was late on the wire — the body crossed the loopback at least the
// receiver's delayed-ACK timer after the header, so the receiver's delayed
// ACK was due before it. With TCP_NODELAY the sender holds nothing; such a
// round shows a starved writing process (the race detector and two CPU
// hogs made one wait 40 ms between two writes), not where the ACK rides.
func (n nagleRound) writerLate() bool {
	return n.found && n.bodyRec != n.hdrRec && n.pureACK && n.bodyAfterACK() && n.wired && n.wireGap >= nagleDelayedACK
}

// bodyReprobed: with TCP_NODELAY, the body came at once, but the
// receiver's answer was so late (a starved process) that the sender's
// tail-loss probe sent the body again before any ACK, and the receiver
// acknowledged the duplicate at once with a pure ACK, as RFC 9293 asks
// of a segment that brings nothing new. Not where the ACK rides: the
// receiver answered a probe.
func (n nagleRound) bodyReprobed() bool {
	return n.found && n.bodyResent && n.pureACK && !n.bodyAfterACK()
}

// nagleRounds finds rounds rounds of header and body octets each in the
// records of connection id. The client is the lab (its segments are the
// ones the lab sent) when labClient is set, else the kernel; its request
// data starts at start.
func nagleRounds(recs []rawtcp.Record, id int, labClient bool, start tcpstate.Seq, rounds, header, body int) []nagleRound {
	out := make([]nagleRound, rounds)
	for i := range out {
		hs := start.Add(tcpstate.Size(i * (header + body)))
		bs := hs.Add(tcpstate.Size(header))
		rd := nagleRound{hdrRec: -1, ackRec: -1, bodyRec: -1, respRec: -1}
		for j := range recs {
			rec := &recs[j]
			if rec.Conn != id || rec.Note != "" && rec.Note != "released by the link" {
				continue
			}
			s := &rec.Seg
			fromClient := rec.Sent == labClient
			covers := func(q tcpstate.Seq) bool {
				return s.Len > 0 && s.Seq.LessThanEq(q) && q.LessThan(s.Seq.Add(tcpstate.Size(s.Len)))
			}
			switch {
			case fromClient && rd.hdrRec < 0 && covers(hs):
				rd.hdrRec, rd.header = j, rec.At
				if covers(bs) {
					rd.bodyRec, rd.body = j, rec.At
				}
			case fromClient && rd.hdrRec >= 0 && rd.bodyRec < 0 && covers(bs):
				rd.bodyRec, rd.body = j, rec.At
			case fromClient && rd.bodyRec >= 0 && rd.ackRec < 0 && covers(bs):
				rd.bodyResent = true
			case !fromClient && rd.hdrRec >= 0 && s.Flags&tcpstate.ACK != 0 && rd.ackRec < 0 && bs.LessThanEq(s.Ack):
				rd.ackRec, rd.headerACK, rd.pureACK = j, rec.At, s.Len == 0
				if s.Len > 0 && rd.respRec < 0 {
					rd.respRec, rd.response = j, rec.At
				}
			case !fromClient && rd.hdrRec >= 0 && s.Len > 0 && rd.respRec < 0:
				rd.respRec, rd.response = j, rec.At
			}
		}
		rd.found = rd.hdrRec >= 0 && rd.bodyRec >= 0 && rd.ackRec >= 0
		out[i] = rd
	}
	return out
}

// medianDur is the median of ds (0 for none).
func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// roundNotes comments the segments of one connection's rounds: which
// round each belongs to and what it shows (record index → comments).
// client and server name the two ends ("lab", "kernel").
func roundNotes(rounds []nagleRound, client, server string, nagle bool) map[int][]string {
	out := map[int][]string{}
	add := func(rec int, format string, args ...any) {
		if rec >= 0 {
			out[rec] = append(out[rec], fmt.Sprintf(format, args...))
		}
	}
	for i, rd := range rounds {
		if !rd.found {
			continue
		}
		n := i + 1
		if rd.bodyRec == rd.hdrRec {
			add(rd.hdrRec, "round %d: the %s's request, header and body in one segment", n, client)
		} else {
			add(rd.hdrRec, "round %d: the %s's request header, written alone; the body is the next write", n, client)
		}
		switch {
		case rd.pureACK && rd.ackDelay() >= kernelDelACKFloor:
			add(rd.ackRec, "round %d: the %s's ACK of the lone header, %s after it: its delayed-ACK timer (nothing to send yet, the request is incomplete)", n, server, fmtMs(rd.ackDelay()))
		case rd.pureACK:
			add(rd.ackRec, "round %d: the %s's ACK of the header, %s after it: a quick ACK", n, server, fmtMs(rd.ackDelay()))
		default:
			add(rd.ackRec, "round %d: the %s's response, carrying the ACK of the request (%s after the header): no pure ACK was needed", n, server, fmtMs(rd.ackDelay()))
		}
		switch {
		case rd.bodyRec == rd.hdrRec:
		case rd.bodyAfterACK() && nagle:
			add(rd.bodyRec, "round %d: the body, %s after the header: the %s's Nagle held it until the header was acknowledged", n, fmtMs(rd.bodyWait()), client)
		case rd.bodyAfterACK():
			add(rd.bodyRec, "round %d: the body, %s after the header (Nagle off; the header's ACK had come already)", n, fmtMs(rd.bodyWait()))
		case !nagle:
			add(rd.bodyRec, "round %d: the body, %s after the header, sent with the header unacknowledged (Nagle off)", n, fmtMs(rd.bodyWait()))
		case rd.probed():
			add(rd.bodyRec, "round %d: the body, %s after the header on the wire, sent with the header unacknowledged: the %s's loss-probe timer (at least %v) fired before the late ACK", n, fmtMs(rd.gap()), client, kernelProbeFloor)
		default:
			add(rd.bodyRec, "round %d: the body, %s after the header, sent with the header unacknowledged although Nagle was on", n, fmtMs(rd.bodyWait()))
		}
		if rd.respRec != rd.ackRec {
			add(rd.respRec, "round %d: the %s's response, once it held the whole request", n, server)
		}
	}
	return out
}

// rungNotes are the ladder's short notes on the rounds' segments (record
// index → note).
func rungNotes(rounds []nagleRound, nagle bool) map[int]string {
	out := map[int]string{}
	for i, rd := range rounds {
		if !rd.found {
			continue
		}
		n := i + 1
		out[rd.hdrRec] = fmt.Sprintf("round %d header", n)
		switch {
		case rd.pureACK && rd.ackDelay() >= kernelDelACKFloor:
			out[rd.ackRec] = fmt.Sprintf("delayed ACK, +%s", fmtMs(rd.ackDelay()))
		case rd.pureACK:
			out[rd.ackRec] = "quick ACK"
		default:
			out[rd.ackRec] = "response, with the ACK"
		}
		if rd.bodyRec != rd.hdrRec {
			held := ""
			switch {
			case rd.bodyAfterACK() && nagle:
				held = ", held by Nagle"
			case nagle && rd.probed():
				held = ", the loss probe"
			}
			out[rd.bodyRec] = fmt.Sprintf("round %d body, +%s%s", n, fmtMs(rd.bodyWait()), held)
		}
		if rd.respRec >= 0 && rd.respRec != rd.ackRec {
			out[rd.respRec] = fmt.Sprintf("round %d response", n)
		}
	}
	return out
}
