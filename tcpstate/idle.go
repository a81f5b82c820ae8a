package tcpstate

import "time"

// The restart window (RFC 5681 §4.1): a sender that has not sent data for
// more than one RTO no longer knows the state of the network, so before
// sending again it reduces cwnd to RW = min(IW, cwnd) and slow-starts from
// there instead of releasing a whole old window at once. Linux does the same
// (net.ipv4.tcp_slow_start_after_idle=1); Config.DisableSlowStartAfterIdle
// turns it off.

// restartAfterIdle applies the restart window when nothing is in flight and
// the last data left more than one RTO before now.
func (e *Endpoint) restartAfterIdle(now time.Duration) {
	t := &e.tcb
	if e.cfg.DisableSlowStartAfterIdle || !e.sentData || t.SndNxt != t.SndUna {
		return
	}
	if now-e.lastDataSend > t.RTO {
		t.Cwnd = min(t.Cwnd, e.initialWindow())
	}
}
