package tcpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
)

func TestCollapseKeepsTheEndsAndTheMarkedRows(t *testing.T) {
	rows := func(labels string) []lab.Rung {
		var out []lab.Rung
		for _, l := range strings.Fields(labels) {
			r := lab.Rung{Label: l}
			if strings.HasPrefix(l, "R") {
				r.Reported = "engine records"
			}
			out = append(out, r)
		}
		return out
	}
	show := func(rs []lab.Rung) string {
		var s []string
		for _, r := range rs {
			if r.Label == "" {
				s = append(s, r.LeftState)
			} else {
				s = append(s, r.Label)
			}
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		name       string
		labels     string
		kept       []int
		head, tail int
		want       string
	}{
		{"all rows when not asked to collapse", "a b c d e", nil, 0, 0, "a b c d e"},
		{"short enough: all rows", "a b c d", nil, 2, 1, "a b c d"},
		{"the middle folds", "a b c d e f g", nil, 2, 2, "a b … 3 segments … f g"},
		{"a kept row and a reported one stay", "a b c R d e f g h", []int{5}, 1, 1, "a … 2 segments … R … 1 segments … e … 2 segments … h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := rows(tt.labels)
			kept := make([]bool, len(rs))
			for _, i := range tt.kept {
				kept[i] = true
			}
			if got := show(collapse(rs, kept, tt.head, tt.tail)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
