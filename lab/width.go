package lab

import (
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultWidth is the width of a text report when neither COLUMNS nor a
// terminal says otherwise.
const DefaultWidth = 80

// MinWidth is the narrowest a text report is drawn: below it ladders and
// tables could not keep a flag or a state on one line.
const MinWidth = 40

// TermWidth is the width text reports written to w are drawn for:
// COLUMNS when it is set to a number (the user's explicit choice), else
// the terminal's width when w is a terminal, else DefaultWidth. It is
// never below MinWidth.
func TermWidth(w io.Writer, getenv func(string) string) int {
	if n, err := strconv.Atoi(strings.TrimSpace(getenv("COLUMNS"))); err == nil && n > 0 {
		return max(n, MinWidth)
	}
	if f, ok := w.(*os.File); ok {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 0 {
			return max(int(ws.Col), MinWidth)
		}
	}
	return DefaultWidth
}
