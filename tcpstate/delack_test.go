package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Delayed ACK (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2, RFC 5681 §4.2) as
// ladders. delackConfig leaves quick-ACK mode out, so the first segment is
// already delayed.

const testDelACK = 40 * time.Millisecond

func delackConfig() Config {
	c := testConfig()
	c.DelayedACK, c.QuickACKs = testDelACK, -1
	return c
}

func TestDelayedACK(t *testing.T) {
	full := tcptest.Len(testMSS)
	tcptest.RunCases(t, delackConfig(), []tcptest.Case{
		{Name: "an in-order segment's ACK waits the delayed-ACK timer", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("hello")),
			tcptest.WantNone(),
			tcptest.Advance(testDelACK - time.Millisecond),
			tcptest.WantNone(),
			tcptest.Advance(time.Millisecond),
			tcptest.Want(ACK, 101, 306),
		}},
		{Name: "every second full-sized segment is acknowledged at once", From: Established, Steps: []tcptest.Step{
			tcptest.Send(ACK, 301, 101, full),
			tcptest.WantNone(),
			tcptest.Send(ACK, 301+testMSS, 101, full),
			tcptest.Want(ACK, 101, 301+2*testMSS),
			tcptest.Send(ACK, 301+2*testMSS, 101, full),
			tcptest.WantNone(),
			tcptest.Send(ACK, 301+3*testMSS, 101, full),
			tcptest.Want(ACK, 101, 301+4*testMSS),
		}},
		{Name: "small segments are not full-sized: one ACK for several", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(100)),
			tcptest.Send(PSH|ACK, 401, 101, tcptest.Len(100)),
			tcptest.Send(PSH|ACK, 501, 101, tcptest.Len(100)),
			tcptest.WantNone(),
			tcptest.Advance(testDelACK),
			tcptest.Want(ACK, 101, 601),
		}},
		{Name: "data sent in the meantime carries the ACK", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Text("ping")),
			tcptest.WantNone(),
			tcptest.Write("pong"),
			tcptest.Want(PSH|ACK, 101, 305, tcptest.Text("pong")),
			tcptest.Advance(testDelACK),
			tcptest.WantNone(), // nothing left to acknowledge
		}},
		{Name: "out of order: a duplicate ACK at once, and at once for the gap filled", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 311, 101, tcptest.Len(10)),
			tcptest.Want(ACK, 101, 301),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.Want(ACK, 101, 321),
		}},
		{Name: "a segment filling part of a gap is acknowledged at once", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 321, 101, tcptest.Len(10)),
			tcptest.Want(ACK, 101, 301), // out of order
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.Want(ACK, 101, 311), // in order, a gap still open before 321
		}},
		{Name: "later segments do not push the timer back", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.Advance(testDelACK - 10*time.Millisecond),
			tcptest.Send(PSH|ACK, 311, 101, tcptest.Len(10)),
			tcptest.WantNone(),
			tcptest.Advance(10 * time.Millisecond), // the first segment's deadline
			tcptest.Want(ACK, 101, 321),
		}},
		{Name: "a FIN is acknowledged at once", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.WantNone(),
			tcptest.Send(FIN|ACK, 311, 101),
			tcptest.Want(ACK, 101, 312),
			tcptest.WantState(CloseWait),
		}},
		{Name: "old data repeated: an ACK at once", From: Established, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.WantNone(),
			tcptest.Send(PSH|ACK, 301, 101, tcptest.Len(10)),
			tcptest.Want(ACK, 101, 311),
		}},
	})
}

// The states that accept data delay their ACKs alike (the state table's
// AcceptsData states).
func TestDelayedACKInEveryStateThatAcceptsData(t *testing.T) {
	var cases []tcptest.Case
	for _, st := range States() {
		if !st.AcceptsData() || st == SynReceived {
			continue
		}
		sndNxt, ack := Seq(101), Seq(101)
		if st.SendClosed() {
			sndNxt = 102 // our FIN is out
		}
		if st == FinWait2 {
			ack = 102 // and acknowledged
		}
		cases = append(cases, tcptest.Case{Name: st.String(), From: st, Steps: []tcptest.Step{
			tcptest.Send(PSH|ACK, 301, ack, tcptest.Len(10)),
			tcptest.WantNone(),
			tcptest.WantState(st),
			tcptest.Fire(),
			tcptest.Want(ACK, sndNxt, 311),
		}})
	}
	if len(cases) != 3 {
		t.Fatalf("%d states accept data after the handshake, want 3 (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2)", len(cases))
	}
	tcptest.RunCases(t, delackConfig(), cases)
}

func TestQuickACKModeAtTheStartOfAConnection(t *testing.T) {
	c := delackConfig()
	c.QuickACKs = 3
	h := tcptest.New(t, c).Reach(Established)
	seq := Seq(301)
	for i := range 3 {
		h.Send(PSH|ACK, seq, 101, tcptest.Len(10))
		seq += 10
		h.Want(ACK, 101, seq) // quick ACK i+1 of 3
		_ = i
	}
	h.Send(PSH|ACK, seq, 101, tcptest.Len(10))
	h.WantNone() // quick-ACK mode is over
	if !h.TCB().ACKDelayed {
		t.Fatalf("TCB.ACKDelayed false with an ACK held back: %v", h.TCB())
	}
	h.Fire()
	h.Want(ACK, 101, seq+10)
}

func TestDisableDelayedACKAcknowledgesEverySegment(t *testing.T) {
	c := delackConfig()
	c.DisableDelayedACK = true
	h := tcptest.New(t, c).Reach(Established)
	h.Send(PSH|ACK, 301, 101, tcptest.Len(10))
	h.Want(ACK, 101, 311)
	h.Send(PSH|ACK, 311, 101, tcptest.Len(10))
	h.Want(ACK, 101, 321)
}

func TestDelayedACKConfig(t *testing.T) {
	tests := []struct {
		name      string
		delay     time.Duration
		quick     int
		wantDelay time.Duration
		wantQuick int
	}{
		{"defaults: Linux's 40 ms and 16 quick ACKs", 0, 0, 40 * time.Millisecond, 16},
		{"a longer delay than 500 ms is clamped (MUST-40)", 2 * time.Second, 0, MaxDelayedACK, 16},
		{"-1 quick ACKs: none", 10 * time.Millisecond, -1, 10 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := WithDefaults(Config{DelayedACK: tt.delay, QuickACKs: tt.quick})
			if c.DelayedACK != tt.wantDelay || c.QuickACKs != tt.wantQuick {
				t.Errorf("DelayedACK %v QuickACKs %d, want %v %d", c.DelayedACK, c.QuickACKs, tt.wantDelay, tt.wantQuick)
			}
		})
	}
	if !strings.Contains(WithDefaults(Config{}).SWSOverride.String(), "200ms") {
		t.Errorf("SWSOverride default %v, want 200ms", WithDefaults(Config{}).SWSOverride)
	}
}
