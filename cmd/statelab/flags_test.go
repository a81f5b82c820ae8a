package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// Every helper refuses what is out of range or not a value of its kind,
// with a message that says what it wants, and takes what is.
func TestRangedFlags(t *testing.T) {
	var (
		n    int
		f    float64
		d    time.Duration
		size int64
	)
	declare := func() *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		intVar(fs, &n, "n", 1, 1, 100, "count")
		floatVar(fs, &f, "f", 0, 0, 1, "fraction")
		durationVar(fs, &d, "d", time.Second, time.Millisecond, time.Minute, "wait")
		sizeVar(fs, &size, "size", 1<<20, 1, 1<<30, "bytes")
		return fs
	}
	tests := []struct {
		args []string
		err  string // "" for accepted
	}{
		{[]string{"-n", "5"}, ""},
		{[]string{"-n", "0"}, "from 1 to 100"},
		{[]string{"-n", "-1"}, "from 1 to 100"},
		{[]string{"-n", "x"}, "whole number"},
		{[]string{"-f", "0.5"}, ""},
		{[]string{"-f", "2"}, "from 0 to 1"},
		{[]string{"-f", "NaN"}, "from 0 to 1"},
		{[]string{"-f", "-Inf"}, "from 0 to 1"},
		{[]string{"-d", "250ms"}, ""},
		{[]string{"-d", "-5s"}, "from 1ms to 1m0s"},
		{[]string{"-d", "5"}, "such as 250ms"},
		{[]string{"-size", "1MiB"}, ""},
		{[]string{"-size", "2GiB"}, "from 1 to 1GiB"},
		{[]string{"-size", "1.5KiB"}, ""},
		{[]string{"-size", "-1"}, "such as 65536"},
		{[]string{"-size", "lots"}, "such as 65536"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := declare().Parse(tt.args)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("err = %v, want one saying %q", err, tt.err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{{"65536", 65536}, {"64KiB", 65536}, {"1MiB", 1 << 20}, {"1GiB", 1 << 30}, {"2MB", 2e6}, {"1kB", 1000}, {"1.5KiB", 1536}, {"10B", 10}}
	for _, tt := range tests {
		if got, err := parseSize(tt.in); err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1MiB", "0", "1e300GiB", "-1", "NaNB", " 3 KiB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseSize(s)
		if err == nil && v < 0 {
			t.Fatalf("parseSize(%q) = %d", s, v)
		}
	})
}

// Every flag's value before parsing is the default its help shows, so a
// second name for a flag (-c and --concurrency, --runs and --rounds) can
// never change the first one's default behind the help's back.
func TestEveryFlagStartsAtTheDefaultItsHelpShows(t *testing.T) {
	for name, c := range commands {
		if c.flags == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			c.flags(fs)
			fs.VisitAll(func(f *flag.Flag) {
				if got := f.Value.String(); got != f.DefValue {
					t.Errorf("-%s starts at %q but its help says the default is %q", f.Name, got, f.DefValue)
				}
			})
		})
	}
}
