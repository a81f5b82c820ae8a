package tcpexp

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// ordinal renders 1st, 2nd, 3rd, 4th…
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// joinAnd joins "a", "b", "c" as "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// fmtMs renders a duration in milliseconds, one decimal below 10 ms.
func fmtMs(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if d == 0 {
		return "0 ms"
	}
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return strconv.FormatFloat(ms, 'f', 0, 64) + " ms"
}

// seqSpan names the sequence space a segment occupies, relative to base:
// "seq 1–100", "SYN (seq 0)", "FIN (seq 101)", "seq 1–100 and FIN".
func seqSpan(flags uint8, seq uint32, n int, base seqBase) string {
	var parts []string
	data := seq
	if flags&wSYN != 0 {
		name := "SYN"
		if flags&wACK != 0 {
			name = "SYN,ACK"
		}
		parts = append(parts, name+" (seq "+base.rel(seq)+")")
		data++
	}
	switch {
	case n == 1:
		parts = append(parts, "seq "+base.rel(data))
	case n > 1:
		parts = append(parts, "seq "+base.rel(data)+"–"+base.rel(data+uint32(n)-1))
	}
	if flags&wFIN != 0 {
		if n > 0 {
			parts = append(parts, "FIN")
		} else {
			parts = append(parts, "FIN (seq "+base.rel(data)+")")
		}
	}
	return strings.Join(parts, " and ")
}

// synFin is the part of a segment's flags that names its stretch of
// sequence space: SYN and FIN, and ACK beside a SYN (a SYN,ACK repeats the
// SYN's number in a simultaneous open, and is not a copy of it).
func synFin(f tcpstate.Flags) tcpstate.Flags {
	if f&tcpstate.SYN != 0 {
		return f & (tcpstate.SYN | tcpstate.FIN | tcpstate.ACK)
	}
	return f & tcpstate.FIN
}

// transmission is one emission of a stretch of sequence space by the lab's
// engine, with its fate on the link.
type transmission struct {
	rec      int           // the emission's record
	at       time.Duration // when the engine emitted it
	fate     string        // "wire", "dropped", "held", "lost"
	wireRec  int           // the record of its copy on the wire (emission or release), -1 if none
	released bool          // reached the wire later, released by the link
}

// nameTransmissions names the lab's transmissions of each stretch of
// sequence space of one connection: recs are the connection's records in
// order (indices into all), frame gives the capture frame number (1-based)
// of a record's packet or 0. It returns a comment for the record of each
// copy on the wire that is not the only, plain transmission of its stretch
// (a retransmission, or a copy the link held back), the emissions it
// names, on the wire or not, and for each release by the link the
// emission it released.
func nameTransmissions(all []rawtcp.Record, recs []int, frame func(rec int) int, base seqBase) (names map[int]string, named map[int]bool, heldOf map[int]int) {
	groups, order := groupTransmissions(all, recs)
	names, named, heldOf = map[int]string{}, map[int]bool{}, map[int]int{}
	for _, k := range order {
		g := groups[k]
		for _, t := range g {
			if t.released {
				heldOf[t.wireRec] = t.rec
			}
		}
		if len(g) < 2 && !g[0].released {
			continue
		}
		for _, t := range g {
			named[t.rec] = true
		}
		span := seqSpan(uint8(k.flags), uint32(k.seq), k.n, base)
		for n, t := range g {
			if t.wireRec >= 0 {
				names[t.wireRec] = describeTransmission(all, g, n, span, frame)
			}
		}
	}
	return names, named, heldOf
}

// stretch is a stretch of sequence space a segment occupies: its first
// number, its length and the SYN and FIN in it.
type stretch struct {
	seq   tcpstate.Seq
	n     int
	flags tcpstate.Flags
}

// groupTransmissions groups the lab's emissions of data, SYN or FIN among
// recs by the stretch they occupy, in the order the stretches were first
// sent, each with its fate; a release by the link is the wire copy of the
// first held emission of its stretch not yet released.
func groupTransmissions(all []rawtcp.Record, recs []int) (map[stretch][]*transmission, []stretch) {
	groups := map[stretch][]*transmission{}
	var order []stretch
	for _, i := range recs {
		rec := &all[i]
		if !rec.Sent || rec.Note == "injected" || (rec.Seg.Len == 0 && rec.Seg.Flags&(tcpstate.SYN|tcpstate.FIN) == 0) || rec.Seg.Flags&tcpstate.RST != 0 {
			continue
		}
		k := stretch{rec.Seg.Seq, rec.Seg.Len, synFin(rec.Seg.Flags)}
		g := groups[k]
		if strings.HasPrefix(rec.Note, "released") {
			for _, t := range g {
				if t.fate == "held" && t.wireRec < 0 {
					t.wireRec, t.released = i, true
					break
				}
			}
			continue
		}
		t := &transmission{rec: i, at: rec.At, wireRec: -1}
		switch {
		case strings.HasPrefix(rec.Note, "dropped"):
			t.fate = "dropped"
		case strings.HasPrefix(rec.Note, "held"):
			t.fate = "held"
		case strings.HasPrefix(rec.Note, "lost"):
			t.fate = "lost"
		default:
			t.fate, t.wireRec = "wire", i
		}
		if g == nil {
			order = append(order, k)
		}
		groups[k] = append(g, t)
	}
	return groups, order
}

// describeTransmission is the comment on the wire copy of the n-th
// transmission of a stretch (g, all of them in order): when it was
// emitted, whether the link held it back, and where the other copies are,
// those of one fate together ("the 1st (+0 ms) and 2nd (+50 ms) were
// dropped by …").
func describeTransmission(all []rawtcp.Record, g []*transmission, n int, span string, frame func(rec int) int) string {
	t, t0 := g[n], g[0].at
	var b strings.Builder
	fmt.Fprintf(&b, "%s transmission of %s by the lab, emitted at +%s", ordinal(n+1), span, fmtMs(t.at-t0))
	if t.released {
		fmt.Fprintf(&b, " in %s, held back on the lab's link and released at +%s", all[t.rec].State, fmtMs(all[t.wireRec].At-t0))
	}
	var others []string
	fates := map[string][]string{}
	var fateOrder []string
	for m, o := range g {
		if m == n {
			continue
		}
		w := fmt.Sprintf("%s (+%s)", ordinal(m+1), fmtMs(o.at-t0))
		var fate string
		switch {
		case o.fate == "dropped":
			fate = "dropped by the lab's simulated loss and never reached the wire"
		case o.fate == "lost":
			fate = "lost (no buffer space in the kernel) and never reached the wire"
		case o.wireRec < 0:
			fate = "held back on the lab's link and never reached the wire"
		case frame(o.wireRec) > 0 && o.released:
			others = append(others, fmt.Sprintf("the %s was held back on the lab's link and reached the wire in frame %d", w, frame(o.wireRec)))
			continue
		case frame(o.wireRec) > 0:
			others = append(others, fmt.Sprintf("the %s is frame %d", w, frame(o.wireRec)))
			continue
		default:
			fate = "on the wire but not in the capture"
		}
		if fates[fate] == nil {
			fateOrder = append(fateOrder, fate)
		}
		fates[fate] = append(fates[fate], w)
	}
	for _, f := range fateOrder {
		verb := "was"
		if len(fates[f]) > 1 {
			verb = "were"
		}
		others = append(others, "the "+joinAnd(fates[f])+" "+verb+" "+f)
	}
	if len(others) > 0 {
		b.WriteString("; ")
		b.WriteString(strings.Join(others, "; "))
	}
	return b.String()
}

// kernelTransmissions names the kernel's retransmissions in one
// conversation: every kernel segment that repeats sequence space the
// kernel already sent, with when and where the earlier copies are.
func kernelTransmissions(c *conv, frameOf func(pkt int) int) map[int]string {
	type key struct {
		seq   uint32
		n     int
		flags uint8
	}
	groups := map[key][]int{} // indices into c.segs
	for i, s := range c.segs {
		if s.fromLab || s.has(wRST) || (s.n == 0 && s.flags&(wSYN|wFIN) == 0) {
			continue
		}
		k := key{s.seq, s.n, uint8(synFin(tcpstate.Flags(s.flags)))}
		groups[k] = append(groups[k], i)
	}
	out := map[int]string{}
	for k, g := range groups {
		if len(g) < 2 {
			continue
		}
		span := seqSpan(k.flags, k.seq, k.n, c.peerBase)
		t0 := c.segs[g[0]].at
		for n, i := range g {
			var others []string
			for m, j := range g {
				if m != n {
					others = append(others, fmt.Sprintf("the %s (+%s) is frame %d", ordinal(m+1), fmtMs(c.segs[j].at.Sub(t0)), frameOf(c.pkts[j])))
				}
			}
			out[c.pkts[i]] = fmt.Sprintf("%s transmission of %s by the kernel, at +%s; %s", ordinal(n+1), span, fmtMs(c.segs[i].at.Sub(t0)), strings.Join(others, "; "))
		}
	}
	return out
}
