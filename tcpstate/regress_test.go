package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Regression tests for review findings. Each one failed before its fix (or
// under the named mutation of the engine).

// The window field of a segment carrying SYN is never scaled (RFC 7323
// §2.2), whether the SYN arrives in LISTEN, SYN-SENT or, as a SYN,ACK, in
// SYN-RECEIVED after a simultaneous open.
func TestSYNWindowIsNeverScaled(t *testing.T) {
	t.Run("active open", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenActive()
		h.Want(SYN, 100, 0)
		h.Send(SYN|ACK, 300, 101, tcptest.WScale(4), tcptest.Win(1000))
		h.Want(ACK, 101, 301)
		if tc := h.TCB(); tc.State != Established || tc.SndWScale != 4 || tc.SndWnd != 1000 {
			t.Fatalf("TCB %v ws=%d", &tc, tc.SndWScale)
		}
	})
	t.Run("passive open", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenPassive()
		h.Send(SYN, 300, 0, tcptest.WScale(4), tcptest.Win(1000))
		h.Want(SYN|ACK, 100, 301)
		if tc := h.TCB(); tc.SndWnd != 1000 || tc.SndWL1 != 300 {
			t.Fatalf("TCB %v wl1=%d", &tc, tc.SndWL1)
		}
		h.Send(ACK, 301, 101, tcptest.Win(1000)) // not a SYN: scaled
		if tc := h.TCB(); tc.SndWnd != 16000 {
			t.Fatalf("SND.WND %d after the ACK, want 16000", tc.SndWnd)
		}
	})
	t.Run("simultaneous open", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenActive()
		h.Want(SYN, 100, 0)
		h.Send(SYN, 300, 0, tcptest.WScale(4), tcptest.Win(1000))
		h.Want(SYN|ACK, 100, 301)
		h.Send(SYN|ACK, 300, 101, tcptest.WScale(4), tcptest.Win(1000))
		h.WantNone()
		h.WantState(Established)
		if tc := h.TCB(); tc.SndWnd != 1000 {
			t.Fatalf("SND.WND %d, want 1000 (SYN,ACK window unscaled)", tc.SndWnd)
		}
		h.Send(ACK, 301, 101, tcptest.Win(1000))
		if tc := h.TCB(); tc.SndWnd != 16000 {
			t.Fatalf("SND.WND %d after the ACK, want 16000", tc.SndWnd)
		}
	})
}

// RFC 9293 §3.10.7.4: the send window is taken from a segment only if
// SND.UNA =< SEG.ACK =< SND.NXT and the segment is newer than the last
// window update (WL1, WL2).
func TestWindowUpdateGuards(t *testing.T) {
	t.Run("older ACK with newer SEQ", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(Established)
		h.Write(strings.Repeat("a", 20))
		h.Want(PSH|ACK, 101, 301, tcptest.Len(20))
		h.Send(PSH|ACK, 301, 121, tcptest.Text("abc"), tcptest.Win(5000))
		h.Want(ACK, 121, 304)
		// A segment whose ACK is below SND.UNA (an old ACK riding on new
		// data) must not shrink the window.
		h.Send(PSH|ACK, 304, 111, tcptest.Text("def"), tcptest.Win(0))
		h.Want(ACK, 121, 307)
		if tc := h.TCB(); tc.SndWnd != 5000 || tc.SndUna != 121 {
			t.Fatalf("SND.WND %d SND.UNA %d, want 5000, 121", tc.SndWnd, tc.SndUna)
		}
	})
	t.Run("reordered older SEQ", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(Established)
		// The second segment overtakes the first: its window (6000) is the
		// newer one and the late first segment (5000) must not replace it.
		h.Send(PSH|ACK, 304, 101, tcptest.Text("def"), tcptest.Win(6000))
		h.Want(ACK, 101, 301)
		h.Send(PSH|ACK, 301, 101, tcptest.Text("abc"), tcptest.Win(5000))
		h.Want(ACK, 101, 307)
		if tc := h.TCB(); tc.SndWnd != 6000 || tc.SndWL1 != 304 {
			t.Fatalf("SND.WND %d WL1 %d, want 6000, 304", tc.SndWnd, tc.SndWL1)
		}
	})
}

// RFC 5961 §4.2: a SYN in a synchronized state draws a challenge ACK,
// rate-limited, whatever its sequence number.
func TestOutOfWindowSYNChallengeIsRateLimited(t *testing.T) {
	for _, st := range []State{Established, FinWait1, FinWait2, CloseWait, Closing, LastAck, TimeWait} {
		t.Run(st.String(), func(t *testing.T) {
			h := tcptest.New(t, testConfig())
			h.Reach(st)
			rn := h.TCB().RcvNxt
			for range 2 * testChallenge {
				h.Send(SYN, peerISS, 0) // below RCV.NXT
				h.Send(SYN, rn+100000, 0)
			}
			if n := len(h.Pending()); n != testChallenge {
				t.Fatalf("%d ACKs for %d SYNs, want %d", n, 4*testChallenge, testChallenge)
			}
			h.WantState(st)
		})
	}
}

// An RTT sample of 0 is a sample: the next one is smoothed into it (RFC
// 6298 (2.3)), not taken as the first.
func TestZeroRTTSampleCounts(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.OpenActive()
	h.Want(SYN, 100, 0)
	h.Send(SYN|ACK, 300, 101, tcptest.MSS(testMSS)) // R = 0
	h.Want(ACK, 101, 301)
	if tc := h.TCB(); tc.SRTT != 0 || tc.RTTVar != 0 || tc.RTO != testMinRTO {
		t.Fatalf("after R=0: %v/%v/%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
	h.Write("x")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
	h.Advance(80 * time.Millisecond)
	h.Send(ACK, 301, 102)
	// RTTVAR = 3/4*0 + 1/4*80 = 20ms; SRTT = 7/8*0 + 1/8*80 = 10ms;
	// RTO = max(MinRTO, 10 + 4*20 = 90ms) = MinRTO.
	if tc := h.TCB(); tc.SRTT != 10*time.Millisecond || tc.RTTVar != 20*time.Millisecond || tc.RTO != testMinRTO {
		t.Fatalf("after R=80ms: SRTT=%v RTTVAR=%v RTO=%v", tc.SRTT, tc.RTTVar, tc.RTO)
	}
}

// RFC 6298 (5.7): after a retransmitted SYN (or SYN,ACK) the RTO is reset
// to 3 s (Config.RTOAfterSYNLoss) when data transfer begins, and the initial
// window is one segment (RFC 5681 §3.1).
func TestSYNRetransmitResetsRTOAndInitialWindow(t *testing.T) {
	t.Run("active", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenActive()
		h.Want(SYN, 100, 0)
		h.Fire()
		h.Want(SYN, 100, 0)
		h.Send(SYN|ACK, 300, 101, tcptest.MSS(testMSS))
		h.Want(ACK, 101, 301)
		tc := h.TCB()
		if tc.RTO != 3*time.Second || tc.SRTT != 0 {
			t.Fatalf("RTO %v SRTT %v, want 3s and no sample", tc.RTO, tc.SRTT)
		}
		if tc.Cwnd != testMSS {
			t.Fatalf("cwnd %d, want one segment %d", tc.Cwnd, testMSS)
		}
		h.Write(strings.Repeat("d", 3*testMSS))
		h.Want(ACK, 101, 301, tcptest.Len(testMSS))
		h.WantNone()
		if at, ok := h.Endpoint().TimerDeadline(TimerRetransmit); !ok || at != h.Now()+3*time.Second {
			t.Fatalf("retransmit timer %v %v, want now+3s", at, ok)
		}
	})
	t.Run("passive, configured", func(t *testing.T) {
		cfg := testConfig()
		cfg.RTOAfterSYNLoss = 500 * time.Millisecond
		h := tcptest.New(t, cfg)
		h.Reach(SynReceived)
		h.Fire()
		h.Want(SYN|ACK, 100, 301)
		h.Send(ACK, 301, 101)
		h.WantState(Established)
		if tc := h.TCB(); tc.RTO != 500*time.Millisecond || tc.Cwnd != testMSS {
			t.Fatalf("RTO %v cwnd %d, want 500ms and %d", tc.RTO, tc.Cwnd, testMSS)
		}
	})
	t.Run("no SYN loss keeps the sample", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.OpenActive()
		h.Want(SYN, 100, 0)
		h.Advance(40 * time.Millisecond)
		h.Send(SYN|ACK, 300, 101, tcptest.MSS(testMSS))
		h.Want(ACK, 101, 301)
		if tc := h.TCB(); tc.RTO != testMinRTO || tc.Cwnd != 4*testMSS {
			t.Fatalf("RTO %v cwnd %d", tc.RTO, tc.Cwnd)
		}
	})
}

// ssthresh never falls below 2*SMSS (RFC 5681 (4)), on fast retransmit or
// on timeout.
func TestSsthreshFloorIsTwoSegments(t *testing.T) {
	t.Run("fast retransmit", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(Established)
		h.Write(strings.Repeat("f", 3*testMSS))
		h.Discard()
		for range 3 {
			h.Send(ACK, 301, 101)
		}
		h.Want(ACK, 101, 301, tcptest.Len(testMSS))
		// FlightSize/2 = 1500 < 2*SMSS.
		if tc := h.TCB(); tc.Ssthresh != 2*testMSS || tc.Cwnd != 5*testMSS {
			t.Fatalf("ssthresh %d cwnd %d, want %d, %d", tc.Ssthresh, tc.Cwnd, 2*testMSS, 5*testMSS)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(Established)
		h.Write("one")
		h.Want(PSH|ACK, 101, 301, tcptest.Len(3))
		h.Fire()
		h.Want(PSH|ACK, 101, 301, tcptest.Len(3))
		if tc := h.TCB(); tc.Ssthresh != 2*testMSS || tc.Cwnd != testMSS {
			t.Fatalf("ssthresh %d cwnd %d", tc.Ssthresh, tc.Cwnd)
		}
	})
}
