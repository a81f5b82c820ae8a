package tcpstate

import "time"

// The user timeout (RFC 9293 §3.10.8's USER TIMEOUT, RFC 5482; Linux's
// TCP_USER_TIMEOUT): with Config.UserTimeout set, a connection is aborted
// with ErrTimeout (cause "user timeout") when
//
//   - transmitted data (or SYN, or FIN) has stayed unacknowledged for the
//     user timeout — measured from when SND.UNA last advanced, or from when
//     the first octet left with nothing outstanding; the retransmission
//     timer is shortened to fire exactly then, and MaxRetries no longer
//     applies; or
//   - the peer's window has stayed shut under zero-window probes for the
//     user timeout, counted from the first probe — even if the peer
//     answers every probe (RFC 9293 lets a sender probe a shut window
//     indefinitely; a user timeout is how a user says "not that long",
//     and Linux's tcp_probe_timer gives up the same way); or
//   - keep-alive probes stay unanswered past it (keepalive.go).

// userTimedOut reports whether outstanding data has waited UserTimeout.
func (e *Endpoint) userTimedOut(now time.Duration) bool {
	return e.cfg.UserTimeout > 0 && now-e.progressAt >= e.cfg.UserTimeout
}

// retransmitIn is the retransmission timer's duration from now: the RTO,
// cut short to end at the user timeout's deadline.
func (e *Endpoint) retransmitIn(now time.Duration) time.Duration {
	d := e.tcb.RTO
	if e.cfg.UserTimeout > 0 {
		d = min(d, max(e.progressAt+e.cfg.UserTimeout-now, 0))
	}
	return d
}

// persistGivesUp notes the first zero-window probe of a shut window and
// reports whether probing has gone on for the user timeout.
func (e *Endpoint) persistGivesUp(now time.Duration) bool {
	if !e.persistProbing {
		e.persistProbing, e.persistSince = true, now
		return false
	}
	return e.cfg.UserTimeout > 0 && now-e.persistSince >= e.cfg.UserTimeout
}

// persistIn is the persist timer's duration from now: the backed-off
// probe interval, cut short to end at the user timeout's deadline once
// probing has begun.
func (e *Endpoint) persistIn(now time.Duration) time.Duration {
	d := e.persistTimeout()
	if e.cfg.UserTimeout > 0 && e.persistProbing {
		d = min(d, max(e.persistSince+e.cfg.UserTimeout-now, 0))
	}
	return d
}
