package lab

import (
	"context"
	"strings"
	"testing"
)

func holder(name string, h Holding, pass bool) Experiment {
	return Experiment{Name: name, Summary: "holds", Run: func(env *Env) error {
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
