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

const arrowWidth = 46

// Render draws the ladder:
//
//	client                                                   server
//	                 │                                         │
//	                 │── POST /calculate add 10 5 ────────────►│ last_result=15
//	running=15       │◄─ 200 {"result":15} ────────────────────│
func (l *Ladder) Render(b *strings.Builder) {
	lw := len([]rune(l.Left))
	for _, r := range l.Rows {
		lw = max(lw, len([]rune(r.LeftState)))
	}
	lw = min(lw, 32)
	if l.Title != "" {
		fmt.Fprintf(b, "%s\n", l.Title)
	}
	fmt.Fprintf(b, "  %s %s %s\n", pad(l.Left, lw), strings.Repeat(" ", arrowWidth+2), l.Right)
	for _, r := range l.Rows {
		var mid string
		switch {
		case r.Label == "":
			mid = "│" + strings.Repeat(" ", arrowWidth) + "│"
		case r.ToRight:
			mid = "│" + fill("── "+clip(mark(r)+r.Label, arrowWidth-5)+" ", '─', arrowWidth-1) + "►│"
		default:
			mid = "│◄" + fill("─ "+clip(mark(r)+r.Label, arrowWidth-5)+" ", '─', arrowWidth-1) + "│"
		}
		line := fmt.Sprintf("  %s %s %s", pad(clip(r.LeftState, lw), lw), mid, r.RightState)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	var who []string
	for _, r := range l.Rows {
		if r.Reported != "" && r.Label != "" && !slices.Contains(who, r.Reported) {
			who = append(who, r.Reported)
		}
	}
	if len(who) > 0 {
		fmt.Fprintf(b, "  ◇ not in the capture: reported by %s\n", strings.Join(who, ", "))
	}
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

func clip(s string, w int) string {
	r := []rune(s)
	if len(r) <= w {
		return s
	}
	return string(r[:w-1]) + "…"
}
