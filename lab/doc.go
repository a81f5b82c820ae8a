// Package lab is statelab's experiment runner: the registry every experiment
// plugs into, the Env an experiment runs with (captures, checks, metrics, a
// ladder diagram), and the reports it produces, for people (text) and for
// programs (JSON Lines).
//
// An experiment is evidence, not a demo: it ends with checks that pass or
// fail, and its report says what was measured rather than what was expected.
package lab
