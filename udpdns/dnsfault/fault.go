package dnsfault

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Middleware wraps a handler in a fault.
type Middleware func(next dns.Handler) dns.Handler

// Chain wraps h in mw, the first outermost: Chain(h, a, b) is a(b(h)). Nil
// middleware is skipped.
func Chain(h dns.Handler, mw ...Middleware) dns.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		if mw[i] != nil {
			h = mw[i](h)
		}
	}
	return h
}

// none is the middleware of a fault set to nothing: the handler itself.
func none(next dns.Handler) dns.Handler { return next }

// Action is what Act does with one query.
type Action struct {
	// Drop: the query is never answered (the handler beneath never sees
	// it).
	Drop bool
	// Delay holds the answer this long before the handler beneath runs.
	Delay time.Duration
	// Hold, when set, holds the answer until it is closed (then Delay
	// runs).
	Hold <-chan struct{}
	// Copies is how many times each message written is sent; 0 means 1.
	Copies int
	// Sent, when set, is called once the answer has been written (every
	// copy), with the first write error; not when nothing was written
	// (dropped further in, or abandoned).
	Sent func(err error)
}

// deferred reports whether the answer waits.
func (a Action) deferred() bool { return a.Delay > 0 || a.Hold != nil }

// Act is the general fault: decide chooses each query's Action (it may
// look at w's addresses but must not write). The specific faults are Act
// with one field set.
func Act(decide func(w dns.ResponseWriter, q *dns.Msg) Action) Middleware {
	return func(next dns.Handler) dns.Handler {
		return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { serve(next, w, q, decide(w, q)) })
	}
}

// serve carries out one Action.
func serve(next dns.Handler, w dns.ResponseWriter, q *dns.Msg, a Action) {
	if a.Drop {
		return
	}
	if a.Copies > 1 {
		w = &copyWriter{ResponseWriter: w, n: a.Copies}
	}
	if !a.deferred() {
		if a.Sent == nil {
			next.ServeDNS(w, q)
			return
		}
		t := newTracker(w, false, a.Sent)
		next.ServeDNS(t, q)
		t.returned()
		return
	}
	// The answer is written after ServeDNS returns: take the writer over
	// now, close it when the answer is done or abandoned — unless a
	// HeldLimit above is full, and the query is dropped.
	l, _ := Context(w).Value(heldKey{}).(*HeldLimit)
	if !l.acquire() {
		if l.OnRefused != nil {
			l.OnRefused(w, q)
		}
		return
	}
	w.Hijack()
	go func() {
		defer l.release()
		if !wait(Context(w), a.Hold, a.Delay) {
			_ = w.Close() // abandoned: the server stopped
			return
		}
		t := newTracker(w, true, a.Sent)
		next.ServeDNS(t, q)
		t.returned()
	}()
}

// wait waits for hold to close, then for delay; false when ctx ended
// first.
func wait(ctx context.Context, hold <-chan struct{}, delay time.Duration) bool {
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return false
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// Delay holds every answer for d.
func Delay(d time.Duration) Middleware {
	if d <= 0 {
		return none
	}
	return Act(func(dns.ResponseWriter, *dns.Msg) Action { return Action{Delay: d} })
}

// Jitter holds each answer for a random time in [0, span), drawn from the
// query's own stream ("jitter"): answers leave in another order than
// their queries came. A nil draws is seeded from the clock (as for Drop
// and Duplicate).
func Jitter(span time.Duration, draws *Draws) Middleware {
	if span <= 0 {
		return none
	}
	draws = orNew(draws)
	return Act(func(_ dns.ResponseWriter, q *dns.Msg) Action {
		return Action{Delay: time.Duration(draws.For("jitter", q).Int64N(int64(span)))}
	})
}

// Drop leaves a fraction rate of the queries unanswered, each chosen by a
// draw from its own stream ("drop").
func Drop(rate float64, draws *Draws) Middleware {
	if rate <= 0 {
		return none
	}
	draws = orNew(draws)
	return Act(func(_ dns.ResponseWriter, q *dns.Msg) Action {
		return Action{Drop: draws.For("drop", q).Float64() < rate}
	})
}

// Duplicate sends a fraction rate of the answers twice, each chosen by a
// draw from its own stream ("duplicate").
func Duplicate(rate float64, draws *Draws) Middleware {
	if rate <= 0 {
		return none
	}
	draws = orNew(draws)
	return Act(func(_ dns.ResponseWriter, q *dns.Msg) Action {
		if draws.For("duplicate", q).Float64() < rate {
			return Action{Copies: 2}
		}
		return Action{}
	})
}

// Hold keeps the answer to q until the channel until(q) returns is closed;
// a nil channel lets it through at once.
func Hold(until func(q *dns.Msg) <-chan struct{}) Middleware {
	return Act(func(_ dns.ResponseWriter, q *dns.Msg) Action { return Action{Hold: until(q)} })
}

// AnswerFrom sends every answer from conn instead of the socket the query
// came to (to the query's source address): a reply from a spoofed source,
// which a careful client rejects. The server beneath counts none of these
// datagrams as its own.
func AnswerFrom(conn net.PacketConn) Middleware {
	return func(next dns.Handler) dns.Handler {
		return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			next.ServeDNS(&fromWriter{ResponseWriter: w, conn: conn}, q)
		})
	}
}

// Context is the context of w's answer: it ends when the server that
// handed out w stops. A ResponseWriter without a Context method has
// context.Background, which never ends.
func Context(w dns.ResponseWriter) context.Context {
	if c, ok := w.(interface{ Context() context.Context }); ok {
		return c.Context()
	}
	return context.Background()
}

// HeldLimit caps how many answers wait at once (held by Delay, Jitter,
// Hold or any deferring Act beneath Limit): a query whose answer would wait
// beyond the cap is dropped instead, and counted in Refused.
type HeldLimit struct {
	// OnRefused, when set before use, is called with each query dropped
	// for the cap (from the server's goroutine; it must be quick).
	OnRefused func(w dns.ResponseWriter, q *dns.Msg)

	max     int64
	held    atomic.Int64
	refused atomic.Uint64
}

// NewHeldLimit is a cap of n waiting answers (at least 1).
func NewHeldLimit(n int) *HeldLimit { return &HeldLimit{max: int64(max(1, n))} }

// Held is how many answers wait now.
func (l *HeldLimit) Held() int64 { return l.held.Load() }

// Refused counts queries dropped because the cap was reached.
func (l *HeldLimit) Refused() uint64 { return l.refused.Load() }

// acquire takes a place; a nil limit always has one.
func (l *HeldLimit) acquire() bool {
	if l == nil {
		return true
	}
	if l.held.Add(1) > l.max {
		l.held.Add(-1)
		l.refused.Add(1)
		return false
	}
	return true
}

func (l *HeldLimit) release() {
	if l != nil {
		l.held.Add(-1)
	}
}

type heldKey struct{}

// Limit makes the answers deferred by the middleware beneath it count
// against l; put it outermost: Chain(zone, Limit(l), Delay(d), ...).
func Limit(l *HeldLimit) Middleware {
	if l == nil {
		return none
	}
	return func(next dns.Handler) dns.Handler {
		return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			next.ServeDNS(&limitWriter{ResponseWriter: w, ctx: context.WithValue(Context(w), heldKey{}, l)}, q)
		})
	}
}

// limitWriter carries the HeldLimit in its Context.
type limitWriter struct {
	dns.ResponseWriter
	ctx context.Context
}

func (w *limitWriter) Context() context.Context { return w.ctx }
