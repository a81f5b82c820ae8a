// Package lab is statelab's public experiment API: the Experiment a lab
// runs, the Env it runs with (captures with comments and secrets, checks,
// metrics, ladder diagrams, tables, seeded random streams, state shared by
// one run), the Catalogue a program lists explicitly, the reports it
// produces for people (text) and programs (JSON Lines), and Main, which gives
// any program statelab's command line inside its rootless namespace.
//
// An experiment is evidence, not a demo: it ends with checks that pass or
// fail, its report says what was measured rather than what was expected,
// and a capture known to be short fails its own check instead of any
// protocol's (Env.CaptureComplete).
//
//	experiment.go  Experiment, Catalogue (Select with nearest-name suggestions), EnvError
//	env.go         Env: captures, checks, CaptureComplete, metrics, ladders, Stream/Bytes, RunState
//	runner.go      Options, RunOne, Catalogue.Run, RunState (Store, Load, LoadOrStore), seeds
//	summary.go     Summary: a group's conclusion across its experiments
//	holding.go     Holding: an experiment's row of "who holds the state", across protocols
//	report.go      Report, Check, text and JSON forms
//	ladder.go      Ladder: the sequence diagram, ◇ for rows an endpoint reported; rows typed (Fate) and timed
//	plot.go        Plot: a picture's data (xy, timeline, bars; typed points with a Fate), Env.Plot
//	width.go       TermWidth: the columns a text report fits (COLUMNS, the terminal, 80)
//	wrap.go        wrapping text to a width without cutting a word such as PSH|ACK
//	glossary.go    Term, AddTerm: first-met terms explained once per text report
//	shortened.go   Env.Shortened: a timer shortened for the lab, with the RFC's value
//	format.go      ErrText, OK, KV, List: errors, maps and lists in a report's words
//	main.go        Main, RunFlags, RunTargets: the command line, signals, exit statuses
//
// Subpackages: capture (packet capture and pcapng), annotate (the
// machine-readable [statelab …] block of packet comments and the Wireshark
// plugin generated from it), sandbox (the rootless namespace), subproc
// (servers as separate processes), labtest (tests), htmlreport (run --html:
// the reports as one web page; Catalogue.SetHTML), benchcmp (the benches'
// one method: interleaved rounds, per-round ratios and CPU per unit of work).
package lab
