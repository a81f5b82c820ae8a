package tcptest_test

import (
	"testing"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// TestRSTAndFINTable is issue 12's four-row table, written as a user of
// the package writes it.
func TestRSTAndFINTable(t *testing.T) {
	tcptest.RunCases(t, tcpstate.Config{}, []tcptest.Case{
		{"RST in SYN-RECEIVED returns to LISTEN", tcpstate.SynReceived, []tcptest.Step{
			tcptest.Send(tcpstate.RST, 301, 0), tcptest.WantNone(), tcptest.WantState(tcpstate.Listen)}},
		{"FIN in ESTABLISHED moves to CLOSE-WAIT", tcpstate.Established, []tcptest.Step{
			tcptest.Send(tcpstate.FIN|tcpstate.ACK, 301, 101), tcptest.Want(tcpstate.ACK, 101, 302),
			tcptest.WantState(tcpstate.CloseWait)}},
		{"an exact RST (SEQ = RCV.NXT) resets ESTABLISHED", tcpstate.Established, []tcptest.Step{
			tcptest.Send(tcpstate.RST, 301, 0), tcptest.WantNone(), tcptest.WantState(tcpstate.Closed),
			tcptest.WantErr(tcpstate.ErrConnectionReset)}},
		{"an in-window RST draws a challenge ACK", tcpstate.Established, []tcptest.Step{
			tcptest.Send(tcpstate.RST, 401, 0), tcptest.WantState(tcpstate.Established),
			tcptest.WantExact(tcpstate.Segment{Flags: tcpstate.ACK, Seq: 101, Ack: 301, Window: 65535})}},
	})
}
