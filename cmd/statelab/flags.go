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
// flag package's XxxVar for strings and switches), gives a second name
// with aliasVar (never a second declaration, whose default would
// overwrite the first's), and reads the struct's fields — never a flag
// looked up by name. Every number has a range, and a value outside it is
// a usage error (exit 2) before anything runs.

// intVar declares an integer flag that must lie in [lo, hi].
func intVar(fs *flag.FlagSet, p *int, name string, def, lo, hi int, usage string) {
	rangedVar(fs, p, name, def, lo, hi, usage, strconv.Itoa, func(s string) (int, error) {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("want a whole number")
		}
		return v, nil
	}, "a whole number")
}

// floatVar declares a number flag that must lie in [lo, hi]; NaN and the
// infinities are refused.
func floatVar(fs *flag.FlagSet, p *float64, name string, def, lo, hi float64, usage string) {
	format := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	rangedVar(fs, p, name, def, lo, hi, usage, format, func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("want a number from %g to %g", lo, hi)
		}
		return v, nil
	}, "a number")
}

// durationVar declares a duration flag (250ms, 2s, 1m) that must lie in
// [lo, hi].
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def, lo, hi time.Duration, usage string) {
	rangedVar(fs, p, name, def, lo, hi, usage, time.Duration.String, func(s string) (time.Duration, error) {
		v, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("want a duration such as 250ms, 2s or 1m")
		}
		return v, nil
	}, "a duration")
}

// sizeVar declares a byte-count flag: a plain number of bytes, or one with
// a unit (1KiB, 4MiB, 1GiB; 1kB, 4MB, 1GB), that must lie in [lo, hi].
func sizeVar(fs *flag.FlagSet, p *int64, name string, def, lo, hi int64, usage string) {
	rangedVar(fs, p, name, def, lo, hi, usage, formatSize, parseSize, "a size")
}

// aliasVar declares name as a second name of the flag of already declared
// (-c for --concurrency): the one value, range and default under both
// names, so the two can never disagree.
func aliasVar(fs *flag.FlagSet, name, of, usage string) {
	f := fs.Lookup(of)
	if f == nil {
		panic(fmt.Sprintf("statelab: alias -%s of -%s, which is not declared yet", name, of))
	}
	fs.Var(f.Value, name, usage)
	fs.Lookup(name).DefValue = f.DefValue
}

// rangedVar declares a flag whose value is parsed by parse, shown by
// format and must lie in [lo, hi]; kind names it in the error ("a size").
func rangedVar[T int | int64 | float64 | time.Duration](fs *flag.FlagSet, p *T, name string, def, lo, hi T, usage string,
	format func(T) string, parse func(string) (T, error), kind string) {
	*p = def
	fs.Var(&ranged[T]{p, lo, hi, format, parse, kind}, name, fmt.Sprintf("%s (%s to %s)", usage, format(lo), format(hi)))
}

type ranged[T int | int64 | float64 | time.Duration] struct {
	p      *T
	lo, hi T
	format func(T) string
	parse  func(string) (T, error)
	kind   string
}

func (r *ranged[T]) String() string {
	if r.p == nil { // the flag package's zero-value probe
		return ""
	}
	return r.format(*r.p)
}

func (r *ranged[T]) Set(s string) error {
	v, err := r.parse(strings.TrimSpace(s))
	if err != nil {
		return err
	}
	if v < r.lo || v > r.hi {
		return fmt.Errorf("want %s from %s to %s", r.kind, r.format(r.lo), r.format(r.hi))
	}
	*r.p = v
	return nil
}

func (r *ranged[T]) Get() any { return *r.p }

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
