package lab

import "fmt"

// Holding is an experiment's row in the cross-protocol summary "who holds
// the state": where the state of one client lives in what the experiment
// ran. Every cell is written from this run's measurements (counts, bytes,
// what a restart was seen to lose), never from what the protocol promises.
type Holding struct {
	// ServerKeeps is what the server keeps per client, as measured
	// ("nothing until the token returns: 0 connections, +0 goroutines").
	ServerKeeps string `json:"server_keeps"`
	// ClientCarries is what the client carries and hands back
	// ("a 58-byte Retry token in its second Initial").
	ClientCarries string `json:"client_carries"`
	// RestartLoses is what a server restart lost in this run, or "not
	// restarted" where the experiment does not restart it.
	RestartLoses string `json:"restart_loses"`
	// CarriedBytes is what carrying the state costs on the wire, in bytes
	// per CarriedPer, measured from the capture or the endpoints' counts.
	CarriedBytes int    `json:"carried_bytes"`
	CarriedPer   string `json:"carried_per"`
}

// HoldingGroup names the report of the "who holds the state" summary.
const HoldingGroup = "who-holds-the-state"

// Holding records the experiment's row of "who holds the state". An
// experiment whose HoldsState is not set fails a check that says so: the
// target who-holds-the-state would not run it.
func (e *Env) Holding(h Holding) {
	if !e.exp.HoldsState {
		e.Check("declared as holding a row of who holds the state", false,
			"%s records a row but its Experiment.HoldsState is false, so `statelab run %s` skips it: set HoldsState", e.exp.Name, HoldingGroup)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.report.Holding = &h
}

// holdingSummary builds the cross-protocol summary from the reports of a
// run, or returns nil when fewer than two of them hold a row (a single
// experiment's report already says it all).
func holdingSummary(reports []*Report) *Report {
	rows := [][]string{{"experiment", "server keeps per client", "client carries", "a server restart loses", "carrying costs"}}
	for _, r := range reports {
		if r.Holding == nil || r.Summary {
			continue
		}
		h := r.Holding
		cost := "0 bytes"
		if h.CarriedBytes > 0 {
			cost = fmt.Sprintf("%d bytes %s", h.CarriedBytes, h.CarriedPer)
		}
		if r.Error != "" || len(r.Failed()) > 0 {
			cost += " (experiment failed)"
		}
		rows = append(rows, []string{r.Experiment, h.ServerKeeps, h.ClientCarries, h.RestartLoses, cost})
	}
	if len(rows) < 3 {
		return nil
	}
	return &Report{Experiment: HoldingGroup + "/*", Summary: true, Passed: true,
		Shows:  "who holds the state: the server signs a token, the client carries it back, the server checks it without looking anything up — each row from this run",
		Tables: []Table{{Title: "who holds the state", Rows: rows}}, Metrics: map[string]float64{}}
}
