package tcptest_test

import (
	"fmt"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// printT stands in for the *testing.T a test passes: it prints a broken
// expectation instead of stopping.
type printT struct{}

func (printT) Helper()                           {}
func (printT) Fatalf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// A passive close as a script: the peer's FIN takes the endpoint to
// CLOSE-WAIT, the user's CLOSE to LAST-ACK, the ACK of its FIN to CLOSED.
// The ladder is what a failing test prints, up to the failure.
func Example() {
	p := tcptest.New(printT{}, tcpstate.Config{})
	p.Reach(tcpstate.Established)
	p.Send(tcpstate.FIN|tcpstate.ACK, 301, 101, tcptest.Text("bye"))
	p.Want(tcpstate.ACK, 101, 305)
	p.WantState(tcpstate.CloseWait)
	p.Close()
	p.Want(tcpstate.FIN|tcpstate.ACK, 101, 305)
	p.Send(tcpstate.ACK, 305, 102)
	p.WantState(tcpstate.Closed)
	fmt.Print(p.Ladder())
	// Output:
	//      time  endpoint                                  peer
	//   +0.000s  CLOSED → SYN-SENT (active OPEN)           [user OPEN (active)]
	//   +0.000s  SYN-SENT                              -->  SYN seq=100 win=65535 len=0 mss=1460 ws=3 sackok ts=1000/0
	//   +0.000s  SYN-SENT → ESTABLISHED (rcv SYN,ACK)  <--  SYN|ACK seq=300 ack=101 win=64000 len=0 mss=1460
	//   +0.000s  ESTABLISHED                           -->  ACK seq=101 ack=301 win=65535 len=0
	//   +0.000s  ESTABLISHED → CLOSE-WAIT (rcv FIN)    <--  FIN|ACK seq=301 ack=101 win=64000 len=3
	//   +0.000s  CLOSE-WAIT                            -->  ACK seq=101 ack=305 win=65535 len=0
	//   +0.000s  CLOSE-WAIT → LAST-ACK (CLOSE)             [user CLOSE]
	//   +0.000s  LAST-ACK                              -->  FIN|ACK seq=101 ack=305 win=65535 len=0
	//   +0.000s  LAST-ACK → CLOSED (rcv ACK of FIN)    <--  ACK seq=305 ack=102 win=64000 len=0
}
