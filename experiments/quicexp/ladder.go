package quicexp

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/statelab/statelab/lab"
)

// rows collects a ladder's rows and draws them in capture order: a
// message row at its packet's index in the capture, a state row at the
// index it comes before (-1: first). Every message row is a captured
// packet, numbered by its frame in the capture.
type rows struct {
	at []float64
	r  []lab.Rung
}

func (r *rows) add(at float64, g lab.Rung) {
	r.at = append(r.at, at)
	r.r = append(r.r, g)
}

// send adds a captured packet from the ladder's left side.
func (r *rows) send(index int, label, left, right string) {
	r.add(float64(index), lab.Rung{Label: fmt.Sprintf("#%d %s", index+1, label), ToRight: true, LeftState: left, RightState: right})
}

// reply adds a captured packet from the ladder's right side.
func (r *rows) reply(index int, label, left, right string) {
	r.add(float64(index), lab.Rung{Label: fmt.Sprintf("#%d %s", index+1, label), LeftState: left, RightState: right})
}

// state adds a change of state just before the packet at index.
func (r *rows) state(before int, left, right string) {
	r.add(float64(before)-0.5, lab.Rung{LeftState: left, RightState: right})
}

// draw appends the rows to l in capture order.
func (r *rows) draw(l *lab.Ladder) {
	idx := make([]int, len(r.at))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(r.at[a], r.at[b]) })
	for _, i := range idx {
		l.Rows = append(l.Rows, r.r[i])
	}
}

// cidShort abbreviates a connection ID for diagrams.
func cidShort(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

// frames names a qlog record's frames for a ladder row: "STREAM ACK".
func frames(e *PacketEvent) string {
	if e == nil {
		return "(no qlog record)"
	}
	return strings.Join(slices.Compact(slices.Clone(e.Frames)), " ")
}
