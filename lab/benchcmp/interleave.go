package benchcmp

import (
	"fmt"
	"syscall"
	"time"
)

// Interleave runs rounds rounds of sides turns: in round r, turn k runs
// side (k + r) mod sides, so every side takes every place in the order
// (with two sides: A B, B A, A B…) and a slow moment of a shared machine
// falls on all sides alike. It stops at the first error.
func Interleave(rounds, sides int, run func(round, side int) error) error {
	for r := range rounds {
		for k := range sides {
			if err := run(r, (k+r)%sides); err != nil {
				return fmt.Errorf("round %d: %w", r+1, err)
			}
		}
	}
	return nil
}

// ProcessCPU is the CPU time (user + system) this process has used so far,
// all threads.
func ProcessCPU() time.Duration { return rusage(syscall.RUSAGE_SELF) }

// ChildCPU is the CPU time used so far by this process's children that
// have been waited for.
func ChildCPU() time.Duration { return rusage(syscall.RUSAGE_CHILDREN) }

func rusage(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Measure runs f and returns the process's CPU time (self and waited-for
// children) and the wall time it took.
func Measure(f func() error) (cpu, wall time.Duration, err error) {
	c0, t0 := ProcessCPU()+ChildCPU(), time.Now()
	err = f()
	return ProcessCPU() + ChildCPU() - c0, time.Since(t0), err
}
