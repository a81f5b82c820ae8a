package lab

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Ladder is a sequence diagram of an exchange that really happened: two
// columns (client and server), an arrow per message, and each side's state
// beside the arrow where the experiment tracks it — the diagrams of the
// seeds, drawn from the run.
type Ladder struct {
	Title string `json:"title,omitempty"`
	Left  string `json:"left"`
	Right string `json:"right"`
	Rows  []Rung `json:"rows"`
	// Timed says the rows carry their times (AtMS), so a picture can
	// draw time running down to scale.
	Timed bool `json:"timed,omitempty"`

	origin time.Time // the first time When was given
}

// Rung is one row of a ladder: a message (Right true: left to right) or,
// with an empty Label, a change of state alone.
type Rung struct {
	Label      string `json:"label"`
	ToRight    bool   `json:"to_right"`
	LeftState  string `json:"left_state,omitempty"`
	RightState string `json:"right_state,omitempty"`
	// Reported, when set, names who reported a message that is not in the
	// capture (an endpoint's qlog, the engine's records): a ladder titled
	// "as captured" draws such a row with ◇ and says where it came from.
	Reported string `json:"reported,omitempty"`
	// Kind marks a message drawn distinctly: lost, forged, late,
	// retransmitted ("" for an ordinary one).
	Kind Fate `json:"kind,omitempty"`
	// AtMS is when the message crossed (or the state changed), in ms from
	// the ladder's first row, when the ladder is Timed.
	AtMS float64 `json:"at_ms,omitempty"`
	// Detail is the message's whole story (its full summary, the packet's
	// comment), which a picture shows on hover.
	Detail string `json:"detail,omitempty"`
}

// Send adds a left-to-right message.
func (l *Ladder) Send(label, leftState, rightState string) {
	l.Rows = append(l.Rows, Rung{Label: label, ToRight: true, LeftState: leftState, RightState: rightState})
}

// Reply adds a right-to-left message.
func (l *Ladder) Reply(label, leftState, rightState string) {
	l.Rows = append(l.Rows, Rung{Label: label, LeftState: leftState, RightState: rightState})
}

// State adds a row with no message, only state.
func (l *Ladder) State(leftState, rightState string) {
	l.Rows = append(l.Rows, Rung{LeftState: leftState, RightState: rightState})
}

// Tag sets the kind of the last row added.
func (l *Ladder) Tag(k Fate) {
	if n := len(l.Rows); n > 0 {
		l.Rows[n-1].Kind = k
	}
}

// At sets the time of the last row added, from the ladder's start, and
// marks the ladder timed.
func (l *Ladder) At(d time.Duration) {
	if n := len(l.Rows); n > 0 {
		l.Rows[n-1].AtMS = MS(d)
		l.Timed = true
	}
}

// When sets the time of the last row added from a clock reading (a
// captured packet's timestamp): the first reading is the ladder's zero.
func (l *Ladder) When(t time.Time) {
	if len(l.Rows) == 0 || t.IsZero() {
		return
	}
	if l.origin.IsZero() {
		l.origin = t
	}
	l.At(t.Sub(l.origin))
}

// Explain sets the detail of the last row added: its whole story, for a
// picture's hover text.
func (l *Ladder) Explain(detail string) {
	if n := len(l.Rows); n > 0 {
		l.Rows[n-1].Detail = detail
	}
}

// arrowWidth is the arrow's length when the ladder fits its width with
// it; minArrow the shortest it is made to fit a narrow width.
const (
	arrowWidth = 46
	minArrow   = 24
	tightArrow = 16
)

// maxStateWord is the longest word of a state kept on one line when the
// width is short: ESTABLISHED, ECONNRESET and addresses fit.
const maxStateWord = 22

// minState is the narrowest a state column is made (states wrap below it
// on the lines of their rung).
const minState = 12

// Render draws the ladder for DefaultWidth columns (see RenderWidth):
//
//	client                                                   server
//	                 │                                         │
//	                 │── POST /calculate add 10 5 ────────────►│ last_result=15
//	running=15       │◄─ 200 {"result":15} ────────────────────│
func (l *Ladder) Render(b *strings.Builder) { l.RenderWidth(b, DefaultWidth) }

// RenderWidth draws the ladder in width columns. Nothing is cut: a label
// longer than its arrow continues on the lines under it, between the
// rails, and states wrap on the lines of their rung.
func (l *Ladder) RenderWidth(b *strings.Builder, width int) {
	lw, rw := runes(l.Left), runes(l.Right)
	lword, rword := longestWord(l.Left), longestWord(l.Right)
	for _, r := range l.Rows {
		lw, rw = max(lw, runes(r.LeftState)), max(rw, runes(r.RightState))
		lword, rword = max(lword, longestWord(r.LeftState)), max(rword, longestWord(r.RightState))
	}
	lword, rword = min(lword, maxStateWord), min(rword, maxStateWord)
	aw := arrowWidth
	// "  " left " " │arrow│ " " right
	total := func() int { return 2 + lw + 1 + aw + 2 + 1 + rw }
	// Narrow, in turn: long states down to 2×minState, the arrow down to
	// minArrow, states down to their longest word, the arrow down to
	// tightArrow, and states down to minState/2.
	shrinkStates := func(lfloor, rfloor int) bool {
		switch {
		case lw > lfloor && (lw >= rw || rw <= rfloor):
			lw--
		case rw > rfloor:
			rw--
		default:
			return false
		}
		return true
	}
	for total() > width {
		if shrinkStates(max(2*minState, lword), max(2*minState, rword)) {
			continue
		}
		if aw > minArrow {
			aw--
			continue
		}
		if shrinkStates(lword, rword) {
			continue
		}
		if aw > tightArrow {
			aw--
			continue
		}
		if !shrinkStates(minState/2, minState/2) {
			break
		}
	}
	if l.Title != "" {
		for _, t := range wrap(l.Title, width) {
			fmt.Fprintf(b, "%s\n", t)
		}
	}
	left, right := wrap(l.Left, max(lw, 1)), wrap(l.Right, max(width-2-lw-1-aw-2-1, rw, 1))
	for i := range max(len(left), len(right)) {
		line := fmt.Sprintf("  %s %s %s", pad(at(left, i), lw), strings.Repeat(" ", aw+2), at(right, i))
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	text := aw - 5 // "── " label " ─►" on the arrow
	for _, r := range l.Rows {
		ls, rs := wrap(r.LeftState, lw), wrap(r.RightState, rw)
		var label []string
		if r.Label != "" {
			label = wrap(mark(r)+r.Label, text)
		}
		for i := range max(len(ls), len(rs), len(label), 1) {
			var mid string
			switch {
			case i >= len(label):
				mid = "│" + strings.Repeat(" ", aw) + "│"
			case i > 0:
				mid = "│   " + pad(label[i], aw-3) + "│"
			case r.ToRight:
				mid = "│" + fill("── "+label[0]+" ", '─', aw-1) + "►│"
			default:
				mid = "│◄" + fill("─ "+label[0]+" ", '─', aw-1) + "│"
			}
			line := fmt.Sprintf("  %s %s %s", pad(at(ls, i), lw), mid, at(rs, i))
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		}
	}
	var who []string
	for _, r := range l.Rows {
		if r.Reported != "" && r.Label != "" && !slices.Contains(who, r.Reported) {
			who = append(who, r.Reported)
		}
	}
	if len(who) > 0 {
		hanging(b, "  ◇ not in the capture: reported by ", strings.Join(who, ", "), width, 4)
	}
}

// longestWord is the width of s's longest word.
func longestWord(s string) int {
	n := 0
	for _, w := range strings.Fields(s) {
		n = max(n, runes(w))
	}
	return n
}

// at is lines[i], or "" past the end.
func at(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return ""
}

func mark(r Rung) string {
	if r.Reported != "" {
		return "◇ "
	}
	return ""
}

func pad(s string, w int) string {
	n := len([]rune(s))
	if n >= w {
		return s
	}
	return s + strings.Repeat(" ", w-n)
}

func fill(s string, c rune, w int) string {
	n := len([]rune(s))
	if n >= w {
		return s
	}
	return s + strings.Repeat(string(c), w-n)
}
