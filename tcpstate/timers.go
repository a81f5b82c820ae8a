package tcpstate

import "time"

// Timer names one of the engine's timers. The engine never reads a clock:
// it tells the driver when each timer must fire (EventTimerArmed, NextTimer)
// and the driver calls HandleTimer with the current time.
type Timer uint8

const (
	// TimerRetransmit is the RFC 6298 retransmission timer (also guards
	// SYN and FIN).
	TimerRetransmit Timer = iota
	// TimerPersist sends zero-window probes (RFC 9293 §3.8.6.1).
	TimerPersist
	// TimerTimeWait ends TIME-WAIT after 2×MSL.
	TimerTimeWait
	// TimerKeepAlive sends keep-alive probes on an idle connection (RFC
	// 1122 §4.2.3.6), when Config.KeepAlive is set.
	TimerKeepAlive
	// TimerDelayedACK sends an ACK that was held back for data to ride on
	// (delack.go).
	TimerDelayedACK
	// TimerSWSOverride sends data held back by sender SWS avoidance when
	// nothing is in flight to bring an ACK (sendpolicy.go).
	TimerSWSOverride

	numTimers = int(TimerSWSOverride) + 1
)

var timerNames = [numTimers]string{"retransmit", "persist", "time-wait", "keep-alive", "delayed-ack", "sws-override"}

func (t Timer) String() string {
	if int(t) < numTimers {
		return timerNames[t]
	}
	return "Timer(?)"
}

type timerSlot struct {
	armed bool
	at    time.Duration
}

// armTimer arms t to fire d after now.
func (e *Endpoint) armTimer(out *Output, t Timer, now, d time.Duration) {
	at := now + d
	s := &e.timers[t]
	if s.armed && s.at == at {
		return
	}
	s.armed, s.at = true, at
	out.Events = append(out.Events, Event{Kind: EventTimerArmed, Timer: t, At: at, In: d})
}

func (e *Endpoint) cancelTimer(out *Output, t Timer) {
	s := &e.timers[t]
	if !s.armed {
		return
	}
	s.armed = false
	out.Events = append(out.Events, Event{Kind: EventTimerCanceled, Timer: t})
}

func (e *Endpoint) cancelAllTimers(out *Output) {
	for t := range numTimers {
		e.cancelTimer(out, Timer(t))
	}
}

// NextTimer returns the earliest armed deadline, if any.
func (e *Endpoint) NextTimer() (at time.Duration, ok bool) {
	for _, s := range e.timers {
		if s.armed && (!ok || s.at < at) {
			at, ok = s.at, true
		}
	}
	return at, ok
}

// TimerDeadline returns the deadline of one timer, if armed.
func (e *Endpoint) TimerDeadline(t Timer) (time.Duration, bool) {
	s := e.timers[t]
	return s.at, s.armed
}

// HandleTimer fires every timer whose deadline is at or before now.
func (e *Endpoint) HandleTimer(now time.Duration, out *Output) {
	e.now = now
	for t := range numTimers {
		s := &e.timers[t]
		if !s.armed || s.at > now {
			continue
		}
		s.armed = false
		switch Timer(t) {
		case TimerTimeWait:
			if e.tcb.State == TimeWait {
				e.enterClosed(out, CauseTimeWaitTimeout, nil)
			}
		case TimerRetransmit:
			e.onRetransmitTimeout(now, out)
		case TimerPersist:
			e.onPersistTimeout(now, out)
		case TimerKeepAlive:
			e.onKeepAliveTimeout(now, out)
		case TimerDelayedACK:
			e.onDelayedACKTimeout(out)
		case TimerSWSOverride:
			e.onSWSOverride(now, out)
		}
	}
}

// rearmTimers puts the retransmission and persist timers in the state the
// send side needs: persist while the peer's window is zero and something waits
// to go, the retransmission timer while anything is unacknowledged (restarted
// when restart is set, i.e. new data was acknowledged — RFC 6298 (5.3)).
func (e *Endpoint) rearmTimers(now time.Duration, out *Output, restart bool) {
	t := &e.tcb
	switch t.State {
	case Closed, Listen, TimeWait:
		e.cancelTimer(out, TimerRetransmit)
		e.cancelTimer(out, TimerPersist)
		e.cancelTimer(out, TimerSWSOverride)
		return
	}
	e.rearmSWSOverride(now, out)
	outstanding := t.SndNxt != t.SndUna
	synAcked := t.SndUna != t.ISS
	if synAcked && t.SndWnd == 0 && (outstanding || e.unsent()) {
		e.cancelTimer(out, TimerRetransmit)
		if !e.timers[TimerPersist].armed {
			e.armTimer(out, TimerPersist, now, e.persistIn(now))
		}
		return
	}
	e.cancelTimer(out, TimerPersist)
	if !outstanding {
		e.cancelTimer(out, TimerRetransmit)
		return
	}
	if restart || !e.timers[TimerRetransmit].armed {
		e.armTimer(out, TimerRetransmit, now, e.retransmitIn(now))
	}
}

func (e *Endpoint) persistTimeout() time.Duration {
	d := e.tcb.RTO
	for range e.persistBackoff {
		d *= 2
		if d >= e.cfg.MaxRTO {
			return e.cfg.MaxRTO
		}
	}
	return min(d, e.cfg.MaxRTO)
}
