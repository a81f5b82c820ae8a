package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/labtest"
)

// The tests run inside the lab's namespace, as `statelab run` does.
func TestMain(m *testing.M) {
	roles := catalogue().Roles()
	roles[quicServeRole] = runQUICServeRole // the tests' own processes
	labtest.Main(m, roles)
}

func run(args ...string) (code int, out, errOut string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestExitStatusAndMessages(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring expected on stdout
		stderr string // substring expected on stderr
	}{
		{"no command is a usage error", nil, 2, "", "Commands:"},
		{"unknown command names itself", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"help lists commands", []string{"help"}, 0, "Commands:", ""},
		{"help for a command shows examples", []string{"help", "run"}, 0, "Examples:", ""},
		{"--help on run", []string{"run", "--help"}, 0, "statelab run all --out", ""},
		{"--help on list", []string{"list", "-h"}, 0, "Usage: statelab list", ""},
		{"--help on diagram", []string{"diagram", "--help"}, 0, "dot -Tsvg", ""},
		{"run without target", []string{"run"}, 2, "", "name an experiment, a group or all"},
		{"run unknown target", []string{"run", "nosuch/thing"}, 2, "", "list` shows them all"},
		{"run a typo gets the nearest name", []string{"run", "tcp/handshak"}, 2, "", "did you mean tcp/handshake?"},
		{"run a summary name runs its group", []string{"run", "--out", "/proc/nope", "tcp/*"}, 2, "", "--out /proc/nope: cannot write captures"},
		{"run a negative timeout", []string{"run", "--timeout", "-1s", "tcp"}, 2, "", "positive time"},
		{"run a zero timeout", []string{"run", "--timeout", "0s", "tcp"}, 2, "", "positive time up to 1h"},
		{"run a timeout over an hour", []string{"run", "--timeout", "61m", "tcp"}, 2, "", "positive time up to 1h"},
		{"run a timeout that is no duration", []string{"run", "--timeout", "soon", "tcp"}, 2, "", "want a duration such as"},
		{"run --out where nothing can be made", []string{"run", "--out", "/proc/nope", "tcp/handshake"}, 2, "", "name a directory you can write"},
		{"run --out a file", []string{"run", "--out", file, "tcp/handshake"}, 2, "", "not a directory"},
		{"run --out under a file", []string{"run", "--out", filepath.Join(file, "sub"), "http"}, 2, "", "cannot write captures"},
		{"run --out empty", []string{"run", "--out", "", "http"}, 2, "", "--out is empty"},
		{"help for an unknown command", []string{"help", "nosuch"}, 2, "", `no command "nosuch"`},
		{"help for a typo gets the nearest name", []string{"help", "htpp"}, 2, "", "did you mean http?"},
		{"help for a group lists it", []string{"help", "bench"}, 0, "bench tcp", ""},
		{"help for a two-word command", []string{"help", "bench", "tcp"}, 0, "Usage: statelab bench tcp", ""},
		{"bench alone lists its commands", []string{"bench"}, 2, "", "bench commands:\n  bench dns"},
		{"dns alone lists its commands", []string{"dns"}, 2, "", "dns serve"},
		{"http alone lists its commands", []string{"http"}, 2, "", "http serve"},
		{"quic alone lists its commands", []string{"quic"}, 2, "", "quic get"},
		{"a group with an unknown command", []string{"bench", "tpc"}, 2, "", `"bench tpc" is not a bench command; did you mean bench tcp?`},
		{"a typo of a group", []string{"htpp"}, 2, "", "did you mean http?"},
		{"a typo of a command", []string{"lsit"}, 2, "", "did you mean list?"},
		{"a typo of a two-word command", []string{"dns", "serv"}, 2, "", "did you mean dns serve?"},
		{"a group name in capitals", []string{"TCP"}, 2, "", "did you mean `statelab run tcp`?"},
		{"an experiment typed as a command", []string{"dns/Loss"}, 2, "", "did you mean `statelab run dns/loss`?"},
		{"an experiment's typo typed as a command", []string{"tcp/handshak"}, 2, "", "did you mean `statelab run tcp/handshake`?"},
		{"nothing near", []string{"zzzzzzzzzz"}, 2, "", "Run `statelab help` for the list."},
		{"run bad flag", []string{"run", "--frob", "all"}, 2, "", "flag provided but not defined: -frob"},
		{"run bad seed", []string{"run", "--seed", "x", "all"}, 2, "", "invalid value"},
		{"run seed a JSON reader would round", []string{"run", "--seed", "9007199254740993", "all"}, 2, "", "seeds go up to 9007199254740991"},
		{"list takes no arguments", []string{"list", "x"}, 2, "", "takes no arguments"},
		{"list", []string{"list"}, 0, "http/calculator  ", ""},
		{"diagram needs a machine", []string{"diagram"}, 2, "", "name the machine"},
		{"diagram tcp prints DOT", []string{"diagram", "tcp"}, 0, "digraph", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// The default --out is not the repository's reference captures.
func TestRunWritesOutsideTheReferenceCapturesByDefault(t *testing.T) {
	if runFlags.Out == "captures" || !strings.Contains(runFlags.Out, "statelab-captures") {
		t.Errorf("run's default --out is %q, want statelab-captures", runFlags.Out)
	}
	var b bytes.Buffer
	commands["run"].usage(&b)
	if !strings.Contains(b.String(), `(default "statelab-captures")`) {
		t.Errorf("run --help does not show the default --out:\n%s", b.String())
	}
}

// An --out the user cannot write is a usage error before anything runs:
// as nobody from / (the test drops to nobody when run as root).
func TestRunOutTheUserCannotWriteIsAUsageError(t *testing.T) {
	exe := os.Args[0]
	var cred *syscall.Credential
	if realRoot() {
		dir, err := os.MkdirTemp("/tmp", "statelab-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		data, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		exe = filepath.Join(dir, "statelab.test")
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperRun$")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Env = append(filterEnv(filterEnv(os.Environ(), "STATELAB_SANDBOX="), "TMPDIR="), "TMPDIR=/tmp",
		"STATELAB_TEST_HELPER_RUN=run tcp/handshake")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "--out statelab-captures: cannot write captures there") ||
		strings.Contains(string(out), "=== tcp/handshake") {
		t.Errorf("run from / as nobody: %v\n%s\nwant exit 2 before anything runs, saying --out cannot be written", err, out)
	}
	if _, err := os.Stat("/statelab-captures"); err == nil {
		t.Errorf("/statelab-captures was created")
	}
}

// realRoot reports whether this process is root outside any user
// namespace (the sandbox maps a user to root in one of its own).
func realRoot() bool {
	m, err := os.ReadFile("/proc/self/uid_map")
	return err == nil && os.Geteuid() == 0 && strings.Join(strings.Fields(string(m)), " ") == "0 0 4294967295"
}

func TestHelpShowsWholeFirstSentences(t *testing.T) {
	_, out, _ := run("help")
	flat := strings.Join(strings.Fields(out), " ")
	for name, c := range commands {
		s := firstSentence(c.summary)
		if !strings.Contains(flat, name+" "+s) {
			t.Errorf("statelab help lacks %s's first sentence %q:\n%s", name, s, out)
		}
		if !strings.HasSuffix(s, ".") {
			t.Errorf("%s: first sentence %q does not end a sentence", name, s)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("help line over 80 columns: %q", line)
		}
	}
}

func TestFirstSentence(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"one sentence", "List the experiments.", "List the experiments."},
		{"two sentences", "Serve it. Then stop.", "Serve it."},
		{"across lines", "Serve it from a zone,\nuntil interrupted. Prints.", "Serve it from a zone, until interrupted."},
		{"a period inside parentheses", "Serve (lab. Or not) here. Next.", "Serve (lab. Or not) here."},
		{"a period before a small letter", "Serve NAME.synth.lab. for any NAME. Next.", "Serve NAME.synth.lab. for any NAME."},
		{"no period", "Serve it", "Serve it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := firstSentence(tt.in); got != tt.want {
				t.Errorf("firstSentence(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{{"", "", 0}, {"http", "http", 0}, {"htpp", "http", 1}, {"lsit", "list", 2}, {"dns", "", 3}, {"bench tpc", "bench tcp", 2}}
	for _, tt := range tests {
		if got := lab.Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestEveryCommandHasHelpWithExamples(t *testing.T) {
	for name, c := range commands {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			c.usage(&b)
			if len(c.examples) == 0 || !strings.Contains(b.String(), "Examples:") {
				t.Errorf("statelab %s --help shows no examples:\n%s", name, b.String())
			}
		})
	}
}

func TestRunJSONLines(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := run("run", "http/calculator", "--json", "--out", dir, "--seed", "7")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one JSON object per experiment:\n%s", len(lines), out)
	}
	var r struct {
		Experiment string             `json:"experiment"`
		Passed     bool               `json:"passed"`
		Checks     []map[string]any   `json:"checks"`
		Captures   []string           `json:"captures"`
		Metrics    map[string]float64 `json:"metrics"`
		DurationMS float64            `json:"duration_ms"`
		Seed       uint64             `json:"seed"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "http", "calculator.pcapng")
	if r.Experiment != "http/calculator" || !r.Passed || len(r.Checks) == 0 || len(r.Captures) != 1 || r.Captures[0] != want ||
		r.Metrics["stateless.numbers_sent"] != 6 || r.DurationMS <= 0 || r.Seed != 7 {
		t.Errorf("report = %+v", r)
	}
}

func TestRunHumanReport(t *testing.T) {
	code, out, errOut := run("run", "http", "--out", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"=== http/calculator", "│◄─ 200 result=27", "Measured:", "PASS  stateless reaches 27", "--- PASS http/calculator"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "passed") {
		t.Errorf("no summary on stderr: %q", errOut)
	}
}

// Every summary name a run prints is a target: `run 'tcp/*'` runs the tcp
// group, `run 'who-holds-the-state/*'` the experiments that hold its rows
// (at least two, or the summary would never be printed).
func TestSummaryNamesAreRunnable(t *testing.T) {
	for _, tt := range []struct {
		target string
		least  int
	}{{"tcp/*", 2}, {lab.HoldingGroup + "/*", 2}, {lab.HoldingGroup, 2}} {
		got, err := catalogue().Select([]string{tt.target})
		if err != nil || len(got) < tt.least {
			t.Errorf("run %q selects %d experiments (%v), want at least %d", tt.target, len(got), err, tt.least)
		}
	}
}
