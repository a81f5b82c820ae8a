package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestHTTPCommandsRefuseBadUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"serve --help shows examples", []string{"http", "serve", "--help"}, 0, "Examples:", ""},
		{"serve unknown mode", []string{"http", "serve", "--mode", "sometimes"}, 2, "", `want stateless, stateful or store`},
		{"serve store URL for a stateless server", []string{"http", "serve", "--mode", "stateless", "--store", "redis://127.0.0.1:1"}, 2, "", "--store is for --mode store"},
		{"serve bad store URL", []string{"http", "serve", "--mode", "store", "--store", "ftp://x"}, 2, "", "--store"},
		{"serve stray argument", []string{"http", "serve", "now"}, 2, "", "takes no arguments"},
		{"serve address already taken or invalid", []string{"http", "serve", "--addr", "127.0.0.1:99999"}, 2, "", "statelab http serve:"},
		{"bench --help", []string{"bench", "http", "--help"}, 0, "Examples:", ""},
		{"bench zero duration", []string{"bench", "http", "--duration", "0s"}, 2, "", "--duration"},
		{"bench too many clients", []string{"bench", "http", "--concurrency", "5000"}, 2, "", "--concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout ∋ %q, stderr ∋ %q", tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// bench http measures every kind in one run and reports the ratio to
// stateless, as JSON for programs.
func TestBenchHTTPJSON(t *testing.T) {
	code, out, errOut := run("bench", "http", "--duration", "150ms", "--concurrency", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, kind := range []string{"stateless", "stateful", "store-sqlite"} {
		if !strings.Contains(out, kind) {
			t.Errorf("no %s figures in %s", kind, out)
		}
	}
}

// bench http reports workflows per second beside requests per second, the
// store-backed cost per request, and whether the Redis target was met.
func TestBenchHTTPReportsWorkflowsAndStoreCost(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"json", []string{"--json"}, []string{`"workflows_per_second"`, `"requests_per_workflow"`, `"store_reads_per_request"`, `"target_met"`, `"ratio_basis":"workflows per second"`}},
		{"text", nil, []string{"flows/s", "req/flow", "store-sqlite costs, per request:", "store reads", "store writes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(append([]string{"bench", "http", "--duration", "150ms", "--concurrency", "2"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
		})
	}
}
