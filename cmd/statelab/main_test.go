package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// The tests run inside the lab's namespace, as `statelab run` does.
func TestMain(m *testing.M) { labtest.Main(m, catalogue().Roles()) }

func run(args ...string) (code int, out, errOut string) {
	var o, e bytes.Buffer
	code = Main(args, &o, &e)
	return code, o.String(), e.String()
}

func TestExitStatusAndMessages(t *testing.T) {
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
		{"run a summary name runs its group", []string{"run", "--timeout", "0s", "tcp/*"}, 2, "", "--timeout 0s"},
		{"run a negative timeout", []string{"run", "--timeout", "-1s", "tcp"}, 2, "", "positive time"},
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
