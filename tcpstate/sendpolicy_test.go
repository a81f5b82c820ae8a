package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// The send policy: Nagle (RFC 896) and sender SWS avoidance (RFC 9293
// §3.8.6.2.1, MUST-38), as ladders. The peer acknowledges at once.

func nagleConfig(noDelay, noSWS bool) Config {
	c := testConfig()
	c.NoDelay, c.DisableSenderSWS = noDelay, noSWS
	return c
}

func TestNagleHoldsASmallSegmentUntilTheDataInFlightIsAcknowledged(t *testing.T) {
	tcptest.RunCases(t, nagleConfig(false, false), []tcptest.Case{
		{Name: "the second small write waits for the ACK of the first", From: Established, Steps: []tcptest.Step{
			tcptest.Write("GET "),
			tcptest.Want(PSH|ACK, 101, 301, tcptest.Text("GET ")),
			tcptest.Write("/x"),
			tcptest.WantNone(), // Nagle: "GET " is unacknowledged
			tcptest.Write("\n"),
			tcptest.WantNone(),
			tcptest.Send(ACK, 301, 105),
			tcptest.Want(PSH|ACK, 105, 301, tcptest.Text("/x\n")), // both writes in one segment
		}},
		{Name: "a full-sized segment is not held, the short tail is", From: Established, Steps: []tcptest.Step{
			tcptest.Write("a"),
			tcptest.Want(PSH|ACK, 101, 301, tcptest.Len(1)),
			tcptest.Write(strings.Repeat("b", testMSS+500)),
			tcptest.Want(ACK, 102, 301, tcptest.Len(testMSS)),
			tcptest.WantNone(), // the 500-octet tail waits
			tcptest.Send(ACK, 301, 102+testMSS),
			tcptest.Want(PSH|ACK, 102+testMSS, 301, tcptest.Len(500)),
		}},
		{Name: "CLOSE-WAIT sends as ESTABLISHED does", From: CloseWait, Steps: []tcptest.Step{
			tcptest.Write("a"),
			tcptest.Want(PSH|ACK, 101, 302, tcptest.Len(1)),
			tcptest.Write("b"),
			tcptest.WantNone(),
			tcptest.Send(ACK, 302, 102),
			tcptest.Want(PSH|ACK, 102, 302, tcptest.Text("b")),
		}},
		{Name: "a FIN is never held: CLOSE sends the held tail with it", From: Established, Steps: []tcptest.Step{
			tcptest.Write("a"),
			tcptest.Want(PSH|ACK, 101, 301, tcptest.Len(1)),
			tcptest.Write("b"),
			tcptest.WantNone(),
			tcptest.Close(),
			tcptest.Want(PSH|FIN|ACK, 102, 301, tcptest.Text("b")),
			tcptest.WantState(FinWait1),
		}},
	})
}

func TestNoDelaySendsSmallSegmentsWithDataInFlight(t *testing.T) {
	tcptest.RunCases(t, nagleConfig(true, false), []tcptest.Case{
		{Name: "Config.NoDelay: both small writes go at once", From: Established, Steps: []tcptest.Step{
			tcptest.Write("GET "),
			tcptest.Want(PSH|ACK, 101, 301, tcptest.Text("GET ")),
			tcptest.Write("/x"),
			tcptest.Want(PSH|ACK, 105, 301, tcptest.Text("/x")),
		}},
	})
	t.Run("SetNoDelay sends what Nagle held, and SetNoDelay(false) holds again", func(t *testing.T) {
		h := tcptest.New(t, nagleConfig(false, false)).Reach(Established)
		h.Write("a")
		h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
		h.Write("b")
		h.WantNone()
		if got := h.TCB().Held; got != HoldNagle {
			t.Fatalf("TCB.Held = %q, want nagle", got)
		}
		setNoDelay(h, true)
		h.Want(PSH|ACK, 102, 301, tcptest.Text("b"))
		setNoDelay(h, false)
		h.Write("c")
		h.WantNone()
	})
}

func setNoDelay(h *tcptest.Peer, on bool) {
	_ = h.Call("SetNoDelay", func(e *Endpoint, now time.Duration, out *Output) error {
		e.SetNoDelay(now, on, out)
		return nil
	})
}

// MUST-38: with 3,000 octets queued and the peer opening a 10-octet window,
// no 10-octet segment goes out at once; the override timer sends it if no
// larger window comes first.
func TestSenderSWSAvoidance(t *testing.T) {
	queued := strings.Repeat("q", 3000)
	shut := []tcptest.Step{
		tcptest.Send(ACK, 301, 101, tcptest.Win(0)),
		tcptest.Write(queued),
		tcptest.WantNone(), // window shut: the persist timer's business
	}
	steps := func(more ...tcptest.Step) []tcptest.Step { return append(append([]tcptest.Step{}, shut...), more...) }
	def := WithDefaults(testConfig())
	tcptest.RunCases(t, nagleConfig(false, false), []tcptest.Case{
		{Name: "a 10-octet window does not draw a 10-octet segment", From: Established, Steps: steps(
			tcptest.Send(ACK, 301, 101, tcptest.Win(10)),
			tcptest.WantNone(),
			tcptest.Advance(def.SWSOverride-time.Millisecond),
			tcptest.WantNone(),
			tcptest.Advance(time.Millisecond), // the override timeout
			tcptest.Want(ACK, 101, 301, tcptest.Len(10)),
		)},
		{Name: "a full segment's window before the override sends a full segment", From: Established, Steps: steps(
			tcptest.Send(ACK, 301, 101, tcptest.Win(10)),
			tcptest.WantNone(),
			tcptest.Send(ACK, 301, 101, tcptest.Win(testMSS)),
			tcptest.Want(ACK, 101, 301, tcptest.Len(testMSS)),
		)},
		{Name: "all the queued data fitting the window goes", From: Established, Steps: []tcptest.Step{
			tcptest.Send(ACK, 301, 101, tcptest.Win(0)),
			tcptest.Write("0123456789"),
			tcptest.WantNone(),
			tcptest.Send(ACK, 301, 101, tcptest.Win(10)),
			tcptest.Want(PSH|ACK, 101, 301, tcptest.Len(10)),
		}},
	})
	tcptest.RunCases(t, nagleConfig(false, true), []tcptest.Case{
		{Name: "DisableSenderSWS: the 10-octet segment goes at once", From: Established, Steps: steps(
			tcptest.Send(ACK, 301, 101, tcptest.Win(10)),
			tcptest.Want(ACK, 101, 301, tcptest.Len(10)),
		)},
	})
}

// Fs = 1/2: a short segment goes when it fills at least half the largest
// window the peer has offered.
func TestSenderSWSSendsHalfTheLargestWindow(t *testing.T) {
	h := tcptest.New(t, nagleConfig(true, false))
	h.OpenPassive()
	h.Send(SYN, 300, 0, tcptest.MSS(testMSS), tcptest.Win(1200))
	h.Want(SYN|ACK, 100, 301)
	h.Send(ACK, 301, 101, tcptest.Win(1200))
	h.Write(strings.Repeat("s", 3000))
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	h.WantNone() // 200 octets of room: less than half of 1200
	h.Send(ACK, 301, 101+testMSS, tcptest.Win(599))
	h.WantNone() // 599: still less than half
	h.Send(ACK, 301, 101+testMSS, tcptest.Win(600))
	h.Want(ACK, 101+testMSS, 301, tcptest.Len(600)) // half the largest window
}

// A retransmission after a timeout sends from SND.UNA as much as a segment
// holds, the data Nagle held included; the hold is then over.
func TestRetransmissionEndsTheNagleHold(t *testing.T) {
	h := tcptest.New(t, nagleConfig(false, false)).Reach(Established)
	h.Write("a")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	h.Write("b")
	h.WantNone()
	h.Fire() // the RTO
	h.Want(PSH|ACK, 101, 301, tcptest.Text("ab"))
	if tc := h.TCB(); tc.Held != HoldNone {
		t.Fatalf("TCB.Held = %q after the retransmission sent everything: %v", tc.Held, &tc)
	}
}
