package lab

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/statelab/statelab/internal/capture"
)

// Env is what an experiment runs with. Its methods may be called from any
// goroutine.
type Env struct {
	// Ctx is cancelled when the user interrupts the run or the experiment's
	// time is up; every wait in an experiment must honour it.
	Ctx context.Context
	// Rand is seeded from --seed: the same seed, the same choices.
	Rand *rand.Rand
	// Seed is the seed Rand was made from.
	Seed uint64
	// Log receives progress lines (shown with --verbose); never nil.
	Log io.Writer

	exp    Experiment
	outDir string

	mu       sync.Mutex
	report   *Report
	captures []*capture.Capture
	cleanups []func()
}

// Name is the experiment's full name.
func (e *Env) Name() string { return e.exp.Name }

// CapturePath is where a capture named name (without extension) of this
// experiment goes: DIR/<group>/<name>.pcapng. The experiment's own capture
// uses its short name.
func (e *Env) CapturePath(name string) string {
	return filepath.Join(e.outDir, e.exp.Group(), name+".pcapng")
}

// Capture starts recording the lab's loopback into the experiment's capture
// file, DIR/<group>/<name>.pcapng. The runner closes (and so writes) it when
// the experiment returns, whatever happened; the experiment calls Stop
// itself to read the packets first.
func (e *Env) Capture(opts capture.Options) (*capture.Capture, error) {
	return e.CaptureAs(e.exp.Short(), opts)
}

// CaptureAs is Capture with another file name, for experiments that write
// more than one capture.
func (e *Env) CaptureAs(name string, opts capture.Options) (*capture.Capture, error) {
	if opts.Experiment == "" {
		opts.Experiment = e.exp.Name
	}
	if opts.Description == "" {
		opts.Description = e.exp.Shows
	}
	path := e.CapturePath(name)
	c, err := capture.Start(path, opts)
	if err != nil {
		return nil, &EnvError{What: "starting the capture", Err: err,
			Remedy: "statelab needs a packet socket inside its namespace; run it as a user who can create user namespaces"}
	}
	e.mu.Lock()
	e.captures = append(e.captures, c)
	e.report.Captures = append(e.report.Captures, path)
	e.mu.Unlock()
	return c, nil
}

// Cleanup registers f to run when the experiment ends, last registered
// first, before captures are written.
func (e *Env) Cleanup(f func()) {
	e.mu.Lock()
	e.cleanups = append(e.cleanups, f)
	e.mu.Unlock()
}

// Check records a verdict and returns ok. The detail says what was measured,
// so a failing check explains itself.
func (e *Env) Check(name string, ok bool, detailFormat string, args ...any) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.report.Checks = append(e.report.Checks, Check{Name: name, Passed: ok, Detail: fmt.Sprintf(detailFormat, args...)})
	return ok
}

// Metric records a measured figure. Units go in the name: _bytes, _ms, _count.
func (e *Env) Metric(name string, v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.report.Metrics[name] = v
}

// Ladder adds a ladder diagram to the report and returns it for filling.
func (e *Env) Ladder(title, left, right string) *Ladder {
	l := &Ladder{Title: title, Left: left, Right: right}
	e.mu.Lock()
	e.report.Ladders = append(e.report.Ladders, l)
	e.mu.Unlock()
	return l
}

// Table adds an evidence table; rows[0] is the header.
func (e *Env) Table(title string, rows [][]string) {
	e.mu.Lock()
	e.report.Tables = append(e.report.Tables, Table{Title: title, Rows: rows})
	e.mu.Unlock()
}

// Note adds a line for the reader of the report.
func (e *Env) Note(format string, args ...any) {
	e.mu.Lock()
	e.report.Notes = append(e.report.Notes, fmt.Sprintf(format, args...))
	e.mu.Unlock()
}

// Logf writes a progress line.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "  [%s] %s\n", e.exp.Name, fmt.Sprintf(format, args...))
}

// finish runs cleanups and writes captures; errors become failed checks.
func (e *Env) finish() {
	e.mu.Lock()
	cleanups, captures := e.cleanups, e.captures
	e.cleanups, e.captures = nil, nil
	e.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, c := range captures {
		if err := c.Close(); err != nil {
			e.Check("capture written", false, "%v", err)
		}
		// A capture that missed packets would make every measurement
		// from it suspect: say so as a failure of its own.
		if d := c.Drops(); d > 0 {
			e.Check("capture complete", false, "the kernel dropped %d packets before %s could read them", d, c.Path())
		}
	}
}

// deadline is the default time an experiment may take.
const defaultTimeout = 2 * time.Minute
