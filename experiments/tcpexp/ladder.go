package tcpexp

import (
	"fmt"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// ladder draws one connection as captured: its captured segments in
// capture order with the lab's state from the records and the kernel's
// from the segments; segments the records hold that are not in the
// capture (dropped or held by the lab's link) are marked as reported by
// the engine's records. A short capture (CaptureComplete failed) gets no
// ladder, only a note saying why: rows from the records would stand in
// for the packets it misses.
func (r *labRun) ladder(title string, c *rawtcp.Conn) { r.ladderN(title, c, 0, 0, nil) }

// ladderN is ladder keeping only the first head and last tail rows of a
// long exchange and the records keep selects (0, 0: all); the rest
// collapse into "… n segments …" rows.
func (r *labRun) ladderN(title string, c *rawtcp.Conn, head, tail int, keep func(*rawtcp.Record) bool) {
	if c == nil {
		return
	}
	items, cv := r.ladderItems(c)
	var lb, pb seqBase
	if cv != nil {
		lb, pb = cv.labBase, cv.peerBase
	} else { // nothing captured: the records' own numbers
		t := c.TCB()
		lb, pb = seqBase{uint32(t.ISS), true}, seqBase{uint32(t.IRS), true}
	}
	// The plots come from the engine's records, whatever was captured;
	// a ladder "as captured" only from a capture known to be whole.
	defer r.plots(title, c, lb, pb)
	if r.env.CaptureShort() {
		if !r.noLadder {
			r.noLadder = true
			r.env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\"), and a ladder presented as the exchange holds only captured packets.")
		}
		return
	}
	l := r.env.Ladder(title+" (as captured; sequence numbers relative, as Wireshark shows them)", "lab (tcpstate)", "kernel")
	lr := ladderRows{r: r, c: c, lb: lb, pb: pb, keep: keep}
	for _, it := range items {
		lr.add(it)
	}
	l.Rows = collapse(lr.rows, lr.kept, head, tail)
	l.Timed = true // rows carry the records' times (AtMS)
}

// ladderItem is one row to be: a captured packet, a record, or both.
type ladderItem struct {
	pkt, sub int // capture position; sub orders records with no packet after the packet before them
	rec      int // record, -1 for a captured packet without one
	p        int // packet, -1 for a record without one
}

// ladderItems lists the connection's records and the captured packets of
// its conversations without a record, in capture order, and returns the
// first of those conversations (nil when nothing was captured).
func (r *labRun) ladderItems(c *rawtcp.Conn) ([]ladderItem, *conv) {
	var items []ladderItem
	convSet := map[int]bool{}
	last := ladderItem{pkt: -1}
	for _, ri := range r.connRecs(c.ID()) {
		if p, ok := r.recPkt[ri]; ok {
			last = ladderItem{pkt: p, rec: ri, p: p}
			items = append(items, last)
			if r.convOf[p] >= 0 {
				convSet[r.convOf[p]] = true
			}
			continue
		}
		last.sub++
		items = append(items, ladderItem{pkt: last.pkt, sub: last.sub, rec: ri, p: -1})
	}
	var first *conv
	for ci := range convSet {
		for _, p := range r.convs[ci].pkts {
			if r.pktRec[p] < 0 {
				items = append(items, ladderItem{pkt: p, rec: -1, p: p})
			}
		}
		if first == nil || ci < first.id {
			first = r.convs[ci]
		}
	}
	sort.SliceStable(items, func(a, b int) bool {
		if items[a].pkt != items[b].pkt {
			return items[a].pkt < items[b].pkt
		}
		return items[a].sub < items[b].sub
	})
	return items, first
}

// ladderRows builds a ladder's rows item by item, carrying the kernel's
// state from the last captured packet and the lab's from the last record.
type ladderRows struct {
	r      *labRun
	c      *rawtcp.Conn
	lb, pb seqBase
	keep   func(*rawtcp.Record) bool

	rows   []lab.Rung
	kept   []bool // rows collapse never hides
	prev   string // the lab's state on the row before
	kstate string // the kernel's state at the last captured packet
	// sentMax is the end of the highest data the lab sent (relative), to
	// tell a retransmission.
	sentMax uint32
	sentAny bool
}

func (lr *ladderRows) add(it ladderItem) {
	r := lr.r
	if it.p >= 0 && r.convOf[it.p] >= 0 {
		cc := r.convs[r.convOf[it.p]]
		for j, p := range cc.pkts {
			if p == it.p {
				lr.kstate = cc.kernel[j].state
			}
		}
	}
	if it.rec < 0 {
		lr.addPacket(it.p)
		return
	}
	rec := &r.recs[it.rec]
	if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 { // a note, not a segment
		lr.rows = append(lr.rows, lab.Rung{LeftState: rec.State.String() + " (" + rec.Note + ")", RightState: lr.kstate})
		lr.kept = append(lr.kept, true)
		return
	}
	lr.addRecord(rec, it.p >= 0)
	if note := r.rungNotes[it.rec]; note != "" { // after the kernel's state: the last column is never clipped
		lr.rows[len(lr.rows)-1].RightState += "   · " + note
	}
}

// addPacket adds a captured packet that has no record.
func (lr *ladderRows) addPacket(p int) {
	m, _ := lr.r.pkts[p].Decode()
	fromLab := m.Src == lr.c.Local()
	sb, ab := lr.pb, lr.lb
	if fromLab {
		sb, ab = lr.lb, lr.pb
	}
	lr.rows = append(lr.rows, lab.Rung{Label: wireLabel(m.Flags, m.Seq, m.Ack, len(m.Payload), m.Window, sb, ab) + " (no lab record)",
		ToRight: fromLab, LeftState: "?", RightState: lr.kstate})
	lr.kept = append(lr.kept, false)
}

// addRecord adds a record's segment, captured or not (then marked as
// reported by the engine's records, with why it is missing).
func (lr *ladderRows) addRecord(rec *rawtcp.Record, captured bool) {
	labState := rec.State.String()
	lr.kept = append(lr.kept, lr.keep != nil && lr.keep(rec))
	sb, ab := lr.lb, lr.pb
	if !rec.Sent {
		sb, ab = lr.pb, lr.lb
	}
	label := wireLabel(uint8(rec.Seg.Flags), uint32(rec.Seg.Seq), uint32(rec.Seg.Ack), rec.Seg.Len, rec.Seg.Window, sb, ab)
	label += optionsLabel(&rec.Seg, ab, lr.r.labelTS)
	row := lab.Rung{ToRight: rec.Sent, RightState: lr.kstate, AtMS: lab.MS(rec.At), Detail: labComment(rec, lr.lb, lr.pb)}
	if rec.Sent && onWire(rec) {
		end := uint32(rec.Seg.Seq) - lr.lb.v + uint32(rec.Seg.Len)
		if lr.sentAny && rec.Seg.Len > 0 && end <= lr.sentMax {
			row.Kind = lab.FateRetransmit
		}
		lr.sentMax, lr.sentAny = max(lr.sentMax, end), true
	}
	switch {
	case !captured && !onWire(rec):
		if !strings.HasPrefix(rec.Note, "held") {
			label = "✗ " + label // lost for good
			row.Kind = lab.FateLost
		} else {
			row.Kind = lab.FateLate
		}
		label += " (" + lostWhy(rec.Note) + ")"
		row.Reported = "engine records"
	case !captured:
		label += " (not in the capture)"
		row.Reported = "engine records"
	case rec.Note != "" && rec.Note != "no TCB":
		label += " (" + rec.Note + ")"
	}
	if !rec.Sent && rec.Before != rec.State && lr.prev != rec.Before.String() {
		labState = rec.Before.String() + "→" + labState
	}
	row.Label, row.LeftState = label, labState
	lr.rows = append(lr.rows, row)
	lr.prev = rec.State.String()
}

// collapse keeps the first head and last tail rows, the kept ones and the
// ones the records reported, and folds each run of the others into one
// "… n segments …" row (head, tail 0: every row).
func collapse(rows []lab.Rung, kept []bool, head, tail int) []lab.Rung {
	if head+tail == 0 || len(rows) <= head+tail+1 {
		return rows
	}
	var out []lab.Rung
	skipped := 0
	for i, row := range rows {
		if i < head || i >= len(rows)-tail || kept[i] || row.Reported != "" {
			if skipped > 0 {
				out = append(out, lab.Rung{LeftState: fmt.Sprintf("… %d segments …", skipped)})
				skipped = 0
			}
			out = append(out, row)
			continue
		}
		skipped++
	}
	return out
}
