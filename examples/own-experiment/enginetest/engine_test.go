// Package enginetest is a table-driven test of statelab's TCP engine: a
// package of its own, with no TestMain, so it needs no namespace and runs
// anywhere `go test` does.
package enginetest

import (
	"testing"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// A table-driven test of statelab's TCP engine with the public harness:
// each row starts the engine in a state against a scripted peer, sends it
// segments and wants its answers, as a ladder reads. A failing row prints
// the expectation and the ladder so far.
func TestEngineAnswersResetsAndFINs(t *testing.T) {
	tcptest.RunCases(t, tcpstate.Config{}, []tcptest.Case{
		{Name: "RST in SYN-RECEIVED returns to LISTEN", From: tcpstate.SynReceived, Steps: []tcptest.Step{
			tcptest.Send(tcpstate.RST, 301, 0), tcptest.WantNone(), tcptest.WantState(tcpstate.Listen)}},
		{Name: "FIN in ESTABLISHED moves to CLOSE-WAIT", From: tcpstate.Established, Steps: []tcptest.Step{
			tcptest.Send(tcpstate.FIN|tcpstate.ACK, 301, 101), tcptest.Want(tcpstate.ACK, 101, 302),
			tcptest.WantState(tcpstate.CloseWait)}},
		{Name: "an exact RST (SEQ = RCV.NXT) resets ESTABLISHED", From: tcpstate.Established, Steps: []tcptest.Step{
			tcptest.Send(tcpstate.RST, 301, 0), tcptest.WantNone(), tcptest.WantState(tcpstate.Closed),
			tcptest.WantErr(tcpstate.ErrConnectionReset)}},
		{Name: "an in-window RST draws a challenge ACK (RFC 5961)", From: tcpstate.Established, Steps: []tcptest.Step{
			tcptest.Send(tcpstate.RST, 401, 0), tcptest.WantState(tcpstate.Established),
			tcptest.WantExact(tcpstate.Segment{Flags: tcpstate.ACK, Seq: 101, Ack: 301, Window: 65535})}},
	})
}
