package tcpexp

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/keepalive's third leg: the user timeout on a connection with data
// outstanding (RFC 5482). The lab writes to a kernel the link has
// silenced; the lab retransmits, unanswered, and the user timeout, counted
// from the data's first transmission, ends the connection — long before
// MaxRetries would — without a RST (as Linux's TCP_USER_TIMEOUT: ETIMEDOUT
// for the lab's user, the kernel's socket left ESTABLISHED, half-open).

// userTimeoutData is what the leg saw.
type userTimeoutData struct {
	mu      sync.Mutex
	silent  bool
	dropped int
	rtxArms []time.Duration // the retransmission timer's deadlines
	sent    int             // data transmissions (first and retransmissions)

	c       *rawtcp.Conn
	writeAt time.Duration // just before the write (engine clock)
	ut      time.Duration
}

func (u *userTimeoutData) send(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
	if len(s.Payload) > 0 {
		u.mu.Lock()
		u.sent++
		u.mu.Unlock()
	}
	return rawtcp.Pass
}

func (u *userTimeoutData) recv(*tcpstate.Segment, *tcpstate.TCB) rawtcp.Verdict {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.silent {
		u.dropped++
		return rawtcp.Drop
	}
	return rawtcp.Pass
}

func (u *userTimeoutData) events(_ time.Duration, e tcpstate.Event) {
	if e.Kind == tcpstate.EventTimerArmed && e.Timer == tcpstate.TimerRetransmit {
		u.mu.Lock()
		u.rtxArms = append(u.rtxArms, e.At)
		u.mu.Unlock()
	}
}

// userTimeoutConfig is the lab's configuration for the leg: the user
// timeout, nothing else changed (MaxRetries stays at its default).
func userTimeoutConfig(env *lab.Env, ut time.Duration) tcpstate.Config {
	c := expConfig()
	c.ISS = seededISS(env.Stream("iss-usertimeout"))
	c.UserTimeout = ut
	return c
}

// userTimeoutWithData runs the leg.
func (x *keepAlive) userTimeoutWithData() error {
	ctx := x.env.Ctx
	u := &userTimeoutData{ut: x.tm.DataUserTimeout}
	x.ut = u
	cfg := userTimeoutConfig(x.env, u.ut)
	bound := u.ut + 20*time.Second
	c, _, err := x.connectKernel(ctx, x.kp, "user timeout", &rawtcp.ConnOptions{Config: &cfg, SendHook: u.send, RecvHook: u.recv, Events: u.events}, bound)
	if err != nil {
		return err
	}
	u.c = c
	u.mu.Lock()
	u.silent = true // from now on the kernel is not heard
	u.mu.Unlock()
	u.writeAt = x.st.Now()
	if _, err := c.Write([]byte("are you there?")); err != nil {
		return fmt.Errorf("lab write: %w", err)
	}
	select {
	case <-c.Done():
	case <-time.After(bound):
		return fmt.Errorf("tcpexp: the user timeout of %v did not end the connection within %v", u.ut, bound)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// userTimeoutVerdict is the leg's evidence: when the data first left (the
// write's time and its record's: the engine's own lies between), the
// retransmission timer's last deadline, when and why the connection
// closed.
type userTimeoutVerdict struct {
	writeAt, firstRec time.Duration
	lastArm, closedAt time.Duration
	transmissions     int
	dropped           int
	cause             tcpstate.Cause
	err               error
	rstSent           bool
}

// judgeDataUserTimeout: the connection closed on the user timeout, not
// before it, with no retransmission scheduled past it, and without a RST.
func judgeDataUserTimeout(v userTimeoutVerdict, ut time.Duration) (bool, string) {
	ok := v.cause == tcpstate.CauseUserTimeout && errors.Is(v.err, tcpstate.ErrTimeout) &&
		v.closedAt >= v.writeAt+ut && v.lastArm <= v.firstRec+ut && v.closedAt >= v.lastArm && !v.rstSent && v.transmissions >= 2
	return ok, fmt.Sprintf("%d transmissions of the data, unanswered; the retransmission timer's last deadline %v after the write, "+
		"CLOSED %v after it (user timeout %v) on %q: %v; RST sent: %v", v.transmissions, fmtMs(v.lastArm-v.writeAt),
		fmtMs(v.closedAt-v.writeAt), ut, v.cause, v.err, v.rstSent)
}

func (u *userTimeoutData) verdict(recs []rawtcp.Record) userTimeoutVerdict {
	u.mu.Lock()
	defer u.mu.Unlock()
	v := userTimeoutVerdict{writeAt: u.writeAt, transmissions: u.sent, dropped: u.dropped, err: u.c.Err()}
	if n := len(u.rtxArms); n > 0 {
		v.lastArm = u.rtxArms[n-1]
	}
	for _, h := range u.c.History() {
		if h.To == tcpstate.Closed {
			v.closedAt, v.cause = h.At, h.Cause
		}
	}
	for _, rec := range recs {
		if rec.Conn != u.c.ID() || !rec.Sent {
			continue
		}
		if rec.Seg.Len > 0 && v.firstRec == 0 {
			v.firstRec = rec.At
		}
		if rec.Seg.Flags&tcpstate.RST != 0 {
			v.rstSent = true
		}
	}
	return v
}

// checkUserTimeout judges the leg.
func (x *keepAlive) checkUserTimeout() {
	u := x.ut
	v := u.verdict(x.st.Records())
	ok, why := judgeDataUserTimeout(v, u.ut)
	x.env.Check("with data unacknowledged, the user timeout ends the connection (not MaxRetries), without a RST", ok, "%s", why)
	x.env.Metric("data_transmissions_count", float64(v.transmissions))
	x.env.Metric("data_write_to_closed_ms", float64((v.closedAt - v.writeAt).Milliseconds()))
	x.env.Metric("data_user_timeout_ms", float64(u.ut.Milliseconds()))
}

// annotateUserTimeout comments the leg's data transmissions.
func (x *keepAlive) annotateUserTimeout() {
	u := x.ut
	if u == nil || u.c == nil {
		return
	}
	n := 0
	for i := range x.recs {
		rec := &x.recs[i]
		p, ok := x.recPkt[i]
		if rec.Conn != u.c.ID() || !ok {
			continue
		}
		switch {
		case rec.Sent && rec.Seg.Len > 0:
			n++
			if n == 1 {
				x.pkts[p].Comment(fmt.Sprintf("the lab's data, sent while its link drops every kernel segment: the user timeout (%v) counts from here", u.ut))
			} else {
				x.pkts[p].Comment(fmt.Sprintf("retransmission %d of the data: the kernel's ACKs never reach the lab", n-1))
			}
		case !rec.Sent && rec.Note != "":
			x.pkts[p].Comment("the kernel acknowledges, but the lab's link drops it")
		}
	}
}
