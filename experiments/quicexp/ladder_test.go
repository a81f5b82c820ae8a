package quicexp

import (
	"testing"

	"github.com/statelab/statelab/lab"
)

// Rows are drawn in capture order whatever order they were added in, a
// state row just before the packet it precedes, every message row named
// by its frame number.
func TestRowsDrawInCaptureOrder(t *testing.T) {
	var r rows
	r.reply(4, "PATH_RESPONSE", "", "validated")
	r.send(1, "Initial", "path 1", "")
	r.state(4, "switching", "")
	r.state(-1, "start", "")
	var l lab.Ladder
	r.draw(&l)
	var got []string
	for _, g := range l.Rows {
		got = append(got, g.Label+"|"+g.LeftState)
	}
	want := []string{"|start", "#2 Initial|path 1", "|switching", "#5 PATH_RESPONSE|"}
	if len(got) != len(want) {
		t.Fatalf("rows %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d %q, want %q", i, got[i], want[i])
		}
	}
	if !l.Rows[1].ToRight || l.Rows[3].ToRight {
		t.Errorf("directions: %+v", l.Rows)
	}
}
