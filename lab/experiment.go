package lab

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab/subproc"
)

// Errors returned by the catalogue.
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
	// HoldsState says the experiment records a row of "who holds the
	// state" (Env.Holding): the target who-holds-the-state runs the
	// experiments that say so. A row recorded without it fails a check.
	HoldsState bool
	// Roles are the processes the experiment starts with subproc.Start (a
	// server it kills with SIGKILL); the program that runs the catalogue
	// can run them (lab.Main dispatches them).
	Roles subproc.Roles
}

// Group is the part of the name before the slash.
func (e Experiment) Group() string { g, _, _ := strings.Cut(e.Name, "/"); return g }

// Short is the part of the name after the slash.
func (e Experiment) Short() string { _, s, _ := strings.Cut(e.Name, "/"); return s }

// Catalogue is the list of experiments (and group summaries) a program
// offers: statelab's own, or a user's. It is built explicitly; importing a
// package registers nothing.
type Catalogue struct {
	exps      []Experiment // sorted by name
	byName    map[string]Experiment
	summaries map[string]Summary
	html      HTMLWriter
}

// HTMLWriter writes a run's reports as a web page into dir (dir/index.html),
// for `run --html DIR`. lab/htmlreport's WriteDir is one.
type HTMLWriter func(dir string, reports []*Report) error

// SetHTML makes w the writer of `run --html DIR` and returns c. Without
// one, --html is a usage error.
func (c *Catalogue) SetHTML(w HTMLWriter) *Catalogue {
	c.html = w
	return c
}

// NewCatalogue checks the experiments' names (group/name, each once) and
// the summaries' groups, and returns the catalogue sorted by name.
func NewCatalogue(exps []Experiment, summaries ...Summary) (*Catalogue, error) {
	c := &Catalogue{byName: map[string]Experiment{}, summaries: map[string]Summary{}}
	for _, e := range exps {
		g, s, ok := strings.Cut(e.Name, "/")
		if !ok || g == "" || s == "" || strings.Contains(s, "/") || e.Run == nil {
			return nil, fmt.Errorf("%w: %q", ErrBadName, e.Name)
		}
		if _, dup := c.byName[e.Name]; dup {
			return nil, fmt.Errorf("%w: %q twice", ErrBadName, e.Name)
		}
		c.byName[e.Name] = e
		c.exps = append(c.exps, e)
	}
	sort.Slice(c.exps, func(i, j int) bool { return c.exps[i].Name < c.exps[j].Name })
	for _, s := range summaries {
		if _, dup := c.summaries[s.Group]; dup || s.Group == "" || s.Build == nil {
			return nil, fmt.Errorf("%w: summary for group %q", ErrBadName, s.Group)
		}
		c.summaries[s.Group] = s
	}
	return c, nil
}

// MustCatalogue is NewCatalogue for a catalogue written in the program: a
// bad name is a programming error.
func MustCatalogue(exps []Experiment, summaries ...Summary) *Catalogue {
	c, err := NewCatalogue(exps, summaries...)
	if err != nil {
		panic(err)
	}
	return c
}

// Roles gathers the process roles of the catalogue's experiments (a role
// two experiments share is one role).
func (c *Catalogue) Roles() subproc.Roles {
	r := subproc.Roles{}
	for _, e := range c.exps {
		for name, role := range e.Roles {
			if _, ok := r[name]; !ok {
				r[name] = role
			}
		}
	}
	return r
}

// All returns the catalogue sorted by name.
func (c *Catalogue) All() []Experiment { return slices.Clone(c.exps) }

// Lookup returns the named experiment.
func (c *Catalogue) Lookup(name string) (Experiment, bool) {
	e, ok := c.byName[name]
	return e, ok
}

// Select resolves targets (experiment names, group names, "group/*",
// HoldingGroup or "all") to experiments in catalogue order, each once:
// every summary's name a run prints is a target that runs its experiments.
func (c *Catalogue) Select(targets []string) ([]Experiment, error) {
	seen := map[string]bool{}
	var out []Experiment
	for _, t := range targets {
		t = strings.TrimSuffix(strings.TrimSuffix(t, "*"), "/")
		matched := false
		for _, e := range c.exps {
			if t == "all" || e.Name == t || e.Group() == t || (t == HoldingGroup && e.HoldsState) {
				if !seen[e.Name] {
					seen[e.Name] = true
					out = append(out, e)
				}
				matched = true
			}
		}
		if !matched {
			if near := c.nearest(t); near != "" {
				return nil, fmt.Errorf("%w %q: did you mean %s?", ErrUnknownTarget, t, near)
			}
			return nil, fmt.Errorf("%w %q", ErrUnknownTarget, t)
		}
	}
	return out, nil
}

// nearest suggests the catalogue's names closest to a mistyped target.
func (c *Catalogue) nearest(t string) string {
	names := append([]string{"all", HoldingGroup}, c.Groups()...)
	for _, e := range c.exps {
		names = append(names, e.Name)
	}
	best, bestD := []string(nil), 3
	for _, n := range names {
		d := Distance(strings.ToLower(t), strings.ToLower(n))
		switch {
		case d < bestD:
			best, bestD = []string{n}, d
		case d == bestD && len(best) < 3:
			best = append(best, n)
		}
	}
	return strings.Join(best, " or ")
}

// Distance is the Levenshtein distance between a and b: how programs
// built on the lab suggest the nearest of their names for a typo.
func Distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Groups lists the groups in the catalogue.
func (c *Catalogue) Groups() []string {
	var gs []string
	for _, e := range c.exps {
		if len(gs) == 0 || gs[len(gs)-1] != e.Group() {
			gs = append(gs, e.Group())
		}
	}
	return gs
}

// groupSize is how many experiments the catalogue has in group.
func (c *Catalogue) groupSize(group string) int {
	n := 0
	for _, e := range c.exps {
		if e.Group() == group {
			n++
		}
	}
	return n
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
