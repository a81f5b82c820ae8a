package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// Check is one verdict of an experiment.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail"`
	// NotJudged, when set, says why the check was not judged (a capture
	// found incomplete before it): it neither passed nor failed.
	NotJudged string `json:"not_judged,omitempty"`
}

// Report is what one experiment run produced. Its JSON form is one line of
// `statelab run --json`.
type Report struct {
	Experiment string             `json:"experiment"`
	Shows      string             `json:"shows"`
	Passed     bool               `json:"passed"`
	Checks     []Check            `json:"checks"`
	Captures   []string           `json:"captures"`
	Metrics    map[string]float64 `json:"metrics"`
	DurationMS float64            `json:"duration_ms"`
	Seed       uint64             `json:"seed"`
	// Error is set when the experiment could not be carried out.
	Error string `json:"error,omitempty"`
	// EnvError marks an error as the machine's, not the experiment's.
	EnvError bool `json:"env_error,omitempty"`
	// Interrupted names the signal (SIGINT, SIGTERM, SIGHUP) that cut
	// the run short: its checks are those made before it, and it is not
	// counted as a failure of what it shows.
	Interrupted string    `json:"interrupted,omitempty"`
	Ladders     []*Ladder `json:"ladders,omitempty"`
	// Tables are extra evidence tables (rows of cells, first row a header).
	Tables []Table `json:"tables,omitempty"`
	// Notes are free lines the experiment wants the reader to see.
	Notes []string `json:"notes,omitempty"`
	// Summary marks a group's summary report (Experiment "<group>/*"),
	// drawn from the group's experiments rather than run itself.
	Summary bool `json:"summary,omitempty"`
	// Holding is the experiment's row of "who holds the state", if any.
	Holding *Holding `json:"holding,omitempty"`
	// Plots are the data of the report's pictures (drawn by --html).
	Plots []*Plot `json:"plots,omitempty"`
}

// Table is a titled grid of cells; the first row is the header.
type Table struct {
	Title string     `json:"title"`
	Rows  [][]string `json:"rows"`
}

// Failed returns the checks that failed (not those left unjudged).
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.Passed && c.NotJudged == "" {
			out = append(out, c)
		}
	}
	return out
}

// WriteJSON writes the report as one JSON line.
func (r *Report) WriteJSON(w io.Writer) error {
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	if r.Captures == nil {
		r.Captures = []string{}
	}
	if r.Metrics == nil {
		r.Metrics = map[string]float64{}
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// TextOptions are how a text report is drawn.
type TextOptions struct {
	// Width is the number of columns the report fits: ladders, tables,
	// checks and notes wrap to it (0: DefaultWidth). Lines wider than it
	// are only those holding a word wider than it, such as a long path.
	Width int
}

// WriteText writes the human report for DefaultWidth columns (see
// WriteTextOptions).
func (r *Report) WriteText(w io.Writer) error {
	return r.WriteTextOptions(w, TextOptions{})
}

// WriteTextOptions writes the human report: what the run shows, its ladder
// diagrams, tables, figures, every check as PASS or FAIL, and a line for
// each term of the Glossary the report uses.
func (r *Report) WriteTextOptions(w io.Writer, o TextOptions) error {
	width := o.Width
	if width <= 0 {
		width = DefaultWidth
	}
	width = max(width, MinWidth)
	var b strings.Builder
	hanging(&b, "=== ", r.Experiment, width, 4)
	if r.Shows != "" {
		hanging(&b, "", r.Shows, width, 0)
	}
	for _, l := range r.Ladders {
		b.WriteString("\n")
		l.RenderWidth(&b, width)
	}
	for _, t := range r.Tables {
		b.WriteString("\n")
		renderTable(&b, t, width)
	}
	if len(r.Metrics) > 0 {
		b.WriteString("\nMeasured:\n")
		names := make([]string, 0, len(r.Metrics))
		nw := 0
		for n := range r.Metrics {
			names = append(names, n)
			nw = max(nw, runes(n))
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "  %-*s  %s\n", nw, n, formatNumber(r.Metrics[n]))
		}
	}
	for _, n := range r.Notes {
		b.WriteString("\n")
		hanging(&b, "Note: ", n, width, 6)
	}
	if len(r.Checks) == 0 && r.Summary {
		b.WriteString("\n")
		hanging(&b, "", "Checks: none (a summary of this run's reports; it informs, it judges nothing)", width, 2)
	} else {
		b.WriteString("\nChecks:\n")
	}
	for _, c := range r.Checks {
		verdict := "PASS"
		switch {
		case c.NotJudged != "":
			verdict = "----"
		case !c.Passed:
			verdict = "FAIL"
		}
		text := c.Name
		switch {
		case c.NotJudged != "":
			text += ": not judged, " + c.NotJudged
		case c.Detail != "":
			text += ": " + c.Detail
		}
		hanging(&b, "  "+verdict+"  ", text, width, 8)
	}
	switch {
	case r.Interrupted != "" && len(r.Checks) == 0:
		hanging(&b, "  STOP  ", "interrupted by "+r.Interrupted+" before any check", width, 8)
	case r.Interrupted != "":
		hanging(&b, "  STOP  ", "interrupted by "+r.Interrupted+"; the checks above are those made before it", width, 8)
	case len(r.Checks) == 0 && !r.Summary:
		b.WriteString("  FAIL  no check ran\n")
	}
	if r.Error != "" && r.Interrupted == "" {
		hanging(&b, "  ERROR ", r.Error, width, 8)
	}
	for _, c := range r.Captures {
		hanging(&b, "Capture: ", c, width, 9)
	}
	if terms := glossaryFor(b.String()); len(terms) > 0 {
		b.WriteString("\nTerms:\n")
		for _, t := range terms {
			hanging(&b, "  ", t.Term+": "+t.Explain, width, 4)
		}
	}
	verdict := "PASS"
	switch {
	case r.Interrupted != "":
		verdict = "STOP"
	case !r.Passed:
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "--- %s %s (%.0f ms)\n\n", verdict, r.Experiment, r.DurationMS)
	_, err := io.WriteString(w, b.String())
	return err
}

func formatNumber(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.4g", v)
}

// maxCell is the widest a table column gets in the text report when the
// table fits the width anyway; longer cells wrap at spaces.
const maxCell = 42

// minCell is the narrowest a column is made to fit the width while its
// longest word is wider: flags, addresses and states stay whole down to it.
const minCell = 8

// tableWidths chooses the columns' widths: each its widest cell (up to
// maxCell), then, while the table is wider than width, the widest column
// narrowed by one — first down to its longest word, then down to minCell.
func tableWidths(rows [][]string, cols, width int) []int {
	natural := make([]int, cols)
	word := make([]int, cols)
	for _, row := range rows {
		for i, c := range row {
			natural[i] = max(natural[i], min(runes(c), maxCell))
			for _, w := range strings.Fields(c) {
				word[i] = max(word[i], min(runes(w), maxCell))
			}
		}
	}
	widths := slices.Clone(natural)
	avail := width - 3 - 3*cols // "  │" then " cell │" per column
	total := func() int {
		n := 0
		for _, w := range widths {
			n += w
		}
		return n
	}
	for _, floor := range []func(int) int{
		func(i int) int { return max(word[i], 1) },
		func(i int) int { return min(natural[i], minCell) },
	} {
		for total() > avail {
			widest := -1
			for i, w := range widths {
				if w > floor(i) && (widest < 0 || w > widths[widest]) {
					widest = i
				}
			}
			if widest < 0 {
				break
			}
			widths[widest]--
		}
	}
	return widths
}

func renderTable(b *strings.Builder, t Table, width int) {
	if t.Title != "" {
		for _, l := range wrap(t.Title, width) {
			fmt.Fprintf(b, "%s\n", l)
		}
	}
	if len(t.Rows) == 0 {
		return
	}
	cols := 0
	for _, row := range t.Rows {
		cols = max(cols, len(row))
	}
	widths := tableWidths(t.Rows, cols, width)
	// Each cell becomes lines no wider than its column.
	cells := make([][][]string, len(t.Rows))
	for ri, row := range t.Rows {
		cells[ri] = make([][]string, cols)
		for i := range cols {
			c := ""
			if i < len(row) {
				c = row[i]
			}
			cells[ri][i] = wrap(c, widths[i])
		}
	}
	line := func(l, m, r string) {
		b.WriteString("  " + l)
		for i, w := range widths {
			b.WriteString(strings.Repeat("─", w+2))
			if i < len(widths)-1 {
				b.WriteString(m)
			}
		}
		b.WriteString(r + "\n")
	}
	line("┌", "┬", "┐")
	for ri, row := range cells {
		height := 1
		for _, c := range row {
			height = max(height, len(c))
		}
		for h := range height {
			b.WriteString("  │")
			for i, w := range widths {
				l := ""
				if h < len(row[i]) {
					l = row[i][h]
				}
				fmt.Fprintf(b, " %s%s │", l, strings.Repeat(" ", max(w-runes(l), 0)))
			}
			b.WriteString("\n")
		}
		if ri == 0 {
			line("├", "┼", "┤")
		} else if ri < len(cells)-1 && height > 1 {
			line("├", "┼", "┤") // separate wrapped rows so they read as one
		}
	}
	line("└", "┴", "┘")
}
