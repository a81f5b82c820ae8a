package lab

import (
	"encoding/json"
	"fmt"
	"io"
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
	EnvError bool      `json:"env_error,omitempty"`
	Ladders  []*Ladder `json:"ladders,omitempty"`
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

// WriteText writes the human report: what the run shows, its ladder
// diagrams, tables, figures, and every check as PASS or FAIL.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "=== %s\n", r.Experiment)
	if r.Shows != "" {
		fmt.Fprintf(&b, "%s\n", r.Shows)
	}
	for _, l := range r.Ladders {
		b.WriteString("\n")
		l.Render(&b)
	}
	for _, t := range r.Tables {
		b.WriteString("\n")
		renderTable(&b, t)
	}
	if len(r.Metrics) > 0 {
		b.WriteString("\nMeasured:\n")
		names := make([]string, 0, len(r.Metrics))
		width := 0
		for n := range r.Metrics {
			names = append(names, n)
			width = max(width, len(n))
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, n, formatNumber(r.Metrics[n]))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	if len(r.Checks) == 0 && r.Summary {
		b.WriteString("\nChecks: none (a summary of this run's reports; it informs, it judges nothing)\n")
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
		fmt.Fprintf(&b, "  %s  %s", verdict, c.Name)
		switch {
		case c.NotJudged != "":
			fmt.Fprintf(&b, ": not judged, %s", c.NotJudged)
		case c.Detail != "":
			fmt.Fprintf(&b, ": %s", c.Detail)
		}
		b.WriteString("\n")
	}
	if len(r.Checks) == 0 && !r.Summary {
		b.WriteString("  FAIL  no check ran\n")
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "  ERROR %s\n", r.Error)
	}
	for _, c := range r.Captures {
		fmt.Fprintf(&b, "Capture: %s\n", c)
	}
	verdict := "PASS"
	if !r.Passed {
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

// maxCell is the widest a table column gets in the text report; longer
// cells wrap at spaces.
const maxCell = 42

func renderTable(b *strings.Builder, t Table) {
	if t.Title != "" {
		fmt.Fprintf(b, "%s\n", t.Title)
	}
	if len(t.Rows) == 0 {
		return
	}
	cols := 0
	for _, row := range t.Rows {
		cols = max(cols, len(row))
	}
	// Each cell becomes lines no wider than maxCell.
	cells := make([][][]string, len(t.Rows))
	widths := make([]int, cols)
	for ri, row := range t.Rows {
		cells[ri] = make([][]string, cols)
		for i := range cols {
			c := ""
			if i < len(row) {
				c = row[i]
			}
			cells[ri][i] = wrap(c, maxCell)
			for _, l := range cells[ri][i] {
				widths[i] = max(widths[i], len([]rune(l)))
			}
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
				fmt.Fprintf(b, " %s%s │", l, strings.Repeat(" ", w-len([]rune(l))))
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

// wrap breaks s into lines of at most width runes at spaces; a word longer
// than width is cut.
func wrap(s string, width int) []string {
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		for len([]rune(w)) > width {
			if cur != "" {
				lines, cur = append(lines, cur), ""
			}
			r := []rune(w)
			lines, w = append(lines, string(r[:width])), string(r[width:])
		}
		switch {
		case cur == "":
			cur = w
		case len([]rune(cur))+1+len([]rune(w)) <= width:
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
