package tcpstate_test

import (
	"io"
	"strings"
	"testing"

	. "github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// A posted read (postread.go): the buffer of a RECEIVE that waits is lent to
// the engine, and in-order text lands in it without passing through the
// receive ring. Each row is a ladder; the window in the ACKs shows whether
// the ring held the text.

func TestPostedReadPlacesInOrderTextOnly(t *testing.T) {
	zeros := func(n int) string { return strings.Repeat("\x00", n) }
	tcptest.RunCases(t, delackConfig(), []tcptest.Case{
		{Name: "in-order text lands in the posted buffer, the window stays whole", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(3 * testMSS),
			tcptest.Send(ACK, 301, 101, tcptest.Len(testMSS)),
			tcptest.Send(ACK, 301+testMSS, 101, tcptest.Len(testMSS)),
			tcptest.Want(ACK, 101, 301+2*testMSS, tcptest.Win(testRcvBuf)),
			tcptest.WantPlaced(zeros(2 * testMSS)),
			tcptest.WantRead("", nil),
		}},
		{Name: "without a posted buffer the ring holds the text and the window narrows", From: Established, Steps: []tcptest.Step{
			tcptest.Send(ACK, 301, 101, tcptest.Len(testMSS)),
			tcptest.Send(ACK, 301+testMSS, 101, tcptest.Len(testMSS)),
			tcptest.Want(ACK, 101, 301+2*testMSS, tcptest.Win(testRcvBuf-2*testMSS)),
			tcptest.WantRead(zeros(2*testMSS), nil),
		}},
		{Name: "text beyond the buffer goes to the ring, after it in order", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(3),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("hello")),
			tcptest.WantPlaced("hel"),
			tcptest.WantRead("lo", nil),
		}},
		{Name: "later segments fill the buffer until it is taken", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(8),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("abc")),
			tcptest.Send(PSH|ACK, 304, 101, tcptest.Text("defgh")),
			tcptest.Send(PSH|ACK, 309, 101, tcptest.Text("ij")),
			tcptest.WantPlaced("abcdefgh"),
			tcptest.WantRead("ij", nil),
		}},
		{Name: "nothing is placed while unread text waits in the ring", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("ab")),
			tcptest.PostRead(10),
			tcptest.Send(PSH|ACK, 303, 101, tcptest.Text("cd")),
			tcptest.WantPlaced(""),
			tcptest.WantRead("abcd", nil),
		}},
		{Name: "out-of-order text is not placed, nor the text that fills the gap before it", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(20),
			tcptest.Send(PSH|ACK, 306, 101, tcptest.Text("world")),
			tcptest.Want(ACK, 101, 301),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("hello")),
			tcptest.Want(ACK, 101, 311),
			tcptest.WantPlaced(""),
			tcptest.WantRead("helloworld", nil),
		}},
		{Name: "a retransmission of placed text is not placed again", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(20),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("hello")),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("hello")),
			tcptest.Want(ACK, 101, 306),
			tcptest.WantPlaced("hello"),
		}},
		{Name: "text beyond the window is neither placed nor kept", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(testRcvBuf + 1000),
			tcptest.Send(ACK, 301, 101, tcptest.Len(testRcvBuf+500)),
			tcptest.Want(ACK, 101, 301+testRcvBuf),
			tcptest.WantPlaced(zeros(testRcvBuf)),
			tcptest.WantRead("", nil),
		}},
		{Name: "text that fills the buffer and goes beyond the window is trimmed at the window", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(1000),
			tcptest.Send(ACK, 301, 101, tcptest.Len(testRcvBuf+500)),
			tcptest.Want(ACK, 101, 301+testRcvBuf),
			tcptest.WantPlaced(zeros(1000)),
			tcptest.WantRead(zeros(testRcvBuf-1000), nil),
		}},
		{Name: "the FIN after placed text is reached", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(10),
			tcptest.Send(FIN|PSH|ACK, 301, 101, tcptest.Text("bye")),
			tcptest.Want(ACK, 101, 305),
			tcptest.WantState(CloseWait),
			tcptest.WantPlaced("bye"),
			tcptest.WantRead("", io.EOF),
		}},
		{Name: "a loan ended before any segment places nothing", From: Established, Steps: []tcptest.Step{
			tcptest.PostRead(10),
			tcptest.WantPlaced(""),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("late")),
			tcptest.WantRead("late", nil),
		}},
	})
}
