package dnsfault_test

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// A HeldLimit lets at most its cap of answers wait: queries beyond it are
// dropped (never answered, the writer not hijacked) and counted; places
// come back as held answers are written.
func TestHeldLimitCapsWaitingAnswers(t *testing.T) {
	release := make(chan struct{})
	l := dnsfault.NewHeldLimit(2)
	h := dnsfault.Chain(answer, dnsfault.Limit(l), dnsfault.Hold(func(q *dns.Msg) <-chan struct{} { return release }))
	var recs []*recorder
	for i := range 5 {
		r := newRecorder(context.Background())
		h.ServeDNS(r, query(i)) // returns once the answer is held or dropped
		recs = append(recs, r)
	}
	if l.Held() != 2 || l.Refused() != 3 {
		t.Fatalf("held %d, refused %d; want 2 held, 3 refused", l.Held(), l.Refused())
	}
	for i, r := range recs[2:] {
		r.mu.Lock()
		if r.hijacked || len(r.msgs) != 0 {
			t.Errorf("query %d beyond the cap: hijacked %v, %d answers; want dropped", i+2, r.hijacked, len(r.msgs))
		}
		r.mu.Unlock()
	}
	close(release)
	for i, r := range recs[:2] {
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			t.Fatalf("held answer %d never done", i)
		}
		r.mu.Lock()
		if len(r.msgs) != 1 {
			t.Errorf("held answer %d: %d messages, want 1", i, len(r.msgs))
		}
		r.mu.Unlock()
	}
	// The places are given back once the held answers are closed: a new
	// query is held again.
	l2done := make(chan struct{})
	go func() { defer close(l2done); serveOne(t, h, query(9), context.Background()) }()
	select {
	case <-l2done:
	case <-time.After(5 * time.Second):
		t.Fatal("a query after the held answers were written was not answered")
	}
	if l.Refused() != 3 {
		t.Errorf("refused %d after the cap freed, want 3", l.Refused())
	}
}

// dnsfault.Limit(nil) is no limit: deferred answers are all held.
func TestNilHeldLimitIsNoLimit(t *testing.T) {
	h := dnsfault.Chain(answer, dnsfault.Limit(nil), dnsfault.Delay(time.Millisecond))
	for i := range 3 {
		if r, _ := serveOne(t, h, query(i), context.Background()); len(r.msgs) != 1 {
			t.Errorf("query %d: %d answers, want 1", i, len(r.msgs))
		}
	}
}
