package lab

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

// Env is what an experiment runs with. Its methods may be called from any
// goroutine.
type Env struct {
	// Ctx is cancelled when the user interrupts the run or the experiment's
	// time is up; every wait in an experiment must honour it.
	Ctx context.Context
	// Rand is seeded from --seed: the same seed, the same choices, as long
	// as one goroutine draws from it in a fixed order. Concurrent parts of
	// an experiment take a stream of their own with Stream or Bytes.
	Rand *rand.Rand
	// Seed is the seed Rand was made from.
	Seed uint64
	// Log receives progress lines (shown with --verbose); never nil.
	Log io.Writer

	exp    Experiment
	outDir string
	state  *RunState

	mu       sync.Mutex
	report   *Report
	captures []*capture.Capture
	cleanups []func()
	// short names the capture found incomplete; checks recorded after it
	// are not judged.
	short string
}

// Stream returns a random source of its own for the part of the
// experiment called name, derived from the seed and the name alone: the
// same seed gives the same draws whatever other parts draw, and in which
// order. The source is not safe for concurrent use.
func (e *Env) Stream(name string) *rand.Rand {
	return rand.New(rand.NewChaCha8(e.streamSeed(name)))
}

// Bytes is Stream as an io.Reader of random bytes, for code that takes
// its randomness as a reader (crypto/rand's role): connection IDs, DNS IDs,
// initial sequence numbers. The reader is safe for concurrent use, but
// draws from several goroutines come in the order they are made.
func (e *Env) Bytes(name string) io.Reader {
	return &lockedReader{r: rand.NewChaCha8(e.streamSeed(name))}
}

func (e *Env) streamSeed(name string) [32]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], e.Seed)
	return sha256.Sum256(append(append(b[:], e.exp.Name+"\x00"...), name...))
}

type lockedReader struct {
	mu sync.Mutex
	r  *rand.ChaCha8
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

// RunState is what the experiments of this run share (see RunState).
func (e *Env) RunState() *RunState { return e.state }

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
	if opts.Done == nil {
		opts.Done = e.Ctx.Done()
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
// so a failing check explains itself. After CaptureComplete found a
// capture short, a check is recorded as not judged and returns false: no
// verdict rests on evidence known to be incomplete.
func (e *Env) Check(name string, ok bool, detailFormat string, args ...any) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := Check{Name: name, Passed: ok, Detail: fmt.Sprintf(detailFormat, args...)}
	if e.short != "" {
		c.Passed, c.NotJudged = false, "the capture "+e.short+" is incomplete"
		ok = false
	}
	e.report.Checks = append(e.report.Checks, c)
	return ok
}

// CaptureComplete records the check "capture complete": the capture holds
// got of the want units (packets, datagrams, exchanges) that the source
// counted (engine records, socket counters, qlog, server counters), and
// the kernel dropped none. source says who counted. When the capture is
// short, that check fails and every check recorded after it is reported as
// not judged, so a short capture is blamed as a capture failure, never as
// the protocol's. Call it right after Stop, before analysing the packets.
func (e *Env) CaptureComplete(c CaptureFile, got, want int, unit, source string) bool {
	drops := c.Drops()
	ok := got >= want && drops == 0
	detail := fmt.Sprintf("%d of %d %s (counted by %s)", got, want, unit, source)
	if drops > 0 {
		detail += fmt.Sprintf("; the kernel dropped %d packets before the capture could read them", drops)
	}
	name := "capture complete"
	if base := filepath.Base(c.Path()); base != e.exp.Short()+".pcapng" {
		name += " (" + base + ")"
	}
	e.Check(name, ok, "%s", detail)
	if !ok {
		e.mu.Lock()
		if e.short == "" {
			e.short = filepath.Base(c.Path())
		}
		e.mu.Unlock()
	}
	return ok
}

// CaptureFile is what CaptureComplete needs of a capture (a
// *capture.Capture is one): where it is written and what the kernel
// dropped.
type CaptureFile interface {
	Path() string
	Drops() uint
}

// CaptureShort reports whether a capture of this experiment was found
// incomplete; ladders and analysis drawn from it must say so.
func (e *Env) CaptureShort() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.short != ""
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
		// from it suspect: say so as a failure of its own (CaptureComplete
		// already said it for the captures it judged).
		if d := c.Drops(); d > 0 && !e.CaptureShort() {
			e.mu.Lock()
			e.report.Checks = append(e.report.Checks, Check{Name: "capture complete", Detail: fmt.Sprintf("the kernel dropped %d packets before %s could read them", d, c.Path())})
			e.mu.Unlock()
		}
	}
}

// deadline is the default time an experiment may take.
const defaultTimeout = 2 * time.Minute
