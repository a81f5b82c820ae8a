package lab

import (
	"context"
	"strings"
	"testing"
)

func holder(name string, h Holding, pass bool) Experiment {
	return Experiment{Name: name, Summary: "holds", HoldsState: true, Run: func(env *Env) error {
		env.Holding(h)
		env.Check("ok", pass, "")
		return nil
	}}
}

func TestWhoHoldsTheStateFollowsARunWithTwoRows(t *testing.T) {
	a := holder("h/a", Holding{ServerKeeps: "nothing", ClientCarries: "a 58-byte token", RestartLoses: "nothing", CarriedBytes: 58, CarriedPer: "per connection"}, true)
	b := holder("h/b", Holding{ServerKeeps: "a session row", ClientCarries: "an id", RestartLoses: "every session"}, false)
	plain := Experiment{Name: "h/plain", Summary: "no row", Run: func(env *Env) error { env.Check("ok", true, ""); return nil }}
	cat := MustCatalogue([]Experiment{a, b, plain})
	for _, tc := range []struct {
		name     string
		exps     []Experiment
		wantRows []string // experiment and cost cells of each row; nil: no summary
	}{
		{"two rows make a summary, in run order", []Experiment{a, plain, b}, []string{"h/a 58 bytes per connection", "h/b 0 bytes (experiment failed)"}},
		{"one row makes none", []Experiment{a, plain}, nil},
		{"none makes none", []Experiment{plain}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cat.Run(context.Background(), tc.exps, Options{OutDir: t.TempDir(), Seed: 1}, nil)
			last := got[len(got)-1]
			if tc.wantRows == nil {
				if last.Experiment == HoldingGroup+"/*" {
					t.Fatalf("unexpected summary %+v", last)
				}
				return
			}
			if last.Experiment != HoldingGroup+"/*" || !last.Summary || !last.Passed {
				t.Fatalf("last report %q summary=%v passed=%v, want the passing %s/* summary", last.Experiment, last.Summary, last.Passed, HoldingGroup)
			}
			rows := last.Tables[0].Rows[1:]
			var cells []string
			for _, r := range rows {
				cells = append(cells, r[0]+" "+r[4])
			}
			if strings.Join(cells, ";") != strings.Join(tc.wantRows, ";") {
				t.Errorf("rows %q, want %q", cells, tc.wantRows)
			}
		})
	}
}

// The summary's name is a target: who-holds-the-state (or
// who-holds-the-state/*) runs the experiments that hold a row, in
// catalogue order, and one that records a row without saying so fails
// a check that names the fix, so the target never misses one.
func TestWhoHoldsTheStateIsRunnable(t *testing.T) {
	a := holder("h/a", Holding{ServerKeeps: "nothing"}, true)
	b := holder("x/b", Holding{ServerKeeps: "a row"}, true)
	plain := Experiment{Name: "h/plain", Summary: "no row", Run: func(env *Env) error { env.Check("ok", true, ""); return nil }}
	cat := MustCatalogue([]Experiment{b, plain, a})
	for _, target := range []string{HoldingGroup, HoldingGroup + "/*"} {
		got, err := cat.Select([]string{target})
		if err != nil || len(got) != 2 || got[0].Name != "h/a" || got[1].Name != "x/b" {
			t.Errorf("Select(%q) = %v, %v; want h/a and x/b", target, got, err)
		}
	}
	if _, err := cat.Select([]string{"who-holds-the-stat"}); err == nil || !strings.Contains(err.Error(), "did you mean "+HoldingGroup) {
		t.Errorf("a typo of the summary's name: %v, want a suggestion", err)
	}

	undeclared := Experiment{Name: "h/undeclared", Summary: "holds, says not", Run: func(env *Env) error {
		env.Holding(Holding{ServerKeeps: "a row"})
		return nil
	}}
	r := RunOne(context.Background(), undeclared, Options{OutDir: t.TempDir(), Seed: 1})
	if r.Passed || len(r.Failed()) != 1 || !strings.Contains(r.Failed()[0].Detail, "HoldsState") {
		t.Errorf("an undeclared row: passed=%v, failed %+v; want one failed check naming HoldsState", r.Passed, r.Failed())
	}
}

// Every summary a run prints carries the run's seed, as its experiments
// do: a group's summary and who-holds-the-state alike (a summary once
// said "seed":0, which feeds back as another run).
func TestSummariesCarryTheRunsSeed(t *testing.T) {
	a := holder("other/a", Holding{ServerKeeps: "nothing"}, true)
	b := holder("other/b", Holding{ServerKeeps: "a row"}, true)
	cat := MustCatalogue([]Experiment{a, b}, otherSummary)
	const seed = 424242
	got := cat.Run(context.Background(), []Experiment{a, b}, Options{OutDir: t.TempDir(), Seed: seed}, nil)
	summaries := 0
	for _, r := range got {
		if r.Seed != seed {
			t.Errorf("%s (summary %v): seed %d, want the run's %d", r.Experiment, r.Summary, r.Seed, seed)
		}
		if r.Summary {
			summaries++
		}
	}
	if summaries != 2 {
		t.Errorf("%d summaries, want other/* and %s/*", summaries, HoldingGroup)
	}
}
