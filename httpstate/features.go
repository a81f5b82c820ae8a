package httpstate

import (
	"net/http"
	"sort"
)

// maxHistory bounds a session's history: the oldest entries go first, so a
// long-lived session cannot grow without limit (in memory or in the store).
const maxHistory = 50

// HistoryEntry is one computation a session made, with what it replaced, so
// that undo can put the session back exactly as it was.
type HistoryEntry struct {
	Op          Op      `json:"op"`
	A           float64 `json:"a"`
	B           float64 `json:"b"`
	Result      float64 `json:"result"`
	PrevHasLast bool    `json:"prev_has_last"`
	PrevResult  float64 `json:"prev_result"`
}

// Stats is what GET /stats reports about a session.
type Stats struct {
	Operations int        `json:"operations"`
	Undos      int        `json:"undos"`
	MostUsedOp Op         `json:"most_used_op,omitempty"`
	OpCounts   map[Op]int `json:"op_counts"`
	HistoryLen int        `json:"history_len"`
	HasLast    bool       `json:"has_last"`
	LastResult float64    `json:"last_result"`
}

// record applies a successful computation to the session: last_result,
// history, operation count and per-op counts.
func (st *SessionState) record(op Op, a, b, res float64) {
	e := HistoryEntry{Op: op, A: a, B: b, Result: res, PrevHasLast: st.HasLast, PrevResult: st.LastResult}
	hist := make([]HistoryEntry, 0, min(len(st.History)+1, maxHistory))
	if len(st.History) >= maxHistory {
		hist = append(hist, st.History[len(st.History)-maxHistory+1:]...)
	} else {
		hist = append(hist, st.History...)
	}
	st.History = append(hist, e)
	counts := make(map[Op]int, len(st.OpCounts)+1)
	for k, v := range st.OpCounts {
		counts[k] = v
	}
	counts[op]++
	st.OpCounts = counts
	st.HasLast, st.LastResult = true, res
	st.Operations++
}

// undo reverts the newest history entry. It reports false, and leaves the
// session alone, when the history is empty.
func (st *SessionState) undo() (HistoryEntry, bool) {
	if len(st.History) == 0 {
		return HistoryEntry{}, false
	}
	e := st.History[len(st.History)-1]
	st.History = append([]HistoryEntry(nil), st.History[:len(st.History)-1]...)
	st.HasLast, st.LastResult = e.PrevHasLast, e.PrevResult
	st.Undos++
	return e, true
}

// MostUsed is the operation used most often; ties go to the first in
// alphabetical order, so the answer is stable.
func (st SessionState) MostUsed() Op {
	ops := make([]Op, 0, len(st.OpCounts))
	for op := range st.OpCounts {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool {
		ci, cj := st.OpCounts[ops[i]], st.OpCounts[ops[j]]
		if ci != cj {
			return ci > cj
		}
		return ops[i] < ops[j]
	})
	if len(ops) == 0 {
		return ""
	}
	return ops[0]
}

// Stats summarises the session.
func (st SessionState) Stats() Stats {
	counts := st.OpCounts
	if counts == nil {
		counts = map[Op]int{}
	}
	return Stats{Operations: st.Operations, Undos: st.Undos, MostUsedOp: st.MostUsed(), OpCounts: counts,
		HistoryLen: len(st.History), HasLast: st.HasLast, LastResult: st.LastResult}
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	st, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	h := st.History
	if h == nil {
		h = []HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"history": h})
}

func (s *Server) undoLast(w http.ResponseWriter, r *http.Request) {
	st, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	e, ok := st.undo()
	if !ok {
		writeError(w, &apiError{status: http.StatusConflict, code: "empty_history",
			msg: "nothing to undo: this session's history is empty"})
		return
	}
	s.sessions.Put(r.Context(), "state", st)
	reply := map[string]any{"undone": e, "has_last": st.HasLast}
	if st.HasLast {
		reply["result"] = st.LastResult
	}
	writeJSON(w, http.StatusOK, reply)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	st, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st.Stats())
}
