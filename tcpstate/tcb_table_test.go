package tcpstate_test

import (
	"testing"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// tcbWant is what a state-table case expects of the TCB afterwards: SND.UNA,
// SND.NXT, RCV.NXT and SND.WND (in octets). Zero values are expected
// literally: LISTEN has no connection, SYN-SENT knows nothing of the peer.
type tcbWant struct {
	sndUna, sndNxt, rcvNxt Seq
	sndWnd                 uint32
}

func (x outcome) withTCB(una, nxt, rcvNxt Seq, wnd uint32) outcome {
	x.tcb = &tcbWant{una, nxt, rcvNxt, wnd}
	return x
}

// checkTCBWant compares the TCB with the case's expectation. Every case
// that does not end in CLOSED must have one.
func checkTCBWant(t *testing.T, h *tcptest.Peer, want outcome) {
	t.Helper()
	tc := h.TCB()
	if want.tcb == nil {
		if tc.State != Closed {
			t.Errorf("no TCB expectation for a case ending in %v", tc.State)
		}
		return
	}
	w := want.tcb
	if tc.SndUna != w.sndUna || tc.SndNxt != w.sndNxt || tc.RcvNxt != w.rcvNxt || tc.SndWnd != w.sndWnd {
		t.Errorf("TCB snd.una=%d snd.nxt=%d rcv.nxt=%d snd.wnd=%d, want %d %d %d %d",
			tc.SndUna, tc.SndNxt, tc.RcvNxt, tc.SndWnd, w.sndUna, w.sndNxt, w.rcvNxt, w.sndWnd)
	}
}
