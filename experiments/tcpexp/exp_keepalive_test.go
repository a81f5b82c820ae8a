package tcpexp

import (
	"fmt"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

func TestJudgeUserTimeout(t *testing.T) {
	ms := time.Millisecond
	ut := 2000 * ms
	good := keepAliveVerdict{heardAt: 1000 * ms, heardRec: 1001 * ms, lastArm: 3000*ms + 500*time.Microsecond,
		closedAt: 3004 * ms, cause: tcpstate.CauseKeepAliveTimeout, err: fmt.Errorf("x: %w", tcpstate.ErrTimeout)}
	tests := []struct {
		name string
		edit func(v *keepAliveVerdict)
		ok   bool
	}{
		{"at the user timeout", func(*keepAliveVerdict) {}, true},
		{"a late timer: given up at a probe's deadline past it", func(v *keepAliveVerdict) { v.lastArm, v.closedAt = 2900*ms, 3100*ms }, true},
		{"gave up early", func(v *keepAliveVerdict) { v.closedAt = 2999 * ms }, false},
		{"scheduled past the user timeout", func(v *keepAliveVerdict) { v.lastArm, v.closedAt = 3002*ms, 3003*ms }, false},
		{"ended by the probe count", func(v *keepAliveVerdict) { v.cause = tcpstate.CauseRetransmitTimeout }, false},
		{"reset, not timed out", func(v *keepAliveVerdict) { v.err = tcpstate.ErrConnectionReset }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := good
			tt.edit(&v)
			if ok, why := judgeUserTimeout(v, ut); ok != tt.ok {
				t.Errorf("judgeUserTimeout = %v (%s), want %v", ok, why, tt.ok)
			}
		})
	}
}

func TestProbeShapes(t *testing.T) {
	tcb := tcpstate.TCB{SndUna: 1000, SndNxt: 1000, RcvNxt: 5000}
	tests := []struct {
		name          string
		seg           tcpstate.Segment
		labP, kernelP bool
	}{
		{"the lab's probe", tcpstate.Segment{Flags: tcpstate.ACK, Seq: 999, Ack: 5000}, true, false},
		{"the kernel's probe", tcpstate.Segment{Flags: tcpstate.ACK, Seq: 4999, Ack: 1000}, false, true},
		{"a pure ACK", tcpstate.Segment{Flags: tcpstate.ACK, Seq: 1000, Ack: 5000}, false, false},
		{"one octet below (a zero-window probe's shape)", tcpstate.Segment{Flags: tcpstate.ACK, Seq: 999, Payload: []byte{1}}, false, false},
		{"FIN", tcpstate.Segment{Flags: tcpstate.ACK | tcpstate.FIN, Seq: 4999}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isLabProbe(&tt.seg, &tcb); got != tt.labP {
				t.Errorf("isLabProbe = %v, want %v", got, tt.labP)
			}
			if got := isKernelProbe(&tt.seg, &tcb); got != tt.kernelP {
				t.Errorf("isKernelProbe = %v, want %v", got, tt.kernelP)
			}
		})
	}
}

func TestJudgeDataUserTimeout(t *testing.T) {
	ms := time.Millisecond
	ut := 1500 * ms
	good := userTimeoutVerdict{writeAt: 100 * ms, firstRec: 101 * ms, lastArm: 1600*ms + 300*time.Microsecond, closedAt: 1601 * ms,
		transmissions: 4, cause: tcpstate.CauseUserTimeout, err: tcpstate.ErrTimeout}
	tests := []struct {
		name string
		edit func(v *userTimeoutVerdict)
		ok   bool
	}{
		{"at the user timeout", func(*userTimeoutVerdict) {}, true},
		{"early", func(v *userTimeoutVerdict) { v.closedAt = 1599 * ms }, false},
		{"a retransmission scheduled past it", func(v *userTimeoutVerdict) { v.lastArm, v.closedAt = 1700*ms, 1700*ms }, false},
		{"ended by MaxRetries", func(v *userTimeoutVerdict) { v.cause = tcpstate.CauseRetransmitTimeout }, false},
		{"with a RST", func(v *userTimeoutVerdict) { v.rstSent = true }, false},
		{"never retransmitted", func(v *userTimeoutVerdict) { v.transmissions = 1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := good
			tt.edit(&v)
			if ok, why := judgeDataUserTimeout(v, ut); ok != tt.ok {
				t.Errorf("judgeDataUserTimeout = %v (%s), want %v", ok, why, tt.ok)
			}
		})
	}
}
