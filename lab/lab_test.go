package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testExperiments = []Experiment{
	{Name: "test/pass", Summary: "passes", Run: func(env *Env) error { env.Check("ok", true, "fine"); env.Metric("x_count", 3); return nil }},
	{Name: "test/fail", Summary: "fails", Run: func(env *Env) error { env.Check("ok", true, ""); env.Check("bad", false, "measured %d", 7); return nil }},
	{Name: "test/nochecks", Summary: "checks nothing", Run: func(*Env) error { return nil }},
	{Name: "test/panics", Summary: "panics", Run: func(*Env) error { panic("boom") }},
	{Name: "test/env", Summary: "lacks a tool", Run: func(*Env) error {
		return &EnvError{What: "tshark not found", Remedy: "apt-get install tshark", Err: os.ErrNotExist}
	}},
	{Name: "test/cancelled", Summary: "honours the context", Run: func(env *Env) error { <-env.Ctx.Done(); return env.Ctx.Err() }},
	{Name: "other/one", Summary: "another group", Run: func(env *Env) error { env.Check("ok", true, ""); return nil }},
}

var otherSummary = Summary{Group: "other", Shows: "one table", Build: func(rs []*Report, complete bool) ([]Table, []Check) {
	return []Table{{Rows: [][]string{{"n"}, {fmt.Sprint(len(rs))}}}}, []Check{{Name: "complete", Passed: complete}}
}}

// testCat is the catalogue of these tests.
var testCat = MustCatalogue(testExperiments, otherSummary)

func TestSelect(t *testing.T) {
	tests := []struct {
		name    string
		targets []string
		want    []string
		err     error
	}{
		{"one experiment", []string{"test/pass"}, []string{"test/pass"}, nil},
		{"a group in catalogue order", []string{"other"}, []string{"other/one"}, nil},
		{"a group with trailing slash", []string{"other/"}, []string{"other/one"}, nil},
		{"a summary's name runs its group", []string{"other/*"}, []string{"other/one"}, nil},
		{"duplicates run once", []string{"other/one", "other"}, []string{"other/one"}, nil},
		{"all", []string{"all"}, nil, nil},
		{"unknown target", []string{"nosuch"}, nil, ErrUnknownTarget},
		{"unknown among known", []string{"test/pass", "test/nosuch"}, nil, ErrUnknownTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testCat.Select(tt.targets)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.targets[0] == "all" {
				if len(got) != len(testCat.All()) {
					t.Fatalf("all selected %d of %d", len(got), len(testCat.All()))
				}
				return
			}
			var names []string
			for _, e := range got {
				names = append(names, e.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", names, tt.want)
			}
		})
	}
}

func TestSelectSuggestsTheNearestNames(t *testing.T) {
	tests := []struct{ typed, suggested string }{
		{"test/pas", "test/pass"},
		{"TEST/PASS", "test/pass"},
		{"othr", "other"},
		{"tset", "test"},
	}
	for _, tt := range tests {
		t.Run(tt.typed, func(t *testing.T) {
			_, err := testCat.Select([]string{tt.typed})
			if !errors.Is(err, ErrUnknownTarget) || !strings.Contains(err.Error(), "did you mean "+tt.suggested) {
				t.Errorf("Select(%q) = %v, want a suggestion of %s", tt.typed, err, tt.suggested)
			}
		})
	}
	if _, err := testCat.Select([]string{"zzzzzzzz"}); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a name far from all gets %v, want no suggestion", err)
	}
}

func TestCatalogueRejectsMalformedNames(t *testing.T) {
	run := func(*Env) error { return nil }
	tests := []struct {
		name string
		exps []Experiment
	}{
		{"empty", []Experiment{{Name: "", Run: run}}},
		{"no group", []Experiment{{Name: "nogroup", Run: run}}},
		{"empty group", []Experiment{{Name: "/x", Run: run}}},
		{"empty name", []Experiment{{Name: "x/", Run: run}}},
		{"two slashes", []Experiment{{Name: "a/b/c", Run: run}}},
		{"no Run", []Experiment{{Name: "a/b"}}},
		{"twice", []Experiment{{Name: "a/b", Run: run}, {Name: "a/b", Run: run}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewCatalogue(tt.exps); !errors.Is(err, ErrBadName) {
				t.Errorf("NewCatalogue(%v) = %v, want ErrBadName", tt.exps, err)
			}
		})
	}
}

func TestRunOneVerdicts(t *testing.T) {
	tests := []struct {
		name       string
		passed     bool
		envError   bool
		errContain string
	}{
		{"test/pass", true, false, ""},
		{"test/fail", false, false, ""},
		{"test/nochecks", false, false, ""},
		{"test/panics", false, false, "panicked: boom"},
		{"test/env", false, true, "tshark not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := testCat.Lookup(tt.name)
			r := RunOne(context.Background(), e, Options{OutDir: t.TempDir(), Seed: 1})
			if r.Passed != tt.passed || r.EnvError != tt.envError || !strings.Contains(r.Error, tt.errContain) {
				t.Errorf("passed=%v envError=%v error=%q; want %v %v containing %q", r.Passed, r.EnvError, r.Error, tt.passed, tt.envError, tt.errContain)
			}
		})
	}
}

func TestRunOneStopsAtTimeout(t *testing.T) {
	e, _ := testCat.Lookup("test/cancelled")
	r := RunOne(context.Background(), e, Options{OutDir: t.TempDir(), Timeout: 1})
	if r.Passed || !strings.Contains(r.Error, "deadline") {
		t.Errorf("passed=%v error=%q, want a failed run naming the deadline", r.Passed, r.Error)
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	exps, _ := testCat.Select([]string{"test/pass", "other/one"})
	if got := testCat.Run(ctx, exps, Options{OutDir: t.TempDir()}, nil); len(got) != 0 {
		t.Errorf("ran %d experiments after cancellation", len(got))
	}
}

// The JSON Lines contract of `statelab run --json`.
func TestReportJSONHasTheContractFields(t *testing.T) {
	e, _ := testCat.Lookup("test/fail")
	r := RunOne(context.Background(), e, Options{OutDir: t.TempDir(), Seed: 9})
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", buf.String())
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"experiment", "passed", "checks", "captures", "metrics", "duration_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, buf.String())
		}
	}
	checks := m["checks"].([]any)
	c := checks[1].(map[string]any)
	if c["name"] != "bad" || c["passed"] != false || c["detail"] != "measured 7" {
		t.Errorf("check = %v", c)
	}
}

func TestReportTextShowsEveryVerdict(t *testing.T) {
	e, _ := testCat.Lookup("test/fail")
	r := RunOne(context.Background(), e, Options{OutDir: t.TempDir(), Seed: 9})
	var buf bytes.Buffer
	r.WriteText(&buf)
	for _, want := range []string{"=== test/fail", "PASS  ok", "FAIL  bad: measured 7", "--- FAIL test/fail"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestRunAddsGroupSummaryAfterTheGroup(t *testing.T) {
	exps, _ := testCat.Select([]string{"other", "test/pass"})
	got := testCat.Run(context.Background(), exps, Options{OutDir: t.TempDir(), Seed: 1}, nil)
	var names []string
	for _, r := range got {
		names = append(names, r.Experiment)
	}
	if strings.Join(names, ",") != "other/one,other/*,test/pass" {
		t.Fatalf("reports %v, want the summary right after its group", names)
	}
	s := got[1]
	if !s.Summary || !s.Passed || s.Tables[0].Rows[1][0] != "1" {
		t.Errorf("summary = %+v", s)
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		in    string
		width int
		want  []string
	}{
		{"", 10, []string{""}},
		{"short", 10, []string{"short"}},
		{"two words here", 9, []string{"two words", "here"}},
		{"averyveryverylongword x", 6, []string{"averyv", "eryver", "ylongw", "ord x"}},
	}
	for _, tt := range tests {
		if got := wrap(tt.in, tt.width); strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("wrap(%q, %d) = %q, want %q", tt.in, tt.width, got, tt.want)
		}
	}
}

type fakeCapture struct {
	path  string
	drops uint
}

func (f fakeCapture) Path() string { return f.path }
func (f fakeCapture) Drops() uint  { return f.drops }

// A short capture fails "capture complete" and nothing else: the checks
// recorded after it are not judged, the ones before it stand.
func TestShortCaptureFailsOnlyItself(t *testing.T) {
	tests := []struct {
		name       string
		got, want  int
		drops      uint
		passed     bool
		failed     []string
		notJudged  []string
		detailPart string
	}{
		{"complete", 12, 12, 0, true, nil, nil, "12 of 12 exchanges (counted by the server)"},
		{"more than counted", 13, 12, 0, true, nil, nil, "13 of 12"},
		{"short", 9, 12, 0, false, []string{"capture complete"}, []string{"after"}, "9 of 12"},
		{"dropped by the kernel", 12, 12, 320, false, []string{"capture complete"}, []string{"after"}, "dropped 320"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := Experiment{Name: "test/short", Run: func(env *Env) error {
				env.Check("before", true, "from the endpoints")
				if env.CaptureComplete(fakeCapture{"x/short.pcapng", tt.drops}, tt.got, tt.want, "exchanges", "the server") != tt.passed {
					t.Errorf("CaptureComplete returned %v", !tt.passed)
				}
				if env.CaptureShort() == tt.passed {
					t.Errorf("CaptureShort = %v", env.CaptureShort())
				}
				if ok := env.Check("after", true, "from the capture"); ok != tt.passed {
					t.Errorf("a check after the capture returned %v", ok)
				}
				return nil
			}}
			r := RunOne(context.Background(), exp, Options{OutDir: t.TempDir(), Seed: 1})
			if r.Passed != tt.passed {
				t.Errorf("passed = %v, want %v", r.Passed, tt.passed)
			}
			var failed, notJudged []string
			for _, c := range r.Checks {
				switch {
				case c.NotJudged != "":
					notJudged = append(notJudged, c.Name)
				case !c.Passed:
					failed = append(failed, c.Name)
				}
				if c.Name == "capture complete" && !strings.Contains(c.Detail, tt.detailPart) {
					t.Errorf("capture complete detail %q lacks %q", c.Detail, tt.detailPart)
				}
			}
			if fmt.Sprint(failed) != fmt.Sprint(tt.failed) || fmt.Sprint(notJudged) != fmt.Sprint(tt.notJudged) {
				t.Errorf("failed %v, not judged %v; want %v, %v", failed, notJudged, tt.failed, tt.notJudged)
			}
			var b bytes.Buffer
			_ = r.WriteText(&b)
			if !tt.passed && !strings.Contains(b.String(), "----  after: not judged, the capture short.pcapng is incomplete") {
				t.Errorf("report does not show the unjudged check:\n%s", b.String())
			}
		})
	}
}

// A part's stream depends on the seed, the experiment and the part's name
// only: not on what other parts drew before it.
func TestStreamsAreReproducibleAndIndependent(t *testing.T) {
	draw := func(seed uint64, exp string, other int) (uint64, []byte) {
		var v uint64
		var b []byte
		RunOne(context.Background(), Experiment{Name: exp, Run: func(env *Env) error {
			for range other {
				env.Stream("other").Uint64()
				env.Rand.Uint64()
			}
			v = env.Stream("part").Uint64()
			b = make([]byte, 8)
			_, _ = io.ReadFull(env.Bytes("part"), b)
			env.Check("drew", true, "")
			return nil
		}}, Options{OutDir: t.TempDir(), Seed: seed})
		return v, b
	}
	v1, b1 := draw(42, "test/a", 0)
	v2, b2 := draw(42, "test/a", 5)
	if v1 != v2 || !bytes.Equal(b1, b2) {
		t.Errorf("same seed, other draws before: %x %x, then %x %x", v1, b1, v2, b2)
	}
	if v3, _ := draw(43, "test/a", 0); v3 == v1 {
		t.Errorf("seeds 42 and 43 gave the same draw %x", v1)
	}
	if v4, _ := draw(42, "test/b", 0); v4 == v1 {
		t.Errorf("two experiments with one seed gave the same draw %x", v1)
	}
}

func TestNewSeedSurvivesJSON(t *testing.T) {
	for range 1000 {
		s := NewSeed()
		if s == 0 || s > MaxSeed || float64(s) != float64(int64(s)) || uint64(float64(s)) != s {
			t.Fatalf("seed %d does not survive a float64 JSON reader", s)
		}
	}
}

func TestRunFlagsDefaultsAndRanges(t *testing.T) {
	var f RunFlags
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f.Declare(fs)
	if f.Out != DefaultOut || f.Out == "captures" || f.Timeout != 2*time.Minute {
		t.Errorf("defaults: --out %q --timeout %v, want %q and 2m", f.Out, f.Timeout, DefaultOut)
	}
	tests := []struct {
		name, value string
		want        time.Duration // 0: rejected
		msg         string
	}{
		{"a minute", "1m", time.Minute, ""},
		{"the longest", "1h", time.Hour, ""},
		{"negative", "-1s", 0, "positive time"},
		{"zero", "0s", 0, "positive time"},
		{"over an hour", "1h0m1s", 0, "up to 1h"},
		{"not a duration", "soon", 0, "want a duration"},
		{"a bare number", "5", 0, "want a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fs.Set("timeout", tt.value)
			switch {
			case tt.want == 0 && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("--timeout %s: %v, want an error saying %q", tt.value, err, tt.msg)
			case tt.want != 0 && (err != nil || f.Timeout != tt.want):
				t.Errorf("--timeout %s: %v, timeout %v, want %v", tt.value, err, f.Timeout, tt.want)
			}
		})
	}
}

func TestCheckOutDir(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, msg string // msg "": accepted
	}{
		{"an existing directory", dir, ""},
		{"a directory to create", filepath.Join(dir, "a", "b"), ""},
		{"empty", "", "--out is empty"},
		{"a file", file, "not a directory"},
		{"under a file", filepath.Join(file, "x"), "cannot write captures"},
		{"where nothing can be made", "/proc/nope", "name a directory you can write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckOutDir(tt.dir)
			switch {
			case tt.msg == "" && err != nil:
				t.Errorf("CheckOutDir(%q) = %v, want nil", tt.dir, err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("CheckOutDir(%q) = %v, want an error saying %q", tt.dir, err, tt.msg)
			}
			if tt.msg == "" {
				if left, _ := os.ReadDir(tt.dir); len(left) != 0 && tt.dir != dir {
					t.Errorf("probe left behind: %v", left)
				}
			}
		})
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 { // file and a
		t.Errorf("%s holds %d entries after the checks, want 2 (no probe left)", dir, len(left))
	}
}

func TestMainRunUsageErrorsComeBeforeAnythingRuns(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"negative timeout", []string{"run", "--timeout", "-1s", "test/pass"}, "positive time"},
		{"timeout over an hour", []string{"run", "--timeout", "2h", "test/pass"}, "up to 1h"},
		{"unwritable out", []string{"run", "--out", "/proc/nope", "test/pass"}, "cannot write captures"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Main(testCat, tt.args, &out, &errOut)
			if code != ExitUsage || !strings.Contains(errOut.String(), tt.msg) || out.Len() != 0 {
				t.Errorf("Main(%q) = %d\nstdout: %s\nstderr: %s\nwant 2 and %q, nothing run", tt.args, code, out.String(), errOut.String(), tt.msg)
			}
		})
	}
}

func TestVerdictCountsExperimentsNotSummaries(t *testing.T) {
	pass := &Report{Experiment: "test/pass", Passed: true}
	summary := &Report{Experiment: "test/*", Passed: true, Summary: true}
	tests := []struct {
		name    string
		reports []*Report
		want    string
	}{
		{"one experiment and its group's summary", []*Report{pass, summary}, "the experiment passed (seed 7)"},
		{"two experiments", []*Report{pass, pass, summary}, "all 2 experiments passed (seed 7)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if code := verdict(context.Background(), tt.reports, len(tt.reports), 7, &b); code != ExitOK || !strings.Contains(b.String(), tt.want) {
				t.Errorf("verdict = %d, %q; want 0 and %q", code, b.String(), tt.want)
			}
		})
	}
}

// A mistyped flag is a usage error that names the nearest flags, as a
// mistyped command or experiment does.
func TestParseInterleavedSuggestsTheNearestFlag(t *testing.T) {
	tests := []struct {
		name, arg, want string
	}{
		{"a doubled letter", "--seeed", "did you mean --seed?"},
		{"a dropped letter", "-jsn", "did you mean --json?"},
		{"two names as near", "--runds", "did you mean --rounds or --runs?"},
		{"nothing near", "--zzzzzzzz", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Uint64("seed", 0, "")
			fs.Bool("json", false, "")
			fs.Int("rounds", 0, "")
			fs.Int("runs", 0, "")
			_, err := ParseInterleaved(fs, []string{"all", tt.arg + "=1"})
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.Error(); (tt.want == "" && strings.Contains(got, "did you mean")) || !strings.Contains(got, tt.want) ||
				!strings.Contains(got, "flag provided but not defined") {
				t.Errorf("error %q; want it to say %q", got, tt.want)
			}
		})
	}
}
