package tcpexp

import (
	"fmt"
	"strings"
	"time"
)

// check judges the four connections from their rounds. What each check
// relies on is an order or a lower bound the mechanism guarantees: Nagle
// sends the body only after the header's ACK; a delayed-ACK timer never
// fires early; quick ACKs leave in the same handling as the segment.
func (x *nagleExp) check() {
	env := x.env
	labNagle, labNoDelay, kNagle, kNoDelay := x.cases[0], x.cases[1], x.cases[2], x.cases[3]
	for _, nc := range x.cases {
		found := 0
		for _, rd := range nc.rounds {
			if rd.found {
				found++
			}
		}
		env.Check(nc.label+": every round's header, body and the header's ACK are in the lab's records", found == nagleRoundCount,
			"%d of %d rounds found", found, nagleRoundCount)
	}

	// The lab's Nagle against the kernel's delayed ACK.
	held, stalled := 0, 0
	var kDelays []time.Duration
	for _, rd := range labNagle.rounds {
		if rd.bodyAfterACK() {
			held++
		}
		if rd.found && rd.ackDelay() >= kernelDelACKFloor {
			stalled++
			kDelays = append(kDelays, rd.ackDelay())
		}
	}
	env.Check("lab Nagle: the body never left while the header was unacknowledged", held == nagleRoundCount,
		"in %d of %d rounds the lab's body segment left after the kernel's ACK of the header", held, nagleRoundCount)
	env.Check("kernel delayed ACK: the kernel held its ACK of the lone header for its delayed-ACK timer in most rounds", 2*stalled >= nagleRoundCount,
		"%d of %d rounds waited ≥ %v for the kernel's ACK (median %s ms); the kernel ACKs at once while in its quick-ACK mode, and "+
			"delays once request and response alternate (its \"pingpong\" mode)", stalled, nagleRoundCount, kernelDelACKFloor, ms(medianDur(kDelays)))

	// The lab's NoDelay against the same kernel.
	x.compareRounds("lab SetNoDelay(true)", labNoDelay, labNagle, 0)

	// The kernel's Nagle against the lab's delayed ACK.
	quick, delayed, kheld := 0, 0, 0
	var probes []string
	var lDelays []time.Duration
	for i, rd := range kNagle.rounds {
		switch {
		case !rd.found:
		case i < nagleQuickRounds && rd.pureACK && rd.ackDelay() < nagleDelayedACK:
			quick++
		case i >= nagleQuickRounds && rd.pureACK && rd.ackDelay() >= nagleDelayedACK:
			delayed++
			lDelays = append(lDelays, rd.ackDelay())
		}
		switch {
		case i < nagleQuickRounds:
		case rd.bodyAfterACK():
			kheld++
		case rd.probed():
			probes = append(probes, fmt.Sprintf("round %d: body %s ms after the header on the wire, the lab's ACK %s ms after it by its records", i+1, ms(rd.gap()), ms(rd.ackDelay())))
		}
	}
	late := nagleRoundCount - nagleQuickRounds
	env.Check("lab quick-ACK mode: the lab acknowledged each header at once in the first rounds", quick == nagleQuickRounds,
		"%d of the first %d rounds (the first %d data segments) got a pure ACK at once", quick, nagleQuickRounds, nagleQuickACKs)
	env.Check("lab delayed ACK: after quick-ACK mode the lab held its ACK of the lone header for its delayed-ACK timer", delayed == late,
		"%d of the last %d rounds waited ≥ %v for the lab's pure ACK (median %s ms)", delayed, late, nagleDelayedACK, ms(medianDur(lDelays)))
	probeNote := ""
	if len(probes) > 0 {
		probeNote = fmt.Sprintf("; in %d the lab's delayed ACK was late (a starved process) and the kernel's tail-loss probe, "+
			"which waits at least %v with one segment unacknowledged, sent the body first (%s)", len(probes), kernelProbeFloor, strings.Join(probes, "; "))
	}
	env.Check("kernel Nagle: the kernel sent the body only after the lab's ACK of the header, or by its loss probe when that ACK was late", kheld > 0 && kheld+len(probes) == late,
		"in %d of the last %d rounds the kernel's body arrived after the lab's delayed ACK%s", kheld, late, probeNote)

	// The kernel's TCP_NODELAY against the lab's delayed ACK.
	rode := 0
	var lateWriter, reprobed []string
	for i, rd := range kNoDelay.rounds {
		switch {
		case i < nagleQuickRounds:
		case rd.found && !rd.bodyAfterACK() && !rd.pureACK:
			rode++
		case rd.writerLate():
			lateWriter = append(lateWriter, fmt.Sprintf("round %d: body %s ms after the header on the wire", i+1, ms(rd.gap())))
		case rd.bodyReprobed():
			reprobed = append(reprobed, fmt.Sprintf("round %d", i+1))
		}
	}
	lateNote := ""
	if len(lateWriter) > 0 {
		lateNote = fmt.Sprintf("; in %d the kernel's writer was late (a starved process): its body crossed the wire after the lab's "+
			"delayed-ACK timer (%v) had sent a pure ACK, as it must (%s)", len(lateWriter), nagleDelayedACK, strings.Join(lateWriter, "; "))
	}
	if len(reprobed) > 0 {
		lateNote += fmt.Sprintf("; in %d the lab's answer was late (a starved process): the kernel's tail-loss probe sent the body again "+
			"before any ACK, and the lab acknowledged the duplicate at once, as it must (%s)", len(reprobed), strings.Join(reprobed, "; "))
	}
	env.Check("kernel TCP_NODELAY: after quick-ACK mode the body came at once and the lab's ACK rode on its response", rode > 0 && rode+len(lateWriter)+len(reprobed) == late,
		"in %d of the last %d rounds the body arrived before any ACK of the header and the lab sent no pure ACK: "+
			"its delayed ACK went with the response%s", rode, late, lateNote)
	x.compareRounds("kernel TCP_NODELAY", kNoDelay, kNagle, nagleQuickRounds)

	env.Metric("kernel_delayed_ack_median_ms", msf(medianDur(kDelays)))
	env.Metric("kernel_delayed_ack_rounds_count", float64(stalled))
	env.Metric("lab_delayed_ack_median_ms", msf(medianDur(lDelays)))
	env.Metric("lab_quick_ack_rounds_count", float64(quick))
	for _, m := range []struct {
		name string
		nc   *nagleCase
		from int
	}{{"lab_nagle", labNagle, 0}, {"lab_nodelay", labNoDelay, 0}, {"kernel_nagle", kNagle, nagleQuickRounds}, {"kernel_nodelay", kNoDelay, nagleQuickRounds}} {
		env.Metric(m.name+"_round_median_ms", msf(medianDur(tail(m.nc.wall, m.from))))
	}
}

// tail is ds from index from on (none if it is shorter).
func tail(ds []time.Duration, from int) []time.Duration {
	if from >= len(ds) {
		return nil
	}
	return ds[from:]
}

// compareRounds checks that turning Nagle off at the client removed the
// stall: the median round from round from+1 on, on the client's clock, is
// under a quarter of the one with Nagle (which waits for a delayed-ACK
// timer in those rounds). Rounds before from are the server's quick-ACK
// mode, where neither waits.
func (x *nagleExp) compareRounds(what string, off, on *nagleCase, from int) {
	mOff, mOn := medianDur(tail(off.wall, from)), medianDur(tail(on.wall, from))
	x.env.Check(fmt.Sprintf("%s removes the stall: the median round is under a quarter of the one with Nagle", what),
		len(off.wall) == nagleRoundCount && 4*mOff < mOn,
		"median of rounds %d–%d: %s ms with Nagle off, %s ms with it on (client's clock)", from+1, nagleRoundCount, ms(mOff), ms(mOn))
}

// msf is a duration in milliseconds, for metrics.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
