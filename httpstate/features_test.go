package httpstate

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
)

func TestUndoRestoresEachPreviousState(t *testing.T) {
	var st SessionState
	st.record(Add, 10, 5, 15)
	st.record(Multiply, 15, 2, 30)
	tests := []struct {
		name     string
		wantOK   bool
		wantLast bool
		wantRes  float64
		wantHist int
	}{
		{"undo × 2 goes back to 15", true, true, 15, 1},
		{"undo + goes back to no result", true, false, 0, 0},
		{"undo with an empty history is refused", false, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok := st.undo()
			if ok != tt.wantOK || st.HasLast != tt.wantLast || st.LastResult != tt.wantRes || len(st.History) != tt.wantHist {
				t.Errorf("undo ok=%v → has_last=%v last=%g history=%d; want %v %v %g %d",
					ok, st.HasLast, st.LastResult, len(st.History), tt.wantOK, tt.wantLast, tt.wantRes, tt.wantHist)
			}
		})
	}
	if st.Operations != 2 || st.Undos != 2 {
		t.Errorf("operations=%d undos=%d, want 2 and 2", st.Operations, st.Undos)
	}
}

func TestHistoryIsBounded(t *testing.T) {
	var st SessionState
	for i := 0; i < maxHistory+10; i++ {
		st.record(Add, float64(i), 1, float64(i+1))
	}
	if len(st.History) != maxHistory || st.History[0].A != 10 || st.Operations != maxHistory+10 {
		t.Errorf("history %d entries from a=%g, operations %d", len(st.History), st.History[0].A, st.Operations)
	}
}

func TestMostUsedOp(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want Op
	}{
		{"none yet", nil, ""},
		{"the most frequent", []Op{Add, Multiply, Multiply}, Multiply},
		{"a tie goes to the first alphabetically", []Op{Subtract, Add}, Add},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st SessionState
			for _, op := range tt.ops {
				st.record(op, 1, 1, 1)
			}
			if got := st.MostUsed(); got != tt.want {
				t.Errorf("MostUsed = %q, want %q", got, tt.want)
			}
		})
	}
}

// Over HTTP: undo with an empty history is a 409 with a JSON error and the
// session unchanged; history and stats need a session.
func TestFeatureEndpoints(t *testing.T) {
	srv, run := serve(t, Stateful)
	tests := []struct {
		name, method, path string
		withSession        bool
		status             int
		code               string
	}{
		{"undo with empty history", "POST", "/undo", true, http.StatusConflict, "empty_history"},
		{"undo without a session", "POST", "/undo", false, http.StatusUnauthorized, "no_session"},
		{"history without a session", "GET", "/history", false, http.StatusUnauthorized, "no_session"},
		{"stats without a session", "GET", "/stats", false, http.StatusUnauthorized, "no_session"},
		{"history of a new session", "GET", "/history", true, http.StatusOK, ""},
		{"undo with GET", "GET", "/undo", true, http.StatusMethodNotAllowed, "method"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(run.URL(), true)
			defer c.Close()
			var token string
			if tt.withSession {
				rep, err := c.Post(context.Background(), "/session", nil)
				if err != nil {
					t.Fatal(err)
				}
				token = rep.Cookie
			}
			rep, _ := c.Do(context.Background(), tt.method, tt.path, nil)
			if rep.Status != tt.status || rep.Code != tt.code {
				t.Errorf("got %d %q (%s), want %d %q", rep.Status, rep.Code, rep.Body, tt.status, tt.code)
			}
			if token != "" {
				st, _, _ := srv.Session(context.Background(), token)
				if st.Operations != 0 || st.Undos != 0 || st.HasLast {
					t.Errorf("session changed: %+v", st)
				}
			}
		})
	}
}

func TestStatsOverHTTP(t *testing.T) {
	_, run := serve(t, Stateful)
	c := NewClient(run.URL(), true)
	defer c.Close()
	startSession(t, c) // 10 + 5
	ctx := context.Background()
	for _, b := range []float64{2, 3} {
		if rep, err := c.Post(ctx, "/use_last", CalcRequest{Op: Multiply, B: num(b)}); err != nil || rep.Status != 200 {
			t.Fatalf("%+v %v", rep, err)
		}
	}
	rep, err := c.Get(ctx, "/stats")
	if err != nil {
		t.Fatal(err)
	}
	var s Stats
	if err := json.Unmarshal(rep.Body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Operations != 3 || s.MostUsedOp != Multiply || s.LastResult != 90 || s.HistoryLen != 3 {
		t.Errorf("stats %+v", s)
	}
}
