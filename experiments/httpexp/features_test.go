package httpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab/labtest"
)

func TestFeaturesExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/features"), 1)
	if r.Metrics["stateful.history_len"] != 4 {
		t.Errorf("history_len = %v, want 4", r.Metrics["stateful.history_len"])
	}
}

// The features are judged from the server's replies to GET /history, GET
// /stats and POST /undo after ((10 + 5) × 2) − 3 + 1, and the session the
// server holds after the undo.
func TestJudgeFeatures(t *testing.T) {
	reply := func(status int, body string) *played {
		p := &played{}
		p.Rep.Status, p.Rep.Body = status, []byte(body)
		if strings.Contains(body, `"result"`) {
			p.Rep.Result = 27
		}
		return p
	}
	history := `{"history":[{"op":"add","a":10,"b":5,"result":15},{"op":"multiply","a":15,"b":2,"result":30},` +
		`{"op":"subtract","a":30,"b":3,"result":27},{"op":"add","a":27,"b":1,"result":28}]}`
	stats := `{"operations":4,"most_used_op":"add","op_counts":{"add":2,"multiply":1,"subtract":1}}`
	undone := httpstate.SessionState{HasLast: true, LastResult: 27}
	tests := []struct {
		name                   string
		history, stats, undo   *played
		after                  httpstate.SessionState
		historyOK, statsOK, ok bool // ok: undo
	}{
		{"all three work", reply(200, history), reply(200, stats), reply(200, `{"result":27}`), undone, true, true, true},
		{"history out of order", reply(200, strings.Replace(history, `"op":"add","a":10`, `"op":"divide","a":10`, 1)), reply(200, stats), reply(200, `{"result":27}`), undone, false, true, true},
		{"refused: a stateless server", reply(404, `{"code":"stateless"}`), reply(404, `{"code":"stateless"}`), reply(404, `{"code":"stateless"}`), httpstate.SessionState{}, false, false, false},
		{"stats name another op", reply(200, history), reply(200, strings.Replace(stats, `"most_used_op":"add"`, `"most_used_op":"multiply"`, 1)), reply(200, `{"result":27}`), undone, true, false, true},
		{"undo answered but the session kept 28", reply(200, history), reply(200, stats), reply(200, `{"result":27}`), httpstate.SessionState{HasLast: true, LastResult: 28}, true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := judgeFeatures(httpstate.Stateful, tt.history, tt.stats, tt.undo, tt.after)
			if fr.historyOK != tt.historyOK || fr.statsOK != tt.statsOK || fr.undoOK != tt.ok {
				t.Fatalf("history %v, stats %v, undo %v; want %v, %v, %v (%+v)", fr.historyOK, fr.statsOK, fr.undoOK, tt.historyOK, tt.statsOK, tt.ok, fr)
			}
			if cell := fr.cell(); strings.Contains(cell, "WRONG") == (tt.historyOK && tt.statsOK) {
				t.Errorf("cell %q", cell)
			}
		})
	}
}
