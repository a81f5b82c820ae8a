package tcpstate

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSimultaneousOpen(t *testing.T) {
	h := newHarness(t, testConfig())
	h.openActive()
	h.want(SYN, 100, 0)
	h.send(SYN, 300, 0, mssOpt(testMSS)) // the peer's SYN crosses ours
	h.want(SYN|ACK, 100, 301)
	h.wantState(SynReceived)
	h.send(SYN|ACK, 300, 101) // the peer's answer to our SYN
	h.wantNone()
	h.wantState(Established)
	if tc := h.tcb(); tc.SndUna != 101 || tc.RcvNxt != 301 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestSimultaneousCloseThroughClosing(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	h.userClose()
	h.want(FIN|ACK, 101, 301)
	h.send(FIN|ACK, 301, 101) // the peer's FIN crosses ours
	h.want(ACK, 102, 302)
	h.wantState(Closing)
	h.send(ACK, 302, 102)
	h.wantState(TimeWait)
	entered := h.now
	h.fire()
	h.wantState(Closed)
	if h.now-entered != 2*testMSL {
		t.Fatalf("TIME-WAIT lasted %v, want 2*MSL=%v", h.now-entered, 2*testMSL)
	}
}

func TestTimeWaitReACKsRetransmittedFINAndRestarts2MSL(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(TimeWait)
	h.advance(time.Second)
	h.send(FIN|ACK, 301, 102) // our ACK of its FIN was lost
	h.want(ACK, 102, 302)
	at, ok := h.e.TimerDeadline(TimerTimeWait)
	if !ok || at != h.now+2*testMSL {
		t.Fatalf("time-wait deadline %v (armed %v), want %v", at, ok, h.now+2*testMSL)
	}
	h.advance(2*testMSL - time.Millisecond)
	h.wantState(TimeWait)
	h.advance(time.Millisecond)
	h.wantState(Closed)
}

func TestActiveCloseFullLadder(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	h.userSend("hello")
	h.want(PSH|ACK, 101, 301, 5)
	h.userClose()
	h.want(FIN|ACK, 106, 301)
	h.send(ACK, 301, 107)
	h.wantState(FinWait2)
	h.send(PSH|ACK, 301, 107, text("bye"))
	h.want(ACK, 107, 304)
	h.send(FIN|ACK, 304, 107)
	h.want(ACK, 107, 305)
	h.wantState(TimeWait)
	if s, err := h.read(); s != "bye" || err != nil {
		t.Fatalf("read %q %v", s, err)
	}
	if _, err := h.read(); err == nil || err.Error() != "EOF" {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestPassiveCloseFullLadder(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	h.send(FIN|ACK, 301, 101)
	h.want(ACK, 101, 302)
	h.wantState(CloseWait)
	h.userSend("late data") // half-close: we may still send
	h.want(PSH|ACK, 101, 302, 9)
	h.userClose()
	h.want(FIN|ACK, 110, 302)
	h.wantState(LastAck)
	h.send(ACK, 302, 111)
	h.wantState(Closed)
	if h.e.Err() != nil {
		t.Fatal(h.e.Err())
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
			h := newHarness(t, testConfig())
			h.reach(tt.state)
			h.send(RST, tt.rcv+1, 0) // in window: challenge ACK, no reset
			if len(h.segs) != 1 || h.segs[0].Flags != ACK {
				t.Fatalf("want challenge ACK, got %v", h.segs)
			}
			h.segs = nil
			h.wantState(tt.state)
			h.send(RST, tt.rcv, 0) // exactly RCV.NXT: reset
			h.wantNone()
			h.wantState(Closed)
			if !errors.Is(h.e.Err(), tt.err) || (tt.err == nil && h.e.Err() != nil) {
				t.Fatalf("Err() = %v, want %v", h.e.Err(), tt.err)
			}
			if tt.err != nil {
				if !h.hasEvent(tt.event) {
					t.Fatalf("no %v event", tt.event)
				}
				if _, err := h.read(); !errors.Is(err, tt.err) {
					t.Fatalf("Receive: %v", err)
				}
			}
			if _, armed := h.e.NextTimer(); armed {
				t.Fatal("timer still armed in CLOSED")
			}
		})
	}
}

func TestRSTRefusesActiveOpen(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(SynSent)
	h.send(RST|ACK, 0, 200) // ACK does not cover our SYN: ignored
	h.wantState(SynSent)
	h.send(RST|ACK, 0, 101)
	h.wantState(Closed)
	if !errors.Is(h.e.Err(), ErrConnectionRefused) || !h.hasEvent(EventRefused) {
		t.Fatalf("Err() = %v", h.e.Err())
	}
	if _, err := h.e.Send(h.now, []byte("x"), nil); !errors.Is(err, ErrConnectionRefused) {
		t.Fatalf("Send after refusal: %v", err)
	}
}

func TestChallengeACKsAreRateLimited(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	for range 5 {
		h.send(RST, 400, 0)
	}
	if len(h.segs) != testChallenge {
		t.Fatalf("%d challenge ACKs in one interval, want %d", len(h.segs), testChallenge)
	}
	h.segs = nil
	h.send(SYN, 301, 0) // a SYN also draws a (limited) challenge ACK
	h.wantNone()
	h.advance(testChallengeDur)
	h.send(SYN, 301, 0)
	h.want(ACK, 101, 301)
	h.wantState(Established)
}

func TestSequenceNumbersWrapMidStream(t *testing.T) {
	cfg := testConfig()
	cfg.ISS = func() Seq { return 0xfffffff0 }
	h := newHarness(t, cfg)
	const peer Seq = 0xfffffffa
	h.openActive()
	h.want(SYN, 0xfffffff0, 0)
	h.send(SYN|ACK, peer, 0xfffffff1, mssOpt(testMSS))
	h.want(ACK, 0xfffffff1, peer+1)
	// 40 bytes each way cross 2^32.
	h.userSend(strings.Repeat("a", 40))
	h.want(PSH|ACK, 0xfffffff1, peer+1, 40)
	h.send(PSH|ACK, peer+1, 0x19, text(strings.Repeat("b", 40)))
	h.want(ACK, 0x19, 0x23)
	tc := h.tcb()
	if tc.SndUna != 0x19 || tc.SndNxt != 0x19 || tc.RcvNxt != 0x23 {
		t.Fatalf("TCB after wrap: %v", &tc)
	}
	// Out-of-order data just past the wrap is reassembled.
	h.send(PSH|ACK, 0x23+5, 0x19, text("world"))
	h.want(ACK, 0x19, 0x23)
	h.send(PSH|ACK, 0x23, 0x19, text("hello"))
	h.want(ACK, 0x19, 0x23+10)
	if s, _ := h.read(); s != strings.Repeat("b", 40)+"helloworld" {
		t.Fatalf("read %q", s)
	}
}

func TestRTOBackoffDoublesUntilMaxThenTimesOut(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRTO = time.Second
	h := newHarness(t, cfg)
	h.reach(Established)
	h.userSend("x")
	h.want(PSH|ACK, 101, 301, 1)
	start := h.now
	var gaps []time.Duration
	prev := start
	for h.e.State() == Established {
		h.fire()
		gaps = append(gaps, h.now-prev)
		prev = h.now
		if h.e.State() == Established {
			h.want(PSH|ACK, 101, 301, 1)
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
	if !errors.Is(h.e.Err(), ErrTimeout) || !h.hasEvent(EventTimeout) {
		t.Fatalf("Err() = %v", h.e.Err())
	}
}

func TestKarnNoSampleFromRetransmittedSegment(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	rto0 := h.tcb().RTO
	h.userSend("x")
	h.want(PSH|ACK, 101, 301, 1)
	h.fire() // retransmit; RTO doubles
	h.want(PSH|ACK, 101, 301, 1)
	h.advance(10 * time.Millisecond)
	h.send(ACK, 301, 102) // ambiguous ACK: no sample
	tc := h.tcb()
	if tc.SRTT != 0 || tc.RTO != 2*rto0 {
		t.Fatalf("SRTT=%v RTO=%v; want no sample and backed-off RTO %v", tc.SRTT, tc.RTO, 2*rto0)
	}
	// A fresh segment is timed and its sample replaces the backed-off RTO.
	h.userSend("y")
	h.want(PSH|ACK, 102, 301, 1)
	h.advance(100 * time.Millisecond)
	h.send(ACK, 301, 103)
	tc = h.tcb()
	// The handshake gave a first sample R=0 (SRTT=0, RTTVAR=0), so R=100ms
	// is smoothed in (RFC 6298 (2.3)): RTTVAR = 1/4*100 = 25ms, SRTT =
	// 1/8*100 = 12.5ms, RTO = max(MinRTO, 12.5ms+4*25ms) = MinRTO.
	if tc.SRTT != 12500*time.Microsecond || tc.RTTVar != 25*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("SRTT=%v RTTVAR=%v RTO=%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

func TestRTTSampleFromHandshakeAndSmoothing(t *testing.T) {
	h := newHarness(t, testConfig())
	h.openActive()
	h.want(SYN, 100, 0)
	h.advance(40 * time.Millisecond)
	h.send(SYN|ACK, 300, 101)
	h.want(ACK, 101, 301)
	tc := h.tcb()
	// First sample R=40ms: SRTT=R, RTTVAR=R/2, RTO=max(MinRTO, SRTT+4*RTTVAR).
	if tc.SRTT != 40*time.Millisecond || tc.RTTVar != 20*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("after first sample %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
	h.userSend("x")
	h.want(PSH|ACK, 101, 301, 1)
	h.advance(120 * time.Millisecond)
	h.send(ACK, 301, 102)
	tc = h.tcb()
	// RTTVAR = 3/4*20 + 1/4*|40-120| = 35ms; SRTT = 7/8*40 + 1/8*120 = 50ms.
	if tc.SRTT != 50*time.Millisecond || tc.RTTVar != 35*time.Millisecond || tc.RTO != 200*time.Millisecond {
		t.Fatalf("after second sample %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

func TestFastRetransmitAfterThreeDuplicateACKsAndNewRenoRecovery(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 10
	h := newHarness(t, cfg)
	h.reach(Established)
	h.userSend(strings.Repeat("z", 20*testMSS))
	for i := range 10 {
		h.want(ACK, 101+Seq(i*testMSS), 301, testMSS)
	}
	h.wantNone()
	if tc := h.tcb(); tc.Cwnd != 10*testMSS || tc.Ssthresh != maxWindow {
		t.Fatalf("cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	// Segments 1 and 3 are lost; 2, 4, 5 arrive and draw duplicate ACKs.
	h.send(ACK, 301, 101)
	h.send(ACK, 301, 101)
	h.wantNone()
	h.send(ACK, 301, 101) // third duplicate: fast retransmit
	h.want(ACK, 101, 301, testMSS)
	tc := h.tcb()
	if tc.Ssthresh != 5*testMSS || tc.Cwnd != 8*testMSS {
		t.Fatalf("on entering recovery cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	// Each further duplicate inflates cwnd by one SMSS; at 11 segments the
	// window lets one new segment out.
	h.send(ACK, 301, 101)
	h.send(ACK, 301, 101)
	h.wantNone()
	h.send(ACK, 301, 101)
	h.want(ACK, 10101, 301, testMSS)
	// Partial ACK (up to the second hole): retransmit the hole at once.
	// cwnd deflates by the 2000 octets acknowledged and regains one SMSS
	// (11000-2000+1000 = 10000), which lets one more new segment out.
	h.send(ACK, 301, 2101)
	h.want(ACK, 2101, 301, testMSS)
	h.want(ACK, 11101, 301, testMSS)
	h.wantNone()
	if c := h.tcb().Cwnd; c != 10*testMSS {
		t.Fatalf("after partial ACK cwnd=%d", c)
	}
	h.wantState(Established)
	// Full ACK of everything sent before recovery (recover = 10101): leave
	// with cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS) = 3000.
	h.send(ACK, 301, 10101)
	tc = h.tcb()
	if tc.Cwnd != 3*testMSS || tc.Ssthresh != 5*testMSS {
		t.Fatalf("after full ACK cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	if h.e.inRecovery {
		t.Fatal("still in recovery after full ACK")
	}
}

func TestSlowStartThenCongestionAvoidance(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 2
	h := newHarness(t, cfg)
	h.reach(Established)
	h.e.tcb.Ssthresh = 4 * testMSS
	h.userSend(strings.Repeat("q", 30*testMSS))
	h.segs = nil
	h.send(ACK, 301, 101+testMSS) // slow start: +1 SMSS
	if c := h.tcb().Cwnd; c != 3*testMSS {
		t.Fatalf("cwnd %d", c)
	}
	h.send(ACK, 301, 101+2*testMSS)
	if c := h.tcb().Cwnd; c != 4*testMSS {
		t.Fatalf("cwnd %d", c)
	}
	h.send(ACK, 301, 101+3*testMSS) // now cwnd >= ssthresh: +SMSS*SMSS/cwnd
	if c := h.tcb().Cwnd; c != 4*testMSS+testMSS/4 {
		t.Fatalf("cwnd %d", c)
	}
}

func TestRTOCollapsesCwndAndGoesBackN(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 4
	h := newHarness(t, cfg)
	h.reach(Established)
	h.userSend(strings.Repeat("r", 4*testMSS))
	h.segs = nil
	h.fire()
	h.want(ACK, 101, 301, testMSS) // only the first segment: cwnd = 1 SMSS
	h.wantNone()
	tc := h.tcb()
	if tc.Cwnd != testMSS || tc.Ssthresh != 2*testMSS {
		t.Fatalf("cwnd=%d ssthresh=%d", tc.Cwnd, tc.Ssthresh)
	}
	h.send(ACK, 301, 101+testMSS) // slow start again from SND.UNA
	h.want(ACK, 101+testMSS, 301, testMSS)
	h.want(ACK, 101+2*testMSS, 301, testMSS)
	h.wantNone()
}

func TestZeroWindowProbeThenReopen(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	h.send(ACK, 301, 101, win(0)) // the peer closes its window
	h.userSend("abcdef")
	h.wantNone()
	if _, ok := h.e.TimerDeadline(TimerPersist); !ok {
		t.Fatal("persist timer not armed")
	}
	if _, ok := h.e.TimerDeadline(TimerRetransmit); ok {
		t.Fatal("retransmission timer armed with nothing in flight")
	}
	h.fire()
	h.want(ACK, 101, 301, 1) // one-octet probe
	first := h.now
	h.send(ACK, 301, 101, win(0)) // probe refused
	h.fire()
	h.want(ACK, 101, 301, 1) // the same octet again, after a longer wait
	second := h.now
	h.fire()
	h.want(ACK, 101, 301, 1)
	if g1, g2 := second-first, h.now-second; g2 != 2*g1 {
		t.Fatalf("probe gaps %v then %v, want doubling", g1, g2)
	}
	if h.e.State() != Established || h.e.retries != 0 {
		t.Fatalf("probing must not count as retries: %d", h.e.retries)
	}
	// Linux refuses each probe with <ACK=SND.UNA><WND=0>. Those are not
	// duplicate ACKs (RFC 5681 §2): no fast retransmit into the closed
	// window, cwnd and ssthresh untouched.
	cc := h.tcb()
	for range 4 {
		h.send(ACK, 301, 101, win(0))
		h.wantNone()
		h.fire()
		h.want(ACK, 101, 301, 1)
	}
	if tc := h.tcb(); tc.Cwnd != cc.Cwnd || tc.Ssthresh != cc.Ssthresh || h.e.inRecovery || h.e.dupAcks != 0 {
		t.Fatalf("refused probes changed congestion state: cwnd %d->%d ssthresh %d->%d recovery %v dupacks %d",
			cc.Cwnd, tc.Cwnd, cc.Ssthresh, tc.Ssthresh, h.e.inRecovery, h.e.dupAcks)
	}
	h.send(ACK, 301, 102, win(1000)) // probe accepted and window reopens
	h.want(PSH|ACK, 102, 301, 5)
	if _, ok := h.e.TimerDeadline(TimerPersist); ok {
		t.Fatal("persist still armed")
	}
	h.send(ACK, 301, 107, win(1000))
	if tc := h.tcb(); tc.SndUna != 107 || tc.SndWnd != 1000 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestReceiverZeroWindowAndWindowUpdate(t *testing.T) {
	cfg := testConfig()
	cfg.RecvBufferSize = 2000
	h := newHarness(t, cfg)
	h.reach(Established)
	h.send(PSH|ACK, 301, 101, data(make([]byte, 1000)))
	s := h.want(ACK, 101, 1301)
	if s.Window != 1000 {
		t.Fatalf("window %d", s.Window)
	}
	h.send(PSH|ACK, 1301, 101, data(make([]byte, 1000)))
	if s := h.want(ACK, 101, 2301); s.Window != 0 {
		t.Fatalf("window %d", s.Window)
	}
	// A probe into the zero window is answered with the zero window.
	h.send(PSH|ACK, 2301, 101, text("p"))
	if s := h.want(ACK, 101, 2301); s.Window != 0 {
		t.Fatalf("window %d", s.Window)
	}
	// Reading opens the window: a window update goes out.
	if got, _ := h.read(); len(got) != 2000 {
		t.Fatalf("read %d", len(got))
	}
	if s := h.want(ACK, 101, 2301); s.Window != 2000 {
		t.Fatalf("window update %d", s.Window)
	}
}

func TestOutOfOrderReassembly(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	h.send(PSH|ACK, 311, 101, text("klmnopqrst"))
	h.want(ACK, 101, 301) // duplicate ACK for the hole
	h.send(PSH|ACK, 331, 101, text("ABC"))
	h.want(ACK, 101, 301)
	h.send(FIN|ACK, 334, 101) // FIN after a hole waits for the hole
	h.want(ACK, 101, 301)
	h.wantState(Established)
	h.send(PSH|ACK, 306, 101, text("fghij")) // joins the next range, still a hole at 301
	h.want(ACK, 101, 301)
	h.send(PSH|ACK, 301, 101, text("abcdefg")) // overlaps the next range
	h.want(ACK, 101, 321)
	h.send(PSH|ACK, 321, 101, text("uvwxyz0123"))
	h.want(ACK, 101, 335) // data through 333, then the FIN
	h.wantState(CloseWait)
	if s, err := h.read(); s != "abcdefghijklmnopqrstuvwxyz0123ABC" || err != nil {
		t.Fatalf("read %q %v", s, err)
	}
}

func TestMSSAndWindowScaleOptions(t *testing.T) {
	t.Run("peer sends both", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openPassive()
		h.send(SYN, 300, 0, mssOpt(500), wsOpt(2), win(1000))
		s := h.want(SYN|ACK, 100, 301)
		if s.Options.MSS != testMSS || !s.Options.HasWScale {
			t.Fatalf("SYN,ACK options %+v", s.Options)
		}
		h.send(ACK, 301, 101, win(1000)) // scaled: 4000 octets
		tc := h.tcb()
		if tc.SndMSS != 500 || tc.SndWScale != 2 || tc.SndWnd != 4000 {
			t.Fatalf("TCB mss=%d ws=%d wnd=%d", tc.SndMSS, tc.SndWScale, tc.SndWnd)
		}
		h.userSend(strings.Repeat("m", 1200))
		h.want(ACK, 101, 301, 500)
		h.want(ACK, 601, 301, 500)
		h.want(PSH|ACK, 1101, 301, 200)
	})
	t.Run("peer sends neither", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openPassive()
		h.send(SYN, 300, 0, win(1000))
		s := h.want(SYN|ACK, 100, 301)
		if s.Options.HasWScale {
			t.Fatal("window scale offered in SYN,ACK to a peer that did not")
		}
		h.send(ACK, 301, 101, win(1000))
		tc := h.tcb()
		if tc.SndMSS != 536 || tc.SndWScale != 0 || tc.RcvWScale != 0 || tc.SndWnd != 1000 {
			t.Fatalf("TCB mss=%d ws=%d/%d wnd=%d", tc.SndMSS, tc.SndWScale, tc.RcvWScale, tc.SndWnd)
		}
	})
	t.Run("large buffer scales our window", func(t *testing.T) {
		cfg := testConfig()
		cfg.RecvBufferSize = 1 << 20
		h := newHarness(t, cfg)
		h.openActive()
		s := h.want(SYN, 100, 0)
		if !s.Options.HasWScale || s.Options.WScale != 5 || s.Window != 65535 {
			t.Fatalf("SYN ws=%v/%d win=%d", s.Options.HasWScale, s.Options.WScale, s.Window)
		}
		h.send(SYN|ACK, 300, 101, wsOpt(0))
		if a := h.want(ACK, 101, 301); a.Window != (1<<20)>>5 {
			t.Fatalf("scaled window field %d", a.Window)
		}
	})
}

func TestSegmentsForOtherPortsAreIgnored(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	s := Segment{SrcPort: peerPort + 1, DstPort: localPort, Flags: RST, Seq: 301}
	h.e.HandleSegment(h.now, &s, &h.out)
	h.collect()
	h.wantState(Established)
}

func TestEventsReportTimersAndTransitions(t *testing.T) {
	h := newHarness(t, testConfig())
	h.openActive()
	var kinds []string
	for _, e := range h.newEvents() {
		kinds = append(kinds, e.String())
	}
	want := "state CLOSED -> SYN-SENT (active OPEN)|timer-armed retransmit at 2s"
	if strings.Join(kinds, "|") != want {
		t.Fatalf("events %q, want %q", strings.Join(kinds, "|"), want)
	}
	h.send(SYN|ACK, 300, 101)
	kinds = nil
	for _, e := range h.newEvents() {
		kinds = append(kinds, e.String())
	}
	want = "state SYN-SENT -> ESTABLISHED (rcv SYN,ACK)|timer-canceled retransmit"
	if strings.Join(kinds, "|") != want {
		t.Fatalf("events %q, want %q", strings.Join(kinds, "|"), want)
	}
}

func TestTCBString(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	want := "ESTABLISHED snd.una=101 snd.nxt=101 snd.wnd=64000 rcv.nxt=301 rcv.wnd=64000 cwnd=4000 ssthresh=1073741824"
	if got := h.e.String(); got != want {
		t.Fatalf("\n got  %s\n want %s", got, want)
	}
	if got := NewEndpoint(Config{}).String(); got != "CLOSED" {
		t.Fatal(got)
	}
}

func TestOpenTwiceFails(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(Established)
	if err := h.e.OpenActive(h.now, 1, 2, nil); !errors.Is(err, ErrConnectionExists) {
		t.Fatal(err)
	}
	if err := h.e.OpenPassive(h.now, 1, nil); !errors.Is(err, ErrConnectionExists) {
		t.Fatal(err)
	}
}

func TestReopenAfterCloseStartsClean(t *testing.T) {
	h := newHarness(t, testConfig())
	h.reach(TimeWait)
	h.fire()
	h.wantState(Closed)
	h.reach(Established)
	if tc := h.tcb(); tc.SndUna != 101 || tc.RcvNxt != 301 {
		t.Fatalf("TCB %v", &tc)
	}
}

func TestSendBufferFullAcceptsPartially(t *testing.T) {
	cfg := testConfig()
	cfg.SendBufferSize = 100
	h := newHarness(t, cfg)
	h.reach(Established)
	if n := h.userSend(strings.Repeat("s", 150)); n != 100 {
		t.Fatalf("accepted %d", n)
	}
	h.segs = nil
	h.send(ACK, 301, 151)
	if !h.hasEvent(EventWritable) || h.e.SendSpace() != 50 {
		t.Fatalf("space %d", h.e.SendSpace())
	}
}
