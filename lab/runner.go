package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Options configure a run.
type Options struct {
	// OutDir receives captures as OutDir/<group>/<name>.pcapng; default DefaultOut.
	OutDir string
	// Seed makes random choices repeatable; 0 picks one and reports it so
	// a run can be repeated. At most MaxSeed.
	Seed uint64
	// Timeout bounds each experiment; default 2 minutes.
	Timeout time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// State is shared by the experiments of one run (Env.RunState); nil
	// gives each RunOne a state of its own. Catalogue.Run makes one per run.
	State *RunState
}

// RunState holds what the experiments of one run share: a summary table
// that needs figures from several experiments reads here what each of them
// stored. It lives exactly as long as the run.
type RunState struct {
	mu      sync.Mutex
	m       map[any]any
	planned []string
}

// SetPlanned records the experiments the run will run, in order
// (Catalogue.Run does, each time it starts).
func (s *RunState) SetPlanned(names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.planned = slices.Clone(names)
}

// Planned returns the experiments the run runs, in order: an experiment
// can tell whether another runs after it (nil when unknown, as for
// RunOne alone).
func (s *RunState) Planned() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.planned)
}

// After reports whether the run runs experiment later after experiment
// now.
func (s *RunState) After(now, later string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, j := slices.Index(s.planned, now), slices.Index(s.planned, later)
	return i >= 0 && j > i
}

// Store keeps v under key for the rest of the run. Keys follow the rules
// of context keys: an unexported type of the package that stores them.
func (s *RunState) Store(key, v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[any]any{}
	}
	s.m[key] = v
}

// Load returns what was stored under key in this run.
func (s *RunState) Load(key any) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok
}

// LoadOrStore returns what was stored under key in this run or, if
// nothing was, stores and returns newValue(): of the experiments that ask
// at once, one makes the value and all of them get it.
func (s *RunState) LoadOrStore(key any, newValue func() any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v
	}
	if s.m == nil {
		s.m = map[any]any{}
	}
	v := newValue()
	s.m[key] = v
	return v
}

// MaxSeed is the largest seed: 2^53−1, the largest integer every JSON
// reader (jq, JavaScript) keeps exact.
const MaxSeed = 1<<53 - 1

// NewSeed picks a seed for a run that was given none: short enough to type
// back, and never 0 (which means "pick one").
func NewSeed() uint64 { return 1 + rand.Uint64N(1<<32-1) }

// RunOne runs a single experiment and returns its report. It never panics:
// a panic inside the experiment is recorded as its error.
func RunOne(ctx context.Context, exp Experiment, opts Options) *Report {
	if opts.OutDir == "" {
		opts.OutDir = DefaultOut
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultTimeout
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.State == nil {
		opts.State = &RunState{}
	}
	seed := opts.Seed
	if seed == 0 {
		seed = NewSeed()
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	r := &Report{Experiment: exp.Name, Shows: exp.Shows, Metrics: map[string]float64{}, Seed: seed}
	env := &Env{
		Ctx:    ctx,
		Rand:   rand.New(rand.NewPCG(seed, seed^0x5eed)),
		Seed:   seed,
		Log:    opts.Log,
		exp:    exp,
		outDir: opts.OutDir,
		state:  opts.State,
		report: r,
	}
	start := time.Now()
	err := runProtected(exp, env)
	env.finish()
	r.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		// Say why the run was cut short (a signal, the timeout), once:
		// the body may have returned ctx.Err(), which does not say it,
		// or the cause itself.
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) && !strings.Contains(err.Error(), cause.Error()) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		r.Error = err.Error()
		var ee *EnvError
		r.EnvError = errors.As(err, &ee)
	}
	if sig, ok := errors.AsType[interrupted](context.Cause(ctx)); ok && err != nil {
		r.Interrupted = unix.SignalName(sig.Signal) // the body gave up because of it
	}
	r.Passed = err == nil && len(r.Checks) > 0 && len(r.Failed()) == 0
	return r
}

func runProtected(exp Experiment, env *Env) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("lab: experiment %s panicked: %v\n%s", exp.Name, p, debug.Stack())
		}
	}()
	return exp.Run(env)
}

// Run runs experiments in order, calling report after each, and stops early
// when ctx is cancelled (the reports so far are returned). After the last
// experiment of a group that has a Summary, the summary's report follows;
// after the last experiment, "who holds the state" when two or more
// experiments recorded a Holding.
func (c *Catalogue) Run(ctx context.Context, exps []Experiment, opts Options, report func(*Report)) []*Report {
	if opts.State == nil {
		opts.State = &RunState{}
	}
	names := make([]string, len(exps))
	for i, e := range exps {
		names[i] = e.Name
	}
	opts.State.SetPlanned(names)
	var out []*Report
	emit := func(r *Report) {
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	var group []*Report
	for i, e := range exps {
		if ctx.Err() != nil {
			break
		}
		r := RunOne(ctx, e, opts)
		emit(r)
		group = append(group, r)
		if ctx.Err() != nil {
			break // a summary of a group cut short would judge what did not run
		}
		if i == len(exps)-1 || exps[i+1].Group() != e.Group() {
			if s := c.summarise(e.Group(), group); s != nil {
				s.Seed = group[0].Seed
				emit(s)
			}
			group = nil
		}
	}
	if s := holdingSummary(out); s != nil && ctx.Err() == nil {
		s.Seed = out[0].Seed
		emit(s)
	}
	return out
}
