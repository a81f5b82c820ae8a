package udpdns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

func TestExchangeAnswersEachCallerItsOwnQuestion(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		srv  ServerConfig
	}{
		{"one socket, batched reads", Config{ReadBatch: 32}, faulty(dnsfault.Jitter(3*time.Millisecond, dnsfault.NewDraws(1)))},
		{"one socket, single reads (default)", Config{}, faulty(dnsfault.Jitter(3*time.Millisecond, dnsfault.NewDraws(1)))},
		{"pool of four sockets with 0x20", Config{Sockets: 4, Case0x20: true}, faulty(dnsfault.Jitter(3*time.Millisecond, dnsfault.NewDraws(1)))},
		{"one socket, batched writes", Config{WriteBatch: 32}, faulty(dnsfault.Jitter(3*time.Millisecond, dnsfault.NewDraws(1)))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.srv)
			tc.cfg.Server = srv.Addr()
			tc.cfg.Timeout = 5 * time.Second
			c := newClient(t, tc.cfg)
			ctx := ctxFor(t, 10*time.Second)
			const n = 300
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("q%d.%s", i, SynthSuffix)
					r, err := c.Query(ctx, name, dns.TypeA)
					if err != nil {
						errs <- err
						return
					}
					if got, want := answerA(r), SynthA(name); got != want || r.Question[0].Name != name {
						errs <- fmt.Errorf("%s: got %v for %s, want %v", name, got, r.Question[0].Name, want)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			st := c.Stats()
			if !st.Consistent() || st.Matched != n || st.InFlight != 0 {
				t.Errorf("stats %v", st)
			}
		})
	}
}

func TestLateReplyAfterTimeoutCountedLateAndCompletesNothing(t *testing.T) {
	fs := newFakeServer(t, "127.0.0.1:0")
	ch, trace := events(64)
	// The first attempt is held (never answered) until its retry arrives,
	// which takes one timeout; the retry must then be answered within a
	// timeout, which 1 s allows even on a loaded machine.
	c := newClient(t, Config{Server: fs.addr(), Timeout: time.Second, Retries: 1, Trace: trace})
	name := "late." + SynthSuffix
	type res struct {
		r   *dns.Msg
		err error
	}
	done := make(chan res, 1)
	go func() {
		r, err := c.Query(ctxFor(t, 5*time.Second), name, dns.TypeA)
		done <- res{r, err}
	}()
	q1, from := fs.recv() // held: answered only once the retry has arrived
	q2, _ := fs.recv()    // the retry, proof that q1 timed out
	if q1.Id == q2.Id {
		t.Fatalf("retry reused id %#04x", q1.Id)
	}
	fs.answer(q1, q1.Id, from) // late, same question, same source
	waitFor(t, ch, func(e Event) bool { return e.Kind == EventLate && e.ID == q1.Id })
	fs.answer(q2, q2.Id, from)
	r := <-done
	if r.err != nil || r.r.Id != q2.Id {
		t.Fatalf("got %v, %v; want the retry's answer id %#04x", r.r, r.err, q2.Id)
	}
	st := c.Stats()
	if st.Late != 1 || st.Matched != 1 || st.TimedOut != 1 || !st.Consistent() {
		t.Errorf("stats %v", st)
	}
	// The timed-out ID stays reserved: no new query can be given it yet.
	s := c.socks[0]
	s.mu.Lock()
	free := s.free(q1.Id, c.now())
	s.mu.Unlock()
	if free {
		t.Errorf("id %#04x free again right after its query timed out", q1.Id)
	}
}

func TestDuplicateRepliesDeliveredOnce(t *testing.T) {
	srv := startServer(t, faulty(dnsfault.Duplicate(1, nil)))
	ch, trace := events(256)
	c := newClient(t, Config{Server: srv.Addr(), Timeout: 5 * time.Second, Trace: trace})
	const n = 20
	for i := range n {
		if _, err := c.Query(ctxFor(t, 5*time.Second), fmt.Sprintf("d%d.%s", i, SynthSuffix), dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	dups := 0
	waitFor(t, ch, func(e Event) bool {
		if e.Kind == EventDuplicate {
			dups++
		}
		return dups == n
	})
	if st := c.Stats(); st.Matched != n || st.Duplicate != n || !st.Consistent() {
		t.Errorf("stats %v", st)
	}
}

func TestContextCancellationFreesTheSlot(t *testing.T) {
	fs := newFakeServer(t, "127.0.0.1:0")
	ch, trace := events(16)
	c := newClient(t, Config{Server: fs.addr(), Timeout: 10 * time.Second, Quarantine: time.Minute, Trace: trace})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := c.Query(ctx, "cancel."+SynthSuffix, dns.TypeA); errc <- err }()
	sent := waitFor(t, ch, func(e Event) bool { return e.Kind == EventSent })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	st := c.Stats()
	if st.InFlight != 0 || st.Cancelled != 1 || !st.Consistent() {
		t.Errorf("stats %v", st)
	}
	s := c.socks[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight[sent.ID] != nil || s.free(sent.ID, c.now()) || !s.free(sent.ID, c.now()+int64(time.Minute)) {
		t.Errorf("id %#04x: want out of the table, quarantined for a minute, then free", sent.ID)
	}
}

func TestIDExhaustionNeverCollides(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 131,072 datagrams")
	}
	tests := []struct {
		name string
		fail bool
	}{{"fails when asked not to wait", true}, {"waits for a freed ID", false}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeServer(t, "127.0.0.1:0") // never reads: a black hole
			c := newClient(t, Config{Server: fs.addr(), FailWhenFull: tc.fail, Quarantine: 20 * time.Millisecond})
			m := new(dns.Msg)
			m.SetQuestion("full."+SynthSuffix, dns.TypeA)
			calls := make([]*Call, 0, numIDs)
			seen := make([]bool, numIDs)
			for range numIDs {
				call, err := c.Send(context.Background(), m)
				if err != nil {
					t.Fatalf("after %d: %v", len(calls), err)
				}
				if seen[call.ID()] {
					t.Fatalf("id %#04x given twice", call.ID())
				}
				seen[call.ID()] = true
				calls = append(calls, call)
			}
			if st := c.Stats(); st.InFlight != numIDs || !st.Consistent() {
				t.Fatalf("stats %v", st)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			_, err := c.Send(ctx, m)
			cancel()
			if !errors.Is(err, ErrIDsExhausted) {
				t.Fatalf("65,537th query: err = %v, want ErrIDsExhausted", err)
			}
			if tc.fail {
				return
			}
			got := make(chan *Call, 1)
			go func() {
				call, err := c.Send(ctxFor(t, 5*time.Second), m)
				if err != nil {
					t.Error(err)
				}
				got <- call
			}()
			freed := calls[12345]
			freed.Cancel()
			call := <-got
			if call == nil || call.ID() != freed.ID() {
				t.Fatalf("waiting query got %v, want the only free id %#04x", call, freed.ID())
			}
		})
	}
}

func TestGoroutinesUnchangedAfterARun(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := StartServer(faulty(dnsfault.Jitter(time.Millisecond, dnsfault.NewDraws(1))))
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		c, err := NewClient(Config{Server: srv.Addr(), Sockets: 2, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = c.Query(context.Background(), fmt.Sprintf("g%d.%s", i, SynthSuffix), dns.TypeA)
			}()
		}
		wg.Wait()
	}()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

func TestCase0x20RequiresTheExactCaseEchoed(t *testing.T) {
	fs := newFakeServer(t, "127.0.0.1:0")
	ch, trace := events(16)
	c := newClient(t, Config{Server: fs.addr(), Case0x20: true, Timeout: 5 * time.Second, Trace: trace})
	name := "abcdefghijklmnopqrstuvwxyz." + SynthSuffix
	done := make(chan error, 1)
	go func() { _, err := c.Query(ctxFor(t, 5*time.Second), name, dns.TypeA); done <- err }()
	q, from := fs.recv()
	lowered := q.Copy()
	lowered.Question[0].Name = strings.ToLower(q.Question[0].Name)
	if lowered.Question[0].Name == q.Question[0].Name {
		t.Skip("the random case came out all lower-case (1 in 2^34)")
	}
	fs.answer(lowered, q.Id, from)
	waitFor(t, ch, func(e Event) bool { return e.Kind == EventRejected && e.Reason == WrongQuestion })
	fs.answer(q, q.Id, from)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A query whose context is already done is not sent at all.
func TestExchangeWithDoneContextSendsNothing(t *testing.T) {
	fs := newFakeServer(t, "127.0.0.1:0")
	c := newClient(t, Config{Server: fs.addr()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Query(ctx, "never."+SynthSuffix, dns.TypeA); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if st := c.Stats(); st.Sent != 0 || !st.Consistent() {
		t.Errorf("stats %v, want nothing sent", st)
	}
}

// With 0x20 the caller sees its own letter case in the question and in the
// records owned by the QNAME; the raw reply keeps the case sent.
func TestCase0x20CaseRestoredInAnswers(t *testing.T) {
	srv := startServer(t, ServerConfig{})
	c := newClient(t, Config{Server: srv.Addr(), Case0x20: true, Timeout: 5 * time.Second})
	name := "abcdefghijklmnopqrstuvwxyz." + SynthSuffix
	r, err := c.Query(ctxFor(t, 5*time.Second), name, dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answer) == 0 || r.Question[0].Name != name {
		t.Fatalf("reply %v", r)
	}
	for _, rr := range r.Answer {
		if rr.Header().Name != name {
			t.Errorf("answer owner %q, want %q", rr.Header().Name, name)
		}
	}
}

// SendFunc's done runs once per call: on the reader for a reply (and may
// send the next query from there), on the canceller for a cancel.
func TestSendFuncCallsDoneOnce(t *testing.T) {
	srv := startServer(t, ServerConfig{})
	c := newClient(t, Config{Server: srv.Addr(), FailWhenFull: true})
	m := new(dns.Msg)
	m.SetQuestion("x.synth.lab.", dns.TypeA)
	const chain = 50
	var n atomic.Int32
	finished := make(chan error, 1)
	var next func(*Call)
	next = func(call *Call) {
		if _, err := call.Reply(); err != nil {
			finished <- err
			return
		}
		if call.Err() != nil || call.Rcode() != dns.RcodeSuccess {
			finished <- fmt.Errorf("answered, but Err %v and Rcode %d", call.Err(), call.Rcode())
			return
		}
		if n.Add(1) == chain {
			finished <- nil
			return
		}
		if _, err := c.SendFunc(context.Background(), m, next); err != nil {
			finished <- err
		}
	}
	if _, err := c.SendFunc(context.Background(), m, next); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-finished:
		if err != nil || n.Load() != chain {
			t.Fatalf("after %d replies: %v", n.Load(), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d replies", n.Load(), chain)
	}
	// Cancelled: done runs once, with the cancellation.
	sink := newFakeServer(t, "127.0.0.1:0")
	c2 := newClient(t, Config{Server: sink.addr()})
	var calls atomic.Int32
	var got error
	call, err := c2.SendFunc(context.Background(), m, func(call *Call) { calls.Add(1); _, got = call.Reply() })
	if err != nil {
		t.Fatal(err)
	}
	call.Cancel()
	call.Cancel()
	if calls.Load() != 1 || !errors.Is(got, context.Canceled) {
		t.Errorf("done ran %d times with %v, want once with context.Canceled", calls.Load(), got)
	}
}

// SendFunc's done runs once for every way a call ends, the ends no Send
// returns included: a client closed under it, and a batched datagram that
// failed to go out after its Send had returned (queued behind the reader,
// which held the writer's role).
func TestSendFuncCallsDoneWhenTheCallEnds(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("x.synth.lab.", dns.TypeA)
	tests := []struct {
		name string
		cfg  func(sink netip.AddrPort) Config
		end  func(t *testing.T, c *Client, send func() *Call)
		want error
	}{
		{"the client closes", func(sink netip.AddrPort) Config { return Config{Server: sink} },
			func(t *testing.T, c *Client, send func() *Call) { send(); c.Close() }, ErrClosed},
		{"a queued datagram fails to go out", func(netip.AddrPort) Config {
			// Port 0: the kernel refuses every datagram.
			return Config{Server: netip.MustParseAddrPort("127.0.0.1:0"), WriteBatch: 4}
		}, func(t *testing.T, c *Client, send func() *Call) {
			s := c.socks[0]
			if !s.holdWrites() {
				t.Fatal("could not hold the writer's role")
			}
			send()
			s.releaseWrites()
		}, syscall.EINVAL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := newFakeServer(t, "127.0.0.1:0")
			c := newClient(t, tc.cfg(sink.addr()))
			var calls atomic.Int32
			var lastCall atomic.Pointer[Call]
			got := make(chan error, 2)
			send := func() *Call {
				call, err := c.SendFunc(context.Background(), m, func(call *Call) { calls.Add(1); lastCall.Store(call); got <- call.Err() })
				if err != nil {
					t.Fatalf("SendFunc: %v", err)
				}
				return call
			}
			tc.end(t, c, send)
			select {
			case err := <-got:
				if !errors.Is(err, tc.want) {
					t.Errorf("done ran with %v, want %v", err, tc.want)
				}
				if call := lastCall.Load(); call == nil || call.Rcode() != -1 {
					t.Errorf("an unanswered call's Rcode is not -1")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("done never ran")
			}
			if calls.Load() != 1 {
				t.Errorf("done ran %d times, want once", calls.Load())
			}
		})
	}
}

// A done that sends again when its queued datagram failed does not run
// inside the writer's loop: its Send is a writer of its own and returns
// the failure itself, so done runs once and the reader is never held.
func TestSendFuncDoneThatSendsAgainAfterAFailedWrite(t *testing.T) {
	c := newClient(t, Config{Server: netip.MustParseAddrPort("127.0.0.1:0"), WriteBatch: 4})
	m := new(dns.Msg)
	m.SetQuestion("x.synth.lab.", dns.TypeA)
	var calls atomic.Int32
	resent := make(chan error, 1)
	s := c.socks[0]
	if !s.holdWrites() {
		t.Fatal("could not hold the writer's role")
	}
	if _, err := c.SendFunc(context.Background(), m, func(call *Call) {
		calls.Add(1)
		_, err := c.SendFunc(context.Background(), m, func(*Call) { calls.Add(1) })
		resent <- err
	}); err != nil {
		t.Fatal(err)
	}
	s.releaseWrites()
	select {
	case err := <-resent:
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("the resend's SendFunc returned %v, want EINVAL", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("done never ran")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("done ran %d times, want once (the resend failed in its own Send)", n)
	}
}
