package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTermWidthPrefersCOLUMNSThenTerminalThen80(t *testing.T) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	tests := []struct {
		name    string
		w       any
		columns string
		want    int
	}{
		{"COLUMNS set", &bytes.Buffer{}, "100", 100},
		{"COLUMNS with spaces", &bytes.Buffer{}, " 120 ", 120},
		{"COLUMNS too narrow is raised to MinWidth", &bytes.Buffer{}, "10", MinWidth},
		{"COLUMNS not a number", &bytes.Buffer{}, "wide", DefaultWidth},
		{"COLUMNS zero", &bytes.Buffer{}, "0", DefaultWidth},
		{"nothing set, not a file", &bytes.Buffer{}, "", DefaultWidth},
		{"a file that is no terminal", devnull, "", DefaultWidth},
		{"COLUMNS wins over a file", devnull, "132", 132},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "COLUMNS" {
					return tt.columns
				}
				return ""
			}
			var got int
			switch w := tt.w.(type) {
			case *bytes.Buffer:
				got = TermWidth(w, getenv)
			case *os.File:
				got = TermWidth(w, getenv)
			}
			if got != tt.want {
				t.Errorf("TermWidth = %d, want %d", got, tt.want)
			}
		})
	}
}

// widest is the display width (runes) of text's widest line.
func widest(text string) (int, string) {
	n, line := 0, ""
	for l := range strings.SplitSeq(text, "\n") {
		if c := utf8.RuneCountInString(l); c > n {
			n, line = c, l
		}
	}
	return n, line
}

func TestWrapKeepsFlagsAndWordsWhole(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		width int
		want  []string
	}{
		{"a flag set is one word", "✗ PSH|ACK seq=1 ack=1 len=20", 10, []string{"✗ PSH|ACK", "seq=1", "ack=1", "len=20"}},
		{"a long word breaks after a separator", "path=/work/captures/tcp/simultaneous.pcapng", 24, []string{"path=/work/captures/tcp/", "simultaneous.pcapng"}},
		{"a long word fills the line at a separator", "AddPath 127.0.0.2:57120: early Switch refused", 20, []string{"AddPath", "127.0.0.2:57120:", "early Switch refused"}},
		{"a long word fills the line at a separator", "AddPath 127.0.0.2:57120:early", 20, []string{"AddPath 127.0.0.2:", "57120:early"}},
		{"a separator too early is not used", "a|bcdefghijklmnop", 8, []string{"a|bcdefg", "hijklmno", "p"}},
		{"forged and error stay whole", "the forged reply an error", 7, []string{"the", "forged", "reply", "an", "error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wrap(tt.in, tt.width)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
			}
			if strings.Join(strings.Fields(strings.Join(got, "")), "") != strings.Join(strings.Fields(tt.in), "") {
				t.Errorf("wrap lost text: %q from %q", got, tt.in)
			}
		})
	}
}

func TestTableFitsWidthByWrappingCells(t *testing.T) {
	long := "a cell long enough to need several lines when five of them share eighty columns"
	tests := []struct {
		name  string
		rows  [][]string
		width int
		keep  []string
	}{
		{"five long columns", [][]string{{"first", "second", "third", "fourth", "fifth"}, {long, long, long, long, long}}, 80, []string{"several", "eighty"}},
		{"flags and verdicts", [][]string{{"segment", "flags", "verdict"}, {"the kernel's reply to the lab's forged segment " + long, "PSH|ACK", "forged: an error the lab expects"}}, 60, []string{"PSH|ACK", "forged:", "error"}},
		{"a narrow table keeps its natural widths", [][]string{{"n", "state"}, {"1", "ESTABLISHED"}}, 80, []string{"│ 1 │ ESTABLISHED │"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			renderTable(&b, Table{Title: "evidence", Rows: tt.rows}, tt.width)
			if n, l := widest(b.String()); n > tt.width {
				t.Errorf("a line is %d wide, more than %d: %q\n%s", n, tt.width, l, b.String())
			}
			if strings.Contains(b.String(), "…") {
				t.Errorf("a cell was cut:\n%s", b.String())
			}
			for _, k := range tt.keep {
				if !strings.Contains(b.String(), k) {
					t.Errorf("table lacks %q whole:\n%s", k, b.String())
				}
			}
		})
	}
}

func TestLadderWrapsLongLabelsUnderTheArrow(t *testing.T) {
	tests := []struct {
		name  string
		width int
		rung  Rung
		keep  []string
	}{
		{"a long label continues between the rails", 80,
			Rung{Label: "✗ PSH|ACK seq=1 ack=1 len=20 the forged segment carries a QCLASS of CHAOS instead of IN", ToRight: true, LeftState: "ESTABLISHED", RightState: "ESTABLISHED"},
			[]string{"PSH|ACK", "forged", "CHAOS", "IN"}},
		{"long states wrap on their rung's lines", 80,
			Rung{Label: "RST", LeftState: "CLOSED (lab forgot its TCB (crash and restart))", RightState: "ESTABLISHED, then ECONNRESET: an error the socket reports"},
			[]string{"restart))", "ECONNRESET:", "error"}},
		{"narrow terminal", 50,
			Rung{Label: "AddPath 127.0.0.2:57120: early Switch refused with an error", ToRight: true, LeftState: "Switch: ok", RightState: "validated: 127.0.0.2:35934"},
			[]string{"refused", "error", "127.0.0.2:57120:", "127.0.0.2:35934"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Ladder{Title: "as captured", Left: "lab (client)", Right: "kernel (server)", Rows: []Rung{tt.rung}}
			var b strings.Builder
			l.RenderWidth(&b, tt.width)
			out := b.String()
			if n, line := widest(out); n > tt.width {
				t.Errorf("a line is %d wide, more than %d: %q\n%s", n, tt.width, line, out)
			}
			if strings.Contains(out, "…") {
				t.Errorf("the ladder cut something:\n%s", out)
			}
			for _, k := range tt.keep {
				if !strings.Contains(out, k) {
					t.Errorf("ladder lacks %q whole:\n%s", k, out)
				}
			}
			// Every line of the rung keeps both rails in the same columns.
			var lines []string
			for l := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
				if strings.Contains(l, "│") {
					lines = append(lines, l)
				}
			}
			if len(lines) < 2 {
				t.Fatalf("the rung did not wrap:\n%s", out)
			}
			rail := func(line string) int {
				i := strings.IndexRune(line, '│')
				if i < 0 {
					return -1
				}
				return utf8.RuneCountInString(line[:i])
			}
			for _, line := range lines {
				if rail(line) != rail(lines[0]) || rail(line) < 0 {
					t.Errorf("rail moved on %q\n%s", line, out)
				}
			}
		})
	}
}

func TestReportTextFitsWidthWithHangingChecks(t *testing.T) {
	detail := "the kernel's next segment draws a RST from the CLOSED port (SEQ = the kernel's ACK): its socket reports ECONNRESET and is gone: an error the forged segment caused"
	r := &Report{Experiment: "tcp/reset", Shows: strings.Repeat("what the run shows, at length; ", 6),
		Checks: []Check{{Name: "after the lab forgets", Passed: true, Detail: detail}},
		Notes:  []string{strings.Repeat("a note that goes on ", 8)}}
	for _, width := range []int{80, 60, 100} {
		var b bytes.Buffer
		if err := r.WriteTextOptions(&b, TextOptions{Width: width}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if n, l := widest(out); n > width {
			t.Errorf("width %d: a line is %d wide: %q", width, n, l)
		}
		if !strings.Contains(out, "\n  PASS  after the lab forgets: ") {
			t.Errorf("width %d: the check does not start its line:\n%s", width, out)
		}
		for l := range strings.SplitSeq(out, "\n") {
			if strings.Contains(l, "ECONNRESET") && !strings.HasPrefix(l, "        ") && !strings.HasPrefix(l, "  PASS") {
				t.Errorf("width %d: a continued check line is not indented: %q", width, l)
			}
		}
		if got := strings.Join(strings.Fields(out), " "); !strings.Contains(got, detail) {
			t.Errorf("width %d: the detail lost words:\n%s", width, out)
		}
	}
}

func TestGlossaryExplainsATermOncePerReport(t *testing.T) {
	tests := []struct {
		name   string
		detail string
		want   map[string]int // term line → times
	}{
		{"TCB used twice", "the lab forgot its TCB; a new TCB", map[string]int{"  TCB: ": 1, "  scaled window: ": 0}},
		{"a window field", "ACK win=64 and win=32768", map[string]int{"  TCB: ": 0, "  scaled window: ": 1}},
		{"both", "TCB kept; wscale 7", map[string]int{"  TCB: ": 1, "  scaled window: ": 1}},
		{"neither", "TCBS is not the word; window=64 neither", map[string]int{"  TCB: ": 0, "  scaled window: ": 0, "Terms:": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Report{Experiment: "tcp/x", Passed: true, Checks: []Check{{Name: "a", Passed: true, Detail: tt.detail}, {Name: "b", Passed: true, Detail: tt.detail}}}
			var b bytes.Buffer
			_ = r.WriteText(&b)
			for k, n := range tt.want {
				if got := strings.Count(b.String(), k); got != n {
					t.Errorf("%q appears %d times, want %d:\n%s", k, got, n, b.String())
				}
			}
		})
	}
}

func TestShortenedIsNotedOncePerReport(t *testing.T) {
	exp := Experiment{Name: "test/short-timers", Run: func(env *Env) error {
		env.Shortened("2×MSL", 200*time.Millisecond, 4*time.Minute, "RFC 9293 §3.4.2")
		env.Shortened("2×MSL", 200*time.Millisecond, 4*time.Minute, "RFC 9293 §3.4.2")
		env.Shortened("MinRTO", 50*time.Millisecond, time.Second, "RFC 6298 §2.4")
		env.Check("ok", true, "")
		return nil
	}}
	r := RunOne(context.Background(), exp, Options{OutDir: t.TempDir(), Seed: 1})
	want := []string{
		"2×MSL is 200ms here (shortened for the lab; RFC 9293 §3.4.2: 4m)",
		"MinRTO is 50ms here (shortened for the lab; RFC 6298 §2.4: 1s)",
	}
	if strings.Join(r.Notes, "\n") != strings.Join(want, "\n") {
		t.Errorf("notes %q, want %q", r.Notes, want)
	}
}

func TestReportWordsHaveNoGoInternals(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"no error", ErrText(nil), "none"},
		{"an error", ErrText(errors.New("refused")), "refused"},
		{"ok", OK(nil), "ok"},
		{"not ok", OK(errors.New("path not validated")), "path not validated"},
		{"counts", KV(map[int]int{404: 1, 200: 40}), "200: 40, 404: 1"},
		{"lists", KV(map[string][]int{"b2": {1}, "b1": {0, 3}}), "b1: 0,3, b2: 1"},
		{"empty", KV(map[string]int{}), "none"},
		{"no items", List([]string(nil)), "none"},
		{"items", List([]string{"LISTEN", "CLOSING"}), "LISTEN, CLOSING"},
		{"ms", FormatDuration(200 * time.Millisecond), "200ms"},
		{"minutes", FormatDuration(4 * time.Minute), "4m"},
		{"seconds", FormatDuration(1500 * time.Millisecond), "1.5s"},
		{"mixed", FormatDuration(150 * time.Second), "2m30s"},
		{"hours and minutes", FormatDuration(90 * time.Minute), "1h30m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}
