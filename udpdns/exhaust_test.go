package udpdns

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fillTable takes every free ID of s with a placeholder call that nothing
// will ever answer, as if 65,536 queries were in flight, without sending
// them. It returns how many it took.
func fillTable(s *sock) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.c.now()
	n := 0
	for {
		id, ok, err := s.allocID(now, nil)
		if err != nil || !ok {
			return n
		}
		s.inflight[id] = &Call{s: s, id: id, state: EventSent, done: make(chan struct{})}
		s.n++
		s.st.Sent++
		n++
	}
}

// An ID freed after a sender found none free but before it started waiting
// must still wake it: with every ID in flight there is no quarantine timer
// to fall back on. The hook frees one in exactly that window.
func TestWaitForFreeIDNoLostWakeup(t *testing.T) {
	sink := newFakeServer(t, "127.0.0.1:0")
	c := newClient(t, Config{Server: sink.addr(), Quarantine: time.Nanosecond, Linger: time.Nanosecond})
	m := new(dns.Msg)
	m.SetQuestion("wake."+SynthSuffix, dns.TypeA)
	first, err := c.Send(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	fillTable(c.socks[0])
	var once sync.Once
	testHookBeforeWait = func() { once.Do(func() { first.Cancel() }) }
	defer func() { testHookBeforeWait = nil }()
	got := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), m) // no deadline: a lost wakeup blocks for ever
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send never woke although an ID was freed: lost wakeup")
	}
}

// Many senders wait at exhaustion while others free IDs; every sender must
// get an ID before the deadline, none twice in flight.
func TestExhaustionHammerNoLostWakeup(t *testing.T) {
	sink := newFakeServer(t, "127.0.0.1:0")
	c := newClient(t, Config{Server: sink.addr(), Quarantine: time.Nanosecond, Linger: time.Nanosecond})
	m := new(dns.Msg)
	m.SetQuestion("hammer."+SynthSuffix, dns.TypeA)
	const spare = 2 // IDs left free for 8 workers to share
	var calls []*Call
	for range spare {
		call, err := c.Send(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, call)
	}
	fillTable(c.socks[0])
	for _, call := range calls {
		call.Cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const workers, rounds = 8, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds { // take an ID (waiting when none is free), free it
				call, err := c.Send(ctx, m)
				if err != nil {
					errs <- err
					return
				}
				call.Cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := c.Stats(); st.InFlight != numIDs-spare || !st.Consistent() {
		t.Errorf("stats %v", st)
	}
}

// With the table nearly full and the free IDs in one block, each free ID
// must still be as likely as any other (a scan from a random start would
// almost always pick the block's first ID).
func TestAllocIDUniformWhenNearlyFull(t *testing.T) {
	c := newClient(t, Config{Server: netipLoop(t)})
	s := c.socks[0]
	fillTable(s)
	const lo, k, draws = 0x1000, 8, 8000
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := uint16(lo); id < lo+k; id++ {
		s.inflight[id] = nil
		s.n--
		s.release(id)
	}
	counts := map[uint16]int{}
	now := c.now()
	for range draws {
		id, ok, _ := s.allocID(now, nil)
		if !ok || id < lo || id >= lo+k {
			t.Fatalf("allocID = %#04x, %v; want one of the %d free", id, ok, k)
		}
		counts[id]++
		s.release(id)
	}
	// Expected 1,000 each, standard deviation ≈ 30: a uniform choice stays
	// well inside ±25%.
	for id := uint16(lo); id < lo+k; id++ {
		if n := counts[id]; n < 750 || n > 1250 {
			t.Errorf("id %#04x chosen %d times of %d, want about %d: %v", id, n, draws, draws/k, counts)
		}
	}
}

func netipLoop(t *testing.T) netip.AddrPort { return newFakeServer(t, "127.0.0.1:0").addr() }

// With every ID taken, a failed registration says how long until the
// earliest resting ID frees — quarantined or lingering, whichever is first —
// and that ID is given out once its time is up, not before.
func TestRegisterWhenFullReportsEarliestRest(t *testing.T) {
	fs := newFakeServer(t, "127.0.0.1:0")
	c := newClient(t, Config{Server: fs.addr(), Quarantine: time.Hour, Linger: time.Minute, FailWhenFull: true})
	s := c.socks[0]
	m := new(dns.Msg)
	m.SetQuestion("rest."+SynthSuffix, dns.TypeA)
	q, err := c.Send(context.Background(), m) // will be cancelled: quarantined an hour
	if err != nil {
		t.Fatal(err)
	}
	fillTable(s)
	q.Cancel()
	probe, _ := c.prepare(m, 0, nil)
	ok, w, err := s.register(probe)
	if ok || err != nil || w < 59*time.Minute || w > time.Hour {
		t.Fatalf("register = %v, %v, %v; want false and about an hour", ok, w, err)
	}
	// Answer one placeholder: it lingers a minute, the earlier of the two.
	s.mu.Lock()
	var lingering uint16
	for id, call := range s.inflight {
		if call != nil && call.packed == nil { // a placeholder
			lingering = uint16(id)
			s.inflight[id] = nil
			s.n--
			s.st.Matched++
			call.state = EventMatched
			s.rest(call, c.now(), &s.lingerQ)
			break
		}
	}
	later := c.now() + int64(2*time.Minute)
	s.mu.Unlock()
	ok, w, _ = s.register(probe)
	if ok || w < 59*time.Second || w > time.Minute {
		t.Fatalf("register = %v, %v; want false and about a minute", ok, w)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok, _ := s.allocID(later, nil); !ok || id != lingering {
		t.Errorf("two minutes on: allocID = %#04x, %v; want the lingering %#04x", id, ok, lingering)
	}
	if _, ok, _ := s.allocID(later, nil); ok {
		t.Error("the quarantined ID was given out before its hour")
	}
}
