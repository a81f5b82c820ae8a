package lab

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Errors returned by the registry.
var (
	ErrUnknownTarget = errors.New("lab: unknown experiment or group")
	ErrBadName       = errors.New("lab: experiment names are group/name")
)

// Experiment is one runnable piece of evidence.
type Experiment struct {
	// Name is "group/name", e.g. "http/calculator". The group is the
	// package's subject: http, tcp, dns, quic.
	Name string
	// Summary is the one-line description `statelab list` prints.
	Summary string
	// Shows is the one sentence the report opens with: what the run shows.
	Shows string
	// Run does the work. It returns an error only when the experiment could
	// not be carried out; findings go in Env.Check. Return an *EnvError when
	// the machine lacks something the experiment needs.
	Run func(*Env) error
}

// Group is the part of the name before the slash.
func (e Experiment) Group() string { g, _, _ := strings.Cut(e.Name, "/"); return g }

// Short is the part of the name after the slash.
func (e Experiment) Short() string { _, s, _ := strings.Cut(e.Name, "/"); return s }

var (
	regMu    sync.Mutex
	registry = map[string]Experiment{}
)

// Register adds an experiment to the catalogue; packages call it from init.
// It panics on a malformed or duplicate name, which is a programming error.
func Register(e Experiment) {
	g, s, ok := strings.Cut(e.Name, "/")
	if !ok || g == "" || s == "" || strings.Contains(s, "/") || e.Run == nil {
		panic(fmt.Errorf("%w: %q", ErrBadName, e.Name))
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[e.Name]; dup {
		panic("lab: experiment registered twice: " + e.Name)
	}
	registry[e.Name] = e
}

// All returns the catalogue sorted by name.
func All() []Experiment {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Experiment, 0, len(registry))
	for _, e := range registry {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the named experiment.
func Lookup(name string) (Experiment, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	e, ok := registry[name]
	return e, ok
}

// Select resolves targets (experiment names, group names, or "all") to
// experiments in catalogue order, each once.
func Select(targets []string) ([]Experiment, error) {
	all := All()
	seen := map[string]bool{}
	var out []Experiment
	add := func(e Experiment) {
		if !seen[e.Name] {
			seen[e.Name] = true
			out = append(out, e)
		}
	}
	for _, t := range targets {
		t = strings.TrimSuffix(t, "/")
		matched := false
		for _, e := range all {
			if t == "all" || e.Name == t || e.Group() == t {
				add(e)
				matched = true
			}
		}
		if !matched {
			return nil, fmt.Errorf("%w %q; `statelab list` shows them (groups: %s)", ErrUnknownTarget, t, strings.Join(Groups(), ", "))
		}
	}
	return out, nil
}

// Groups lists the groups in the catalogue.
func Groups() []string {
	var gs []string
	for _, e := range All() {
		if len(gs) == 0 || gs[len(gs)-1] != e.Group() {
			gs = append(gs, e.Group())
		}
	}
	return gs
}

// EnvError means the machine lacks something an experiment needs (a tool, a
// capability). The CLI exits 2 for it, with Remedy.
type EnvError struct {
	What   string
	Remedy string
	Err    error
}

func (e *EnvError) Error() string {
	s := e.What
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Remedy != "" {
		s += " (" + e.Remedy + ")"
	}
	return s
}

func (e *EnvError) Unwrap() error { return e.Err }
