package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchTCPUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"--help", []string{"bench", "tcp", "--help"}, 0, "Usage: statelab bench tcp", ""},
		{"help shows the examples", []string{"bench", "tcp", "-h"}, 0, "statelab bench tcp --size 4GiB --rounds 9 --json", ""},
		{"unknown flag", []string{"bench", "tcp", "--frob"}, 2, "", "flag provided but not defined: -frob"},
		{"size not a number", []string{"bench", "tcp", "--size", "lots"}, 2, "", "want a size such as"},
		{"size zero", []string{"bench", "tcp", "--size", "0"}, 2, "", "want a size from 64KiB to 4GiB"},
		{"size below the range", []string{"bench", "tcp", "--size", "1KiB"}, 2, "", "want a size from 64KiB to 4GiB"},
		{"size above the range", []string{"bench", "tcp", "--size", "5GiB"}, 2, "", "want a size from 64KiB to 4GiB"},
		{"size negative", []string{"bench", "tcp", "--size", "-4MiB"}, 2, "", "want a size such as"},
		{"size NaN", []string{"bench", "tcp", "--size", "NaN"}, 2, "", "want a size such as"},
		{"unknown unit", []string{"bench", "tcp", "--size", "4furlongs"}, 2, "", "want a size such as"},
		{"help shows the range", []string{"bench", "tcp", "--help"}, 0, "(64KiB to 4GiB)", ""},
		{"positional argument", []string{"bench", "tcp", "now"}, 2, "", "takes no arguments"},
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

func TestBenchTCPJSON(t *testing.T) {
	code, out, errOut := run("bench", "tcp", "--size", "4MiB", "--rounds", "3", "--json")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var r struct {
		Bytes  int64 `json:"bytes"`
		Rounds [][]struct {
			Name  string  `json:"name"`
			Bytes int64   `json:"bytes"`
			Gbps  float64 `json:"gbit_per_s"`
		} `json:"round_results"`
		Comparisons []struct {
			Name           string            `json:"name"`
			Baseline       string            `json:"baseline"`
			Rounds         []json.RawMessage `json:"rounds"`
			RatioMedian    float64           `json:"ratio_median"`
			RatioMin       float64           `json:"ratio_min"`
			RatioMax       float64           `json:"ratio_max"`
			CPURatioMedian float64           `json:"cpu_ratio_median"`
		} `json:"comparisons"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, out)
	}
	if r.Bytes != 4<<20 || len(r.Rounds) != 3 {
		t.Errorf("bytes %d, %d rounds, want %d and 3", r.Bytes, len(r.Rounds), 4<<20)
	}
	want := []string{"lab→kernel", "kernel→lab", "kernel→kernel"}
	for k, round := range r.Rounds {
		if len(round) != len(want) {
			t.Fatalf("round %d: %d results, want %v", k, len(round), want)
		}
		for i, res := range round {
			if res.Name != want[i] || res.Bytes != 4<<20 || res.Gbps <= 0 {
				t.Errorf("round %d result %d = %+v, want %s, %d bytes, Gbit/s > 0", k, i, res, want[i], 4<<20)
			}
		}
	}
	if len(r.Comparisons) != 2 {
		t.Fatalf("%d comparisons, want 2:\n%s", len(r.Comparisons), out)
	}
	for i, c := range r.Comparisons {
		if c.Name != want[i] || c.Baseline != "kernel→kernel" || len(c.Rounds) != 3 ||
			c.RatioMin <= 0 || c.RatioMin > c.RatioMedian || c.RatioMedian > c.RatioMax || c.CPURatioMedian <= 0 {
			t.Errorf("comparison %d = %+v", i, c)
		}
	}
}
