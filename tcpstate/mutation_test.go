package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Tests for the eight engine mutations that once survived the suite (issue
// 13). Each fails when its mutation is applied by hand:
//
//  1. Karn's rule for fast retransmit removed (sendDataAt no longer stops
//     timing the segment it resends)
//  2. the RFC 5961 §5.2 ACK lower bound off by one
//  3. the zero-window acceptance allowance removed
//  4. SYN-SENT taking SEG.ACK == ISS as acceptable
//  5. a pure window update (same SEQ and ACK, larger window) ignored
//  6. the receiver SWS threshold removed (TestReceiverSWSAvoidance)
//  7. RFC 6582's "recover" guard removed
//  8. TIME-WAIT restarting 2MSL on any FIN

// 1. The ACK of a fast-retransmitted segment yields no RTT sample (Karn).
func TestKarnNoSampleFromFastRetransmit(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 10
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	srtt := h.TCB().SRTT
	h.Write(strings.Repeat("k", 4*testMSS)) // the first segment is timed
	h.Discard()
	for range 3 { // it is lost: three duplicate ACKs
		h.Send(ACK, 301, 101)
	}
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	h.Advance(testMinRTO / 2)       // within the RTO: no timeout clears the timing
	h.Send(ACK, 301, 101+4*testMSS) // ambiguous: original or retransmission?
	if tc := h.TCB(); tc.SRTT != srtt {
		t.Fatalf("SRTT %v after the ACK of a retransmitted segment, want %v (no sample)", tc.SRTT, srtt)
	}
}

// 2. RFC 5961 §5.2: an ACK is acceptable down to SND.UNA - MAX.SND.WND
// inclusive; one below draws a challenge ACK and the segment is dropped.
func TestACKLowerBound(t *testing.T) {
	for _, tt := range []struct {
		name    string
		below   Size // SEG.ACK = SND.UNA - MAX.SND.WND - below
		wantAck Seq  // the ACK field of our reply
	}{
		{"at the bound", 0, 304},  // text accepted
		{"one below", 1, 301},     // challenge ACK, text dropped
		{"far below", 50000, 301}, // challenge ACK
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tcptest.New(t, testConfig())
			h.Reach(Established) // MAX.SND.WND = 64000
			ack := Seq(101).Sub(Size(tcptest.PeerWindow)).Sub(tt.below)
			h.Send(PSH|ACK, 301, ack, tcptest.Text("abc"))
			h.Want(ACK, 101, tt.wantAck)
			h.WantNone()
		})
	}
}

// 3. RFC 9293 §3.10.7.4: in a zero receive window a segment at RCV.NXT still
// has its ACK (and window) processed; its text is dropped.
func TestZeroWindowAllowanceProcessesTheACK(t *testing.T) {
	cfg := testConfig()
	cfg.RecvBufferSize = 2000
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Write("hello")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(5))
	h.Send(PSH|ACK, 301, 101, tcptest.Data(make([]byte, 2000))) // fills the window, ACKs nothing new
	h.Want(ACK, 106, 2301, tcptest.Win(0))
	h.Send(PSH|ACK, 2301, 106, tcptest.Text("more"), tcptest.Win(3000))
	h.Want(ACK, 106, 2301, tcptest.Win(0))
	if tc := h.TCB(); tc.SndUna != 106 || tc.SndWnd != 3000 {
		t.Fatalf("SND.UNA %d SND.WND %d, want 106 and 3000 (the ACK processed)", tc.SndUna, tc.SndWnd)
	}
	if _, ok := h.Endpoint().TimerDeadline(TimerRetransmit); ok {
		t.Fatal("retransmission timer still armed: the ACK was ignored")
	}
}

// 4. RFC 9293 §3.10.7.3: in SYN-SENT, SEG.ACK =< ISS is unacceptable — a
// SYN,ACK acknowledging exactly ISS draws a RST and changes nothing.
func TestSynSentRefusesACKOfISS(t *testing.T) {
	for _, tt := range []struct {
		name  string
		ack   Seq
		flags Flags
	}{
		{"SYN,ACK with ACK=ISS", localISS, SYN | ACK},
		{"ACK=ISS", localISS, ACK},
		{"ACK=ISS-1", localISS - 1, SYN | ACK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tcptest.New(t, testConfig())
			h.Reach(SynSent)
			h.Send(tt.flags, 300, tt.ack)
			h.Want(RST, tt.ack, 0)
			h.WantNone()
			h.WantState(SynSent)
			if tc := h.TCB(); tc.RcvNxt != 0 {
				t.Fatalf("RCV.NXT %d: the SYN was taken", tc.RcvNxt)
			}
		})
	}
}

// 5. A pure window update — same SEQ and ACK as the last update, a larger
// window — is taken (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK).
func TestPureWindowUpdateIsTaken(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	h.Send(ACK, 301, 101, tcptest.Win(0))
	h.Write("abc")
	h.WantNone()
	h.Send(ACK, 301, 101, tcptest.Win(5000)) // same SEQ, same ACK, window opens
	h.Want(PSH|ACK, 101, 301, tcptest.Len(3))
	if tc := h.TCB(); tc.SndWnd != 5000 {
		t.Fatalf("SND.WND %d, want 5000", tc.SndWnd)
	}
}

// 7. RFC 6582 §3.2 step 2: after a timeout, duplicate ACKs that do not
// cover "recover" (go-back-N's own echoes) do not start fast retransmit.
func TestRecoverGuardAfterTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 4
	h := tcptest.New(t, cfg)
	h.Reach(Established)
	h.Write(strings.Repeat("r", 4*testMSS)) // recover will be 4101
	h.Discard()
	h.Fire() // all lost: RTO, go back to SND.UNA
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	h.Send(ACK, 301, 1101) // cwnd 2: segments 2 and 3 go again
	h.Want(ACK, 1101, 301, tcptest.Len(testMSS))
	h.Want(ACK, 2101, 301, tcptest.Len(testMSS))
	for range 3 { // duplicates of 1101, below recover
		h.Send(ACK, 301, 1101)
	}
	h.WantNone()
	if inRecovery, _, _ := Recovery(h.Endpoint()); inRecovery {
		t.Fatal("entered fast recovery on duplicates below recover")
	}
}

// 8. In TIME-WAIT only a retransmission of the peer's FIN restarts 2MSL; any
// other FIN is answered but leaves the deadline alone.
func TestTimeWaitRestartsOnlyOnTheRetransmittedFIN(t *testing.T) {
	for _, tt := range []struct {
		name    string
		seq     Seq
		text    string
		restart bool
	}{
		{"the FIN again", 301, "", true},
		{"the FIN again with its text", 298, "abc", true},
		{"a FIN below", 290, "", false},
		{"a FIN beyond the window", 301 + 100000, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tcptest.New(t, testConfig())
			h.Reach(TimeWait)
			before, _ := h.Endpoint().TimerDeadline(TimerTimeWait)
			h.Advance(time.Second)
			h.Send(FIN|ACK, tt.seq, 102, tcptest.Text(tt.text))
			h.Want(ACK, 102, 302)
			at, _ := h.Endpoint().TimerDeadline(TimerTimeWait)
			want := before
			if tt.restart {
				want = h.Now() + 2*testMSL
			}
			if at != want {
				t.Fatalf("TIME-WAIT ends at %v, want %v", at, want)
			}
		})
	}
}
