package tcpstate

import (
	"strings"
	"testing"
	"time"
)

// Regression tests for review findings. Each one failed before its fix (or
// under the named mutation of the engine).

// The window field of a segment carrying SYN is never scaled (RFC 7323
// §2.2), whether the SYN arrives in LISTEN, SYN-SENT or, as a SYN,ACK, in
// SYN-RECEIVED after a simultaneous open.
func TestSYNWindowIsNeverScaled(t *testing.T) {
	t.Run("active open", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openActive()
		h.want(SYN, 100, 0)
		h.send(SYN|ACK, 300, 101, wsOpt(4), win(1000))
		h.want(ACK, 101, 301)
		if tc := h.tcb(); tc.State != Established || tc.SndWScale != 4 || tc.SndWnd != 1000 {
			t.Fatalf("TCB %v ws=%d", &tc, tc.SndWScale)
		}
	})
	t.Run("passive open", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openPassive()
		h.send(SYN, 300, 0, wsOpt(4), win(1000))
		h.want(SYN|ACK, 100, 301)
		if tc := h.tcb(); tc.SndWnd != 1000 || tc.SndWL1 != 300 {
			t.Fatalf("TCB %v wl1=%d", &tc, tc.SndWL1)
		}
		h.send(ACK, 301, 101, win(1000)) // not a SYN: scaled
		if tc := h.tcb(); tc.SndWnd != 16000 {
			t.Fatalf("SND.WND %d after the ACK, want 16000", tc.SndWnd)
		}
	})
	t.Run("simultaneous open", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openActive()
		h.want(SYN, 100, 0)
		h.send(SYN, 300, 0, wsOpt(4), win(1000))
		h.want(SYN|ACK, 100, 301)
		h.send(SYN|ACK, 300, 101, wsOpt(4), win(1000))
		h.wantNone()
		h.wantState(Established)
		if tc := h.tcb(); tc.SndWnd != 1000 {
			t.Fatalf("SND.WND %d, want 1000 (SYN,ACK window unscaled)", tc.SndWnd)
		}
		h.send(ACK, 301, 101, win(1000))
		if tc := h.tcb(); tc.SndWnd != 16000 {
			t.Fatalf("SND.WND %d after the ACK, want 16000", tc.SndWnd)
		}
	})
}

// RFC 9293 §3.10.7.4: the send window is taken from a segment only if
// SND.UNA =< SEG.ACK =< SND.NXT and the segment is newer than the last
// window update (WL1, WL2).
func TestWindowUpdateGuards(t *testing.T) {
	t.Run("older ACK with newer SEQ", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.reach(Established)
		h.userSend(strings.Repeat("a", 20))
		h.want(PSH|ACK, 101, 301, 20)
		h.send(PSH|ACK, 301, 121, text("abc"), win(5000))
		h.want(ACK, 121, 304)
		// A segment whose ACK is below SND.UNA (an old ACK riding on new
		// data) must not shrink the window.
		h.send(PSH|ACK, 304, 111, text("def"), win(0))
		h.want(ACK, 121, 307)
		if tc := h.tcb(); tc.SndWnd != 5000 || tc.SndUna != 121 {
			t.Fatalf("SND.WND %d SND.UNA %d, want 5000, 121", tc.SndWnd, tc.SndUna)
		}
	})
	t.Run("reordered older SEQ", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.reach(Established)
		// The second segment overtakes the first: its window (6000) is the
		// newer one and the late first segment (5000) must not replace it.
		h.send(PSH|ACK, 304, 101, text("def"), win(6000))
		h.want(ACK, 101, 301)
		h.send(PSH|ACK, 301, 101, text("abc"), win(5000))
		h.want(ACK, 101, 307)
		if tc := h.tcb(); tc.SndWnd != 6000 || tc.SndWL1 != 304 {
			t.Fatalf("SND.WND %d WL1 %d, want 6000, 304", tc.SndWnd, tc.SndWL1)
		}
	})
}

// RFC 5961 §4.2: a SYN in a synchronized state draws a challenge ACK,
// rate-limited, whatever its sequence number.
func TestOutOfWindowSYNChallengeIsRateLimited(t *testing.T) {
	for _, st := range []State{Established, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait} {
		t.Run(st.String(), func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.reach(st)
			rn := h.tcb().RcvNxt
			for range 2 * testChallenge {
				h.send(SYN, peerISS, 0) // below RCV.NXT
				h.send(SYN, rn+100000, 0)
			}
			if n := len(h.segs); n != testChallenge {
				t.Fatalf("%d ACKs for %d SYNs, want %d", n, 4*testChallenge, testChallenge)
			}
			h.wantState(st)
		})
	}
}

// An RTT sample of 0 is a sample: the next one is smoothed into it (RFC
// 6298 (2.3)), not taken as the first.
func TestZeroRTTSampleCounts(t *testing.T) {
	h := newHarness(t, testConfig())
	h.openActive()
	h.want(SYN, 100, 0)
	h.send(SYN|ACK, 300, 101, mssOpt(testMSS)) // R = 0
	h.want(ACK, 101, 301)
	if tc := h.tcb(); tc.SRTT != 0 || tc.RTTVar != 0 || tc.RTO != testMinRTO {
		t.Fatalf("after R=0: %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
	h.userSend("x")
	h.want(PSH|ACK, 101, 301, 1)
	h.advance(80 * time.Millisecond)
	h.send(ACK, 301, 102)
	// RTTVAR = 3/4*0 + 1/4*80 = 20ms; SRTT = 7/8*0 + 1/8*80 = 10ms;
	// RTO = max(MinRTO, 10 + 4*20 = 90ms) = MinRTO.
	if tc := h.tcb(); tc.SRTT != 10*time.Millisecond || tc.RTTVar != 20*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("after R=80ms: SRTT=%v RTTVAR=%v RTO=%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

// RFC 6298 (5.7): after a retransmitted SYN (or SYN,ACK) the RTO is reset
// to 3 s (Config.RTOAfterSYNLoss) when data transfer begins, and the initial
// window is one segment (RFC 5681 §3.1).
func TestSYNRetransmitResetsRTOAndInitialWindow(t *testing.T) {
	t.Run("active", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openActive()
		h.want(SYN, 100, 0)
		h.fire()
		h.want(SYN, 100, 0)
		h.send(SYN|ACK, 300, 101, mssOpt(testMSS))
		h.want(ACK, 101, 301)
		tc := h.tcb()
		if tc.RTO != 3*time.Second || tc.SRTT != 0 {
			t.Fatalf("RTO %v SRTT %v, want 3s and no sample", tc.RTO, tc.SRTT)
		}
		if tc.Cwnd != testMSS {
			t.Fatalf("cwnd %d, want one segment %d", tc.Cwnd, testMSS)
		}
		h.userSend(strings.Repeat("d", 3*testMSS))
		h.want(ACK, 101, 301, testMSS)
		h.wantNone()
		if at, ok := h.e.TimerDeadline(TimerRetransmit); !ok || at != h.now+3*time.Second {
			t.Fatalf("retransmit timer %v %v, want now+3s", at, ok)
		}
	})
	t.Run("passive, configured", func(t *testing.T) {
		cfg := testConfig()
		cfg.RTOAfterSYNLoss = 500 * time.Millisecond
		h := newHarness(t, cfg)
		h.reach(SynReceived)
		h.fire()
		h.want(SYN|ACK, 100, 301)
		h.send(ACK, 301, 101)
		h.wantState(Established)
		if tc := h.tcb(); tc.RTO != 500*time.Millisecond || tc.Cwnd != testMSS {
			t.Fatalf("RTO %v cwnd %d, want 500ms and %d", tc.RTO, tc.Cwnd, testMSS)
		}
	})
	t.Run("no SYN loss keeps the sample", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.openActive()
		h.want(SYN, 100, 0)
		h.advance(40 * time.Millisecond)
		h.send(SYN|ACK, 300, 101, mssOpt(testMSS))
		h.want(ACK, 101, 301)
		if tc := h.tcb(); tc.RTO != testMinRTO || tc.Cwnd != 4*testMSS {
			t.Fatalf("RTO %v cwnd %d", tc.RTO, tc.Cwnd)
		}
	})
}

// ssthresh never falls below 2*SMSS (RFC 5681 (4)), on fast retransmit or
// on timeout.
func TestSsthreshFloorIsTwoSegments(t *testing.T) {
	t.Run("fast retransmit", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.reach(Established)
		h.userSend(strings.Repeat("f", 3*testMSS))
		h.segs = nil
		for range 3 {
			h.send(ACK, 301, 101)
		}
		h.want(ACK, 101, 301, testMSS)
		// FlightSize/2 = 1500 < 2*SMSS.
		if tc := h.tcb(); tc.Ssthresh != 2*testMSS || tc.Cwnd != 5*testMSS {
			t.Fatalf("ssthresh %d cwnd %d, want %d, %d", tc.Ssthresh, tc.Cwnd, 2*testMSS, 5*testMSS)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := newHarness(t, testConfig())
		h.reach(Established)
		h.userSend("one")
		h.want(PSH|ACK, 101, 301, 3)
		h.fire()
		h.want(PSH|ACK, 101, 301, 3)
		if tc := h.tcb(); tc.Ssthresh != 2*testMSS || tc.Cwnd != testMSS {
			t.Fatalf("ssthresh %d cwnd %d", tc.Ssthresh, tc.Cwnd)
		}
	})
}
