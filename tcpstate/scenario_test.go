package tcpstate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

func TestSimultaneousOpen(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.OpenActive()
	h.Want(SYN, 100, 0)
	h.Send(SYN, 300, 0, tcptest.MSS(testMSS)) // the peer's SYN crosses ours
	h.Want(SYN|ACK, 100, 301)
	h.WantState(SynReceived)
	h.Send(SYN|ACK, 300, 101) // the peer's answer to our SYN
	h.WantNone()
	h.WantState(Established)
	if tc := h.TCB(); tc.SndUna != 101 || tc.RcvNxt != 301 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestSimultaneousCloseThroughClosing(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Close()
	h.Want(FIN|ACK, 101, 301)
	h.Send(FIN|ACK, 301, 101) // the peer's FIN crosses ours
	h.Want(ACK, 102, 302)
	h.WantState(Closing)
	h.Send(ACK, 302, 102)
	h.WantState(TimeWait)
	entered := h.Now()
	h.Fire()
	h.WantState(Closed)
	if h.Now()-entered != 2*testMSL {
		t.Fatalf("TIME-WAIT lasted %v, want 2*MSL=%v", h.Now()-entered, 2*testMSL)
	}
}

func TestTimeWaitReACKsRetransmittedFINAndRestarts2MSL(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(TimeWait)
	h.Advance(time.Second)
	h.Send(FIN|ACK, 301, 102) // our ACK of its FIN was lost
	h.Want(ACK, 102, 302)
	at, ok := h.Endpoint().TimerDeadline(TimerTimeWait)
	if !ok || at != h.Now()+2*testMSL {
		t.Fatalf("time-wait deadline %v (armed %v), want %v", at, ok, h.Now()+2*testMSL)
	}
	h.Advance(2*testMSL - time.Millisecond)
	h.WantState(TimeWait)
	h.Advance(time.Millisecond)
	h.WantState(Closed)
}

func TestActiveCloseFullLadder(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Write("hello")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(5))
	h.Close()
	h.Want(FIN|ACK, 106, 301)
	h.Send(ACK, 301, 107)
	h.WantState(FinWait2)
	h.Send(PSH|ACK, 301, 107, tcptest.Text("bye"))
	h.Want(ACK, 107, 304)
	h.Send(FIN|ACK, 304, 107)
	h.Want(ACK, 107, 305)
	h.WantState(TimeWait)
	if s, err := h.Read(); s != "bye" || err != nil {
		t.Fatalf("read %q %v", s, err)
	}
	if _, err := h.Read(); err == nil || err.Error() != "EOF" {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestPassiveCloseFullLadder(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Send(FIN|ACK, 301, 101)
	h.Want(ACK, 101, 302)
	h.WantState(CloseWait)
	h.Write("late data") // half-close: we may still send
	h.Want(PSH|ACK, 101, 302, tcptest.Len(9))
	h.Close()
	h.Want(FIN|ACK, 110, 302)
	h.WantState(LastAck)
	h.Send(ACK, 302, 111)
	h.WantState(Closed)
	if h.Endpoint().Err() != nil {
		t.Fatal(h.Endpoint().Err())
	}
}

func TestRSTInEachSynchronizedStateSignalsOrDeletes(t *testing.T) {
	tests := []struct {
		state State
		rcv   Seq
		err   error
		event EventKind
	}{
		{Established, 301, ErrConnectionReset, EventReset},
		{FinWait1, 301, ErrConnectionReset, EventReset},
		{FinWait2, 301, ErrConnectionReset, EventReset},
		{CloseWait, 302, ErrConnectionReset, EventReset},
		{Closing, 302, nil, 0},
		{LastAck, 302, nil, 0},
		{TimeWait, 302, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.state.String(), func(t *testing.T) {
			h := tcptest.New(t, testConfig())
			h.Reach(tt.state)
			h.Send(RST, tt.rcv+1, 0) // in window: challenge ACK, no reset
			if len(h.Pending()) != 1 || h.Pending()[0].Flags != ACK {
				t.Fatalf("want challenge ACK, got %v", h.Pending())
			}
			h.Discard()
			h.WantState(tt.state)
			h.Send(RST, tt.rcv, 0) // exactly RCV.NXT: reset
			h.WantNone()
			h.WantState(Closed)
			if !errors.Is(h.Endpoint().Err(), tt.err) || (tt.err == nil && h.Endpoint().Err() != nil) {
				t.Fatalf("Err() = %v, want %v", h.Endpoint().Err(), tt.err)
			}
			if tt.err != nil {
				if !h.HasEvent(tt.event) {
					t.Fatalf("no %v event", tt.event)
				}
				if _, err := h.Read(); !errors.Is(err, tt.err) {
					t.Fatalf("Receive: %v", err)
				}
			}
			if _, armed := h.Endpoint().NextTimer(); armed {
				t.Fatal("timer still armed in CLOSED")
			}
		})
	}
}

func TestRSTRefusesActiveOpen(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(SynSent)
	h.Send(RST|ACK, 0, 200) // ACK does not cover our SYN: ignored
	h.WantState(SynSent)
	h.Send(RST|ACK, 0, 101)
	h.WantState(Closed)
	if !errors.Is(h.Endpoint().Err(), ErrConnectionRefused) || !h.HasEvent(EventRefused) {
		t.Fatalf("Err() = %v", h.Endpoint().Err())
	}
	if _, err := h.Endpoint().Send(h.Now(), []byte("x"), nil); !errors.Is(err, ErrConnectionRefused) {
		t.Fatalf("Send after refusal: %v", err)
	}
}

func TestChallengeACKsAreRateLimited(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	for range 5 {
		h.Send(RST, 400, 0)
	}
	if len(h.Pending()) != testChallenge {
		t.Fatalf("%d challenge ACKs in one interval, want %d", len(h.Pending()), testChallenge)
	}
	h.Discard()
	h.Send(SYN, 301, 0) // a SYN also draws a (limited) challenge ACK
	h.WantNone()
	h.Advance(testChallengeDur)
	h.Send(SYN, 301, 0)
	h.Want(ACK, 101, 301)
	h.WantState(Established)
}

func TestSequenceNumbersWrapMidStream(t *testing.T) {
	cfg := testConfig()
	cfg.ISS = func() Seq { return 0xfffffff0 }
	h := tcptest.New(t, cfg)
	const peer Seq = 0xfffffffa
	h.OpenActive()
	h.Want(SYN, 0xfffffff0, 0)
	h.Send(SYN|ACK, peer, 0xfffffff1, tcptest.MSS(testMSS))
	h.Want(ACK, 0xfffffff1, peer+1)
	// 40 bytes each way cross 2^32.
	h.Write(strings.Repeat("a", 40))
	h.Want(PSH|ACK, 0xfffffff1, peer+1, tcptest.Len(40))
	h.Send(PSH|ACK, peer+1, 0x19, tcptest.Text(strings.Repeat("b", 40)))
	h.Want(ACK, 0x19, 0x23)
	tc := h.TCB()
	if tc.SndUna != 0x19 || tc.SndNxt != 0x19 || tc.RcvNxt != 0x23 {
		t.Fatalf("TCB after wrap: %v", &tc)
	}
	// Out-of-order data just past the wrap is reassembled.
	h.Send(PSH|ACK, 0x23+5, 0x19, tcptest.Text("world"))
	h.Want(ACK, 0x19, 0x23)
	h.Send(PSH|ACK, 0x23, 0x19, tcptest.Text("hello"))
	h.Want(ACK, 0x19, 0x23+10)
	if s, _ := h.Read(); s != strings.Repeat("b", 40)+"helloworld" {
		t.Fatalf("read %q", s)
	}
}

func TestRTOBackoffDoublesUntilMaxThenTimesOut(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRTO = time.Second
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Write("x")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	start := h.Now()
	var gaps []time.Duration
	prev := start
	for h.Endpoint().State() == Established {
		h.Fire()
		gaps = append(gaps, h.Now()-prev)
		prev = h.Now()
		if h.Endpoint().State() == Established {
			h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
		}
	}
	// The handshake took no time, so RTO = max(MinRTO, 0+max(G, 0)) = 200ms;
	// it doubles on every expiry (RFC 6298 (5.5)) and stops at MaxRTO = 1s.
	ms := time.Millisecond
	want := []time.Duration{200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}
	if len(gaps) != len(want) {
		t.Fatalf("gaps %v, want %v", gaps, want)
	}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("gaps %v, want %v", gaps, want)
		}
	}
	if !errors.Is(h.Endpoint().Err(), ErrTimeout) || !h.HasEvent(EventTimeout) {
		t.Fatalf("Err() = %v", h.Endpoint().Err())
	}
}

func TestKarnNoSampleFromRetransmittedSegment(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	rto0 := h.TCB().RTO
	h.Write("x")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	h.Fire() // retransmit; RTO doubles
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	h.Advance(10 * time.Millisecond)
	h.Send(ACK, 301, 102) // ambiguous ACK: no sample
	tc := h.TCB()
	if tc.SRTT != 0 || tc.RTO != 2*rto0 {
		t.Fatalf("SRTT=%v RTO=%v; want no sample and backed-off RTO %v", tc.SRTT, tc.RTO, 2*rto0)
	}
	// A fresh segment is timed and its sample replaces the backed-off RTO.
	h.Write("y")
	h.Want(PSH|ACK, 102, 301, tcptest.Len(1))
	h.Advance(100 * time.Millisecond)
	h.Send(ACK, 301, 103)
	tc = h.TCB()
	// The handshake gave a first sample R=0 (SRTT=0, RTTVAR=0), so R=100ms
	// is smoothed in (RFC 6298 (2.3)): RTTVAR = 1/4*100 = 25ms, SRTT =
	// 1/8*100 = 12.5ms, RTO = max(MinRTO, 12.5ms+4*25ms) = MinRTO.
	if tc.SRTT != 12500*time.Microsecond || tc.RTTVar != 25*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("SRTT=%v RTTVAR=%v RTO=%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

func TestRTTSampleFromHandshakeAndSmoothing(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.OpenActive()
	h.Want(SYN, 100, 0)
	h.Advance(40 * time.Millisecond)
	h.Send(SYN|ACK, 300, 101)
	h.Want(ACK, 101, 301)
	tc := h.TCB()
	// First sample R=40ms: SRTT=R, RTTVAR=R/2, RTO=max(MinRTO, SRTT+4*RTTVAR).
	if tc.SRTT != 40*time.Millisecond || tc.RTTVar != 20*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("after first sample %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
	h.Write("x")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	h.Advance(120 * time.Millisecond)
	h.Send(ACK, 301, 102)
	tc = h.TCB()
	// RTTVAR = 3/4*20 + 1/4*|40-120| = 35ms; SRTT = 7/8*40 + 1/8*120 = 50ms.
	if tc.SRTT != 50*time.Millisecond || tc.RTTVar != 35*time.Millisecond || tc.RTO != 200*time.Millisecond {
		t.Fatalf("after second sample %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

func TestFastRetransmitAfterThreeDuplicateACKsAndNewRenoRecovery(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 10
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Write(strings.Repeat("z", 20*testMSS))
	for i := range 10 {
		h.Want(ACK, 101+Seq(i*testMSS), 301, tcptest.Len(testMSS))
	}
	h.WantNone()
	if tc := h.TCB(); tc.Cwnd != 10*testMSS || tc.Ssthresh != MaxWindow {
		t.Fatalf("cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	// Segments 1 and 3 are lost; 2, 4, 5 arrive and draw duplicate ACKs.
	h.Send(ACK, 301, 101)
	h.Send(ACK, 301, 101)
	h.WantNone()
	h.Send(ACK, 301, 101) // third duplicate: fast retransmit
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	tc := h.TCB()
	if tc.Ssthresh != 5*testMSS || tc.Cwnd != 8*testMSS {
		t.Fatalf("on entering recovery cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	// Each further duplicate inflates cwnd by one SMSS; at 11 segments the
	// window lets one new segment out.
	h.Send(ACK, 301, 101)
	h.Send(ACK, 301, 101)
	h.WantNone()
	h.Send(ACK, 301, 101)
	h.Want(ACK, 10101, 301, tcptest.Len(testMSS))
	// Partial ACK (up to the second hole): retransmit the hole at once.
	// cwnd deflates by the 2000 octets acknowledged and regains one SMSS
	// (11000-2000+1000 = 10000), which lets one more new segment out.
	h.Send(ACK, 301, 2101)
	h.Want(ACK, 2101, 301, tcptest.Len(testMSS))
	h.Want(ACK, 11101, 301, tcptest.Len(testMSS))
	h.WantNone()
	if c := h.TCB().Cwnd; c != 10*testMSS {
		t.Fatalf("after partial ACK cwnd=%d", c)
	}
	h.WantState(Established)
	// Full ACK of everything sent before recovery (recover = 10101): leave
	// with cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) = 3000.
	h.Send(ACK, 301, 10101)
	tc = h.TCB()
	if tc.Cwnd != 3*testMSS || tc.Ssthresh != 5*testMSS {
		t.Fatalf("after full ACK cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	if inRecovery, _, _ := Recovery(h.Endpoint()); inRecovery {
		t.Fatal("still in recovery after full ACK")
	}
}

func TestSlowStartThenCongestionAvoidance(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 2
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	SetSsthresh(h.Endpoint(), 4*testMSS)
	h.Write(strings.Repeat("q", 30*testMSS))
	h.Discard()
	h.Send(ACK, 301, 101+testMSS) // slow start: +1 SMSS
	if c := h.TCB().Cwnd; c != 3*testMSS {
		t.Fatalf("cwnd %d", c)
	}
	h.Send(ACK, 301, 101+2*testMSS)
	if c := h.TCB().Cwnd; c != 4*testMSS {
		t.Fatalf("cwnd %d", c)
	}
	h.Send(ACK, 301, 101+3*testMSS) // now cwnd >= ssthresh: +SMSS*SMSS/cwnd
	if c := h.TCB().Cwnd; c != 4*testMSS+testMSS/4 {
		t.Fatalf("cwnd %d", c)
	}
}

func TestRTOCollapsesCwndAndGoesBackN(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 4
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Write(strings.Repeat("r", 4*testMSS))
	h.Discard()
	h.Fire()
	h.Want(ACK, 101, 301, tcptest.Len(testMSS)) // only the first segment: cwnd = 1 SMSS
	h.WantNone()
	tc := h.TCB()
	if tc.Cwnd != testMSS || tc.Ssthresh != 2*testMSS {
		t.Fatalf("cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	h.Send(ACK, 301, 101+testMSS) // slow start again from SND.UNA
	h.Want(ACK, 101+testMSS, 301, tcptest.Len(testMSS))
	h.Want(ACK, 101+2*testMSS, 301, tcptest.Len(testMSS))
	h.WantNone()
}

func TestZeroWindowProbeThenReopen(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Send(ACK, 301, 101, tcptest.Win(0)) // the peer closes its window
	h.Write("abcdef")
	h.WantNone()
	if _, ok := h.Endpoint().TimerDeadline(TimerPersist); !ok {
		t.Fatal("persist timer not armed")
	}
	if _, ok := h.Endpoint().TimerDeadline(TimerRetransmit); ok {
		t.Fatal("retransmission timer armed with nothing in flight")
	}
	h.Fire()
	h.Want(ACK, 101, 301, tcptest.Len(1)) // one-octet probe
	first := h.Now()
	h.Send(ACK, 301, 101, tcptest.Win(0)) // probe refused
	h.Fire()
	h.Want(ACK, 101, 301, tcptest.Len(1)) // the same octet again, after a longer wait
	second := h.Now()
	h.Fire()
	h.Want(ACK, 101, 301, tcptest.Len(1))
	if g1, g2 := second-first, h.Now()-second; g2 != 2*g1 {
		t.Fatalf("probe gaps %v then %v, want doubling", g1, g2)
	}
	if _, _, retries := Recovery(h.Endpoint()); h.State() != Established || retries != 0 {
		t.Fatalf("probing must not count as retries: %d", retries)
	}
	// Linux refuses each probe with <ACK=SND.UNA><WND=0>. Those are not
	// duplicate ACKs (RFC 5681 §2): no fast retransmit into the closed
	// window, cwnd and ssthresh untouched.
	cc := h.TCB()
	for range 4 {
		h.Send(ACK, 301, 101, tcptest.Win(0))
		h.WantNone()
		h.Fire()
		h.Want(ACK, 101, 301, tcptest.Len(1))
	}
	inRecovery, dupAcks, _ := Recovery(h.Endpoint())
	if tc := h.TCB(); tc.Cwnd != cc.Cwnd || tc.Ssthresh != cc.Ssthresh || inRecovery || dupAcks != 0 {
		t.Fatalf("refused probes changed congestion state: cwnd %d->%d ssthresh %d->%d recovery %v dupacks %d",
			cc.Cwnd, tc.Cwnd, cc.Ssthresh, tc.Ssthresh, inRecovery, dupAcks)
	}
	h.Send(ACK, 301, 102, tcptest.Win(1000)) // probe accepted and window reopens
	h.Want(PSH|ACK, 102, 301, tcptest.Len(5))
	if _, ok := h.Endpoint().TimerDeadline(TimerPersist); ok {
		t.Fatal("persist still armed")
	}
	h.Send(ACK, 301, 107, tcptest.Win(1000))
	if tc := h.TCB(); tc.SndUna != 107 || tc.SndWnd != 1000 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestReceiverZeroWindowAndWindowUpdate(t *testing.T) {
	cfg := testConfig()
	cfg.RecvBufferSize = 2000
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Send(PSH|ACK, 301, 101, tcptest.Data(make([]byte, 1000)))
	s := h.Want(ACK, 101, 1301)
	if s.Window != 1000 {
		t.Fatalf("window %d", s.Window)
	}
	h.Send(PSH|ACK, 1301, 101, tcptest.Data(make([]byte, 1000)))
	if s := h.Want(ACK, 101, 2301); s.Window != 0 {
		t.Fatalf("window %d", s.Window)
	}
	// A probe into the zero window is answered with the zero window.
	h.Send(PSH|ACK, 2301, 101, tcptest.Text("p"))
	if s := h.Want(ACK, 101, 2301); s.Window != 0 {
		t.Fatalf("window %d", s.Window)
	}
	// Reading opens the window: a window update goes out.
	if got, _ := h.Read(); len(got) != 2000 {
		t.Fatalf("read %d", len(got))
	}
	if s := h.Want(ACK, 101, 2301); s.Window != 2000 {
		t.Fatalf("window update %d", s.Window)
	}
}

func TestOutOfOrderReassembly(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Send(PSH|ACK, 311, 101, tcptest.Text("klmnopqrst"))
	h.Want(ACK, 101, 301) // duplicate ACK for the hole
	h.Send(PSH|ACK, 331, 101, tcptest.Text("ABC"))
	h.Want(ACK, 101, 301)
	h.Send(FIN|ACK, 334, 101) // FIN after a hole waits for the hole
	h.Want(ACK, 101, 301)
	h.WantState(Established)
	h.Send(PSH|ACK, 306, 101, tcptest.Text("fghij")) // joins the next range, still a hole at 301
	h.Want(ACK, 101, 301)
	h.Send(PSH|ACK, 301, 101, tcptest.Text("abcdefg")) // overlaps the next range
	h.Want(ACK, 101, 321)
	h.Send(PSH|ACK, 321, 101, tcptest.Text("uvwxyz0123"))
	h.Want(ACK, 101, 335) // data through 333, then the FIN
	h.WantState(CloseWait)
	if s, err := h.Read(); s != "abcdefghijklmnopqrstuvwxyz0123ABC" || err != nil {
		t.Fatalf("read %q %v", s, err)
	}
}

func TestMSSAndWindowScaleOptions(t *testing.T) {
	t.Run("peer sends both", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenPassive()
		h.Send(SYN, 300, 0, tcptest.MSS(500), tcptest.WScale(2), tcptest.Win(1000))
		s := h.Want(SYN|ACK, 100, 301)
		if s.Options.MSS != testMSS || !s.Options.HasWScale {
			t.Fatalf("SYN,ACK options %+v", s.Options)
		}
		h.Send(ACK, 301, 101, tcptest.Win(1000)) // scaled: 4000 octets
		tc := h.TCB()
		if tc.SndMSS != 500 || tc.SndWScale != 2 || tc.SndWnd != 4000 {
			t.Fatalf("TCB mss=%d ws=%d wnd=%d", tc.SndMSS, tc.SndWScale, tc.SndWnd)
		}
		h.Write(strings.Repeat("m", 1200))
		h.Want(ACK, 101, 301, tcptest.Len(500))
		h.Want(ACK, 601, 301, tcptest.Len(500))
		h.WantNone() // Nagle: the 200-octet tail waits for the ACK of what is in flight
		h.Send(ACK, 301, 1101, tcptest.Win(1000))
		h.Want(PSH|ACK, 1101, 301, tcptest.Len(200))
	})
	t.Run("peer sends neither", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenPassive()
		h.Send(SYN, 300, 0, tcptest.Win(1000))
		s := h.Want(SYN|ACK, 100, 301)
		if s.Options.HasWScale {
			t.Fatal("window scale offered in SYN,ACK to a peer that did not")
		}
		h.Send(ACK, 301, 101, tcptest.Win(1000))
		tc := h.TCB()
		if tc.SndMSS != 536 || tc.SndWScale != 0 || tc.RcvWScale != 0 || tc.SndWnd != 1000 {
			t.Fatalf("TCB mss=%d ws=%d/%d wnd=%d", tc.SndMSS, tc.SndWScale, tc.RcvWScale, tc.SndWnd)
		}
	})
	t.Run("large buffer scales our window", func(t *testing.T) {
		cfg := testConfig()
		cfg.RecvBufferSize = 1 << 20
		h := tcptest.New(t, cfg)
		h.OpenActive()
		s := h.Want(SYN, 100, 0)
		if !s.Options.HasWScale || s.Options.WScale != 5 || s.Window != 65535 {
			t.Fatalf("SYN ws=%v/%d win=%d", s.Options.HasWScale, s.Options.WScale, s.Window)
		}
		h.Send(SYN|ACK, 300, 101, tcptest.WScale(0))
		if a := h.Want(ACK, 101, 301); a.Window != (1<<20)>>5 {
			t.Fatalf("scaled window field %d", a.Window)
		}
	})
}

func TestSegmentsForOtherPortsAreIgnored(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.SendSegment(Segment{SrcPort: peerPort + 1, DstPort: localPort, Flags: RST, Seq: 301})
	h.WantState(Established)
}

func TestEventsReportTimersAndTransitions(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.OpenActive()
	var kinds []string
	for _, e := range h.NewEvents() {
		kinds = append(kinds, e.String())
	}
	want := "state CLOSED -> SYN-SENT (active OPEN)|timer-armed retransmit at 2s"
	if strings.Join(kinds, "|") != want {
		t.Fatalf("events %q, want %q", strings.Join(kinds, "|"), want)
	}
	h.Send(SYN|ACK, 300, 101)
	kinds = nil
	for _, e := range h.NewEvents() {
		kinds = append(kinds, e.String())
	}
	want = "state SYN-SENT -> ESTABLISHED (rcv SYN,ACK)|timer-canceled retransmit"
	if strings.Join(kinds, "|") != want {
		t.Fatalf("events %q, want %q", strings.Join(kinds, "|"), want)
	}
}

func TestTCBString(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	want := "ESTABLISHED snd.una=101 snd.nxt=101 snd.wnd=64000 rcv.nxt=301 rcv.wnd=64000 cwnd=4000 ssthresh=1073741824"
	if got := h.Endpoint().String(); got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	if got := NewEndpoint(Config{}).String(); got != "CLOSED" {
		t.Fatal(got)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	if err := h.Endpoint().OpenActive(h.Now(), 1, 2, nil); !errors.Is(err, ErrConnectionExists) {
		t.Fatal(err)
	}
	if err := h.Endpoint().OpenPassive(h.Now(), 1, nil); !errors.Is(err, ErrConnectionExists) {
		t.Fatal(err)
	}
}

func TestReopenAfterCloseStartsClean(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(TimeWait)
	h.Fire()
	h.WantState(Closed)
	h.Reach(Established)
	if tc := h.TCB(); tc.SndUna != 101 || tc.RcvNxt != 301 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestSendBufferFullAcceptsPartially(t *testing.T) {
	cfg := testConfig()
	cfg.SendBufferSize = 100
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	if n := h.Write(strings.Repeat("s", 150)); n != 100 {
		t.Fatalf("accepted %d", n)
	}
	h.Discard()
	h.Send(ACK, 301, 151)
	if !h.HasEvent(EventWritable) || h.Endpoint().SendSpace() != 50 {
		t.Fatalf("space %d", h.Endpoint().SendSpace())
	}
}
