package tcpstate

import "time"

// RTT estimation per RFC 6298. One segment at a time is timed; a sample is
// taken when its ACK arrives, and timing is abandoned when any part of it is
// retransmitted (Karn's rule), so retransmitted segments never yield samples.

// startTiming times the segment ending at end, sent at now, unless another
// one is being timed.
func (e *Endpoint) startTiming(now time.Duration, end Seq) {
	if !e.rttTiming {
		e.rttTiming, e.rttSeq, e.rttStart = true, end, now
	}
}

// ackTiming takes a sample if ack covers the timed segment.
func (e *Endpoint) ackTiming(now time.Duration, ack Seq) {
	if e.rttTiming && e.rttSeq.LessThanEq(ack) {
		e.rttTiming = false
		e.rttSample(now - e.rttStart)
	}
}

// rttSample folds measurement r into SRTT and RTTVAR and recomputes RTO:
//
//	first:  SRTT = R, RTTVAR = R/2
//	later:  RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|;  SRTT = 7/8 SRTT + 1/8 R
//	RTO = SRTT + max(G, 4 RTTVAR), clamped to [MinRTO, MaxRTO]
func (e *Endpoint) rttSample(r time.Duration) {
	t := &e.tcb
	if r < 0 {
		r = 0
	}
	if !e.hasRTT {
		e.hasRTT = true
		t.SRTT = r
		t.RTTVar = r / 2
	} else {
		d := t.SRTT - r
		if d < 0 {
			d = -d
		}
		t.RTTVar = (3*t.RTTVar + d) / 4
		t.SRTT = (7*t.SRTT + r) / 8
	}
	t.RTO = e.clampRTO(t.SRTT + max(e.cfg.ClockGranularity, 4*t.RTTVar))
}

func (e *Endpoint) clampRTO(d time.Duration) time.Duration {
	return min(max(d, e.cfg.MinRTO), e.cfg.MaxRTO)
}

// backoffRTO doubles the RTO after a timeout (RFC 6298 (5.5)).
func (e *Endpoint) backoffRTO() {
	e.tcb.RTO = min(2*e.tcb.RTO, e.cfg.MaxRTO)
}
