package lab

import (
	"strings"
	"unicode/utf8"
)

// runes is the display width of s: one column per rune (the reports use
// box drawing and arrows, no wide characters).
func runes(s string) int { return utf8.RuneCountInString(s) }

// wrap breaks s into lines of at most width runes at spaces. A word longer
// than width is broken, after a separator (/ , ; : = | ) -) where one
// falls in the line, else at width; nothing is dropped.
func wrap(s string, width int) []string { return wrapHang(s, width, width) }

// wrapHang is wrap with a first line of at most first runes and the
// following ones of at most rest (a hanging indent leaves them less).
func wrapHang(s string, first, rest int) []string {
	first, rest = max(first, 1), max(rest, 1)
	var lines []string
	limit := func() int {
		if len(lines) == 0 {
			return first
		}
		return rest
	}
	cur := ""
	for _, w := range strings.Fields(s) {
		for runes(w) > limit() {
			if cur != "" {
				// Fill the current line first when the word can break there.
				if room := limit() - runes(cur) - 1; room >= 4 {
					if head, tail, ok := breakWord(w, room, true); ok {
						lines, cur, w = append(lines, cur+" "+head), "", tail
						continue
					}
				}
				lines, cur = append(lines, cur), ""
				continue
			}
			head, tail, _ := breakWord(w, limit(), false)
			lines, w = append(lines, head), tail
		}
		switch {
		case cur == "":
			cur = w
		case runes(cur)+1+runes(w) <= limit():
			cur += " " + w
		default:
			lines, cur = append(lines, cur), w
		}
	}
	if cur != "" || len(lines) == 0 {
		lines = append(lines, cur)
	}
	return lines
}

// hanging writes prefix+s wrapped to width, the lines after the first
// indented by indent spaces.
func hanging(b *strings.Builder, prefix, s string, width, indent int) {
	lines := wrapHang(s, width-runes(prefix), width-indent)
	for i, l := range lines {
		if i == 0 {
			b.WriteString(strings.TrimRight(prefix+l, " ") + "\n")
			continue
		}
		b.WriteString(strings.Repeat(" ", indent) + l + "\n")
	}
}

// breakWord splits w (longer than width) into a head of at most width
// runes and the rest: after the last separator in the head when there is
// one, else (unless onlyAtSeparator) at width.
func breakWord(w string, width int, onlyAtSeparator bool) (head, tail string, ok bool) {
	r := []rune(w)
	lowest := 1
	if !onlyAtSeparator {
		lowest = width / 2 // a head of a few runes reads worse than a cut
	}
	for i := min(width, len(r)-1) - 1; i >= lowest; i-- {
		if strings.ContainsRune("/,;:=|)-", r[i]) && !isFlagBar(r, i) {
			return string(r[:i+1]), string(r[i+1:]), true
		}
	}
	if onlyAtSeparator {
		return "", w, false
	}
	return string(r[:width]), string(r[width:]), true
}

// isFlagBar reports whether r[i] is the bar inside a TCP flag set such as
// PSH|ACK, which is read as one word and never split.
func isFlagBar(r []rune, i int) bool {
	return r[i] == '|' && i > 0 && i+1 < len(r) && isUpper(r[i-1]) && isUpper(r[i+1])
}

func isUpper(c rune) bool { return c >= 'A' && c <= 'Z' }
