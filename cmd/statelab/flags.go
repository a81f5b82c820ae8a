package main

import (
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// The one way statelab's commands declare flags: each command keeps its
// flags in a struct of its own, declares them with these helpers (or the
// flag package's XxxVar for strings and switches) and reads the struct's
// fields — never a flag looked up by name. Every number has a range, and
// a value outside it is a usage error (exit 2) before anything runs.

// intVar declares an integer flag that must lie in [lo, hi].
func intVar(fs *flag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	*p = def
	fs.Var(&rangedInt{p, lo, hi}, name, fmt.Sprintf("%s (%d to %d)", usage, lo, hi))
}

type rangedInt struct {
	p      *int
	lo, hi int
}

func (r *rangedInt) String() string {
	if r.p == nil {
		return "0"
	}
	return strconv.Itoa(*r.p)
}

func (r *rangedInt) Set(s string) error {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a whole number")
	}
	if v < r.lo || v > r.hi {
		return fmt.Errorf("want a whole number from %d to %d", r.lo, r.hi)
	}
	*r.p = v
	return nil
}

func (r *rangedInt) Get() any { return *r.p }

// floatVar declares a number flag that must lie in [lo, hi]; NaN and the
// infinities are refused.
func floatVar(fs *flag.FlagSet, p *float64, name string, def, lo, hi float64, usage string) {
	*p = def
	fs.Var(&rangedFloat{p, lo, hi}, name, fmt.Sprintf("%s (%g to %g)", usage, lo, hi))
}

type rangedFloat struct {
	p      *float64
	lo, hi float64
}

func (r *rangedFloat) String() string {
	if r.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*r.p, 'g', -1, 64)
}

func (r *rangedFloat) Set(s string) error {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("want a number from %g to %g", r.lo, r.hi)
	}
	if v < r.lo || v > r.hi {
		return fmt.Errorf("want a number from %g to %g", r.lo, r.hi)
	}
	*r.p = v
	return nil
}

func (r *rangedFloat) Get() any { return *r.p }

// durationVar declares a duration flag (250ms, 2s, 1m) that must lie in
// [lo, hi].
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def, lo, hi time.Duration, usage string) {
	*p = def
	fs.Var(&rangedDuration{p, lo, hi}, name, fmt.Sprintf("%s (%v to %v)", usage, lo, hi))
}

type rangedDuration struct {
	p      *time.Duration
	lo, hi time.Duration
}

func (r *rangedDuration) String() string {
	if r.p == nil {
		return "0s"
	}
	return r.p.String()
}

func (r *rangedDuration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a duration such as 250ms, 2s or 1m")
	}
	if v < r.lo || v > r.hi {
		return fmt.Errorf("want a duration from %v to %v", r.lo, r.hi)
	}
	*r.p = v
	return nil
}

func (r *rangedDuration) Get() any { return *r.p }

// sizeVar declares a byte-count flag: a plain number of bytes, or one with
// a unit (1KiB, 4MiB, 1GiB; 1kB, 4MB, 1GB), that must lie in [lo, hi].
func sizeVar(fs *flag.FlagSet, p *int64, name string, def, lo, hi int64, usage string) {
	*p = def
	fs.Var(&rangedSize{p, lo, hi}, name, fmt.Sprintf("%s (%s to %s)", usage, formatSize(lo), formatSize(hi)))
}

type rangedSize struct {
	p      *int64
	lo, hi int64
}

func (r *rangedSize) String() string {
	if r.p == nil {
		return "0"
	}
	return formatSize(*r.p)
}

func (r *rangedSize) Set(s string) error {
	v, err := parseSize(s)
	if err != nil {
		return err
	}
	if v < r.lo || v > r.hi {
		return fmt.Errorf("want a size from %s to %s", formatSize(r.lo), formatSize(r.hi))
	}
	*r.p = v
	return nil
}

func (r *rangedSize) Get() any { return *r.p }

var sizeUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// parseSize reads "1048576", "1MiB", "2.5MB" as a number of bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.n
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v*float64(mult) > math.MaxInt64/2 {
		return 0, fmt.Errorf("want a size such as 65536, 64KiB, 1MiB or 1GB")
	}
	return int64(v * float64(mult)), nil
}

// formatSize writes n bytes with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return fmt.Sprintf("%d%s", n/u.n, u.suffix)
		}
	}
	return strconv.FormatInt(n, 10)
}
