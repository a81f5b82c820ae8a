package dnsfault_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// recorder is a ResponseWriter standing in for a server: it keeps what
// was written and when, and knows when the answer is done (the handler
// returned without hijacking, or closed after).
type recorder struct {
	ctx    context.Context
	remote net.Addr

	mu       sync.Mutex
	msgs     []*dns.Msg
	at       []time.Time
	hijacked bool
	closes   int
	done     chan struct{}
	writeErr error
}

func newRecorder(ctx context.Context) *recorder {
	return &recorder{ctx: ctx, remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}, done: make(chan struct{})}
}

func (r *recorder) Context() context.Context { return r.ctx }
func (r *recorder) LocalAddr() net.Addr      { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr     { return r.remote }
func (r *recorder) TsigStatus() error        { return nil }
func (r *recorder) TsigTimersOnly(bool)      {}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.writeErr != nil {
		return r.writeErr
	}
	r.msgs = append(r.msgs, m.Copy())
	r.at = append(r.at, time.Now())
	return nil
}

func (r *recorder) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), r.WriteMsg(m)
}

func (r *recorder) Hijack() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hijacked = true
}

func (r *recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes++
	if r.closes == 1 && r.hijacked {
		close(r.done)
	}
	return nil
}

// serveOne hands q to h as a server would and waits until the answer is
// done; it returns when the handler returned too.
func serveOne(t *testing.T, h dns.Handler, q *dns.Msg, ctx context.Context) (*recorder, time.Time) {
	t.Helper()
	r := newRecorder(ctx)
	start := time.Now()
	h.ServeDNS(r, q)
	r.mu.Lock()
	hijacked := r.hijacked
	r.mu.Unlock()
	if !hijacked {
		close(r.done)
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the answer was never done", q.Question[0].Name)
	}
	return r, start
}

// answer is the handler beneath: one A record per query.
var answer = dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
		A: net.IPv4(192, 0, 2, 1)}}
	_ = w.WriteMsg(m)
})

func query(i int) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(fmt.Sprintf("q%d.example.", i), dns.TypeA)
	q.Id = uint16(1000 + i)
	return q
}

// Each fault seen from the writer: how many datagrams, hijacked or not,
// how late.
func TestFaults(t *testing.T) {
	open := make(chan struct{})
	close(open)
	draws := dnsfault.NewDraws(1)
	tests := []struct {
		name       string
		mw         dnsfault.Middleware
		writes     int
		hijacked   bool
		minLate    time.Duration
		maxLate    time.Duration // 0: no bound
		wantCloses int
	}{
		{"no faults", nil, 1, false, 0, 0, 0},
		{"Delay(0) is the handler itself", dnsfault.Delay(0), 1, false, 0, 0, 0},
		{"Delay(30ms) answers 30ms later from a hijacked writer", dnsfault.Delay(30 * time.Millisecond), 1, true, 30 * time.Millisecond, 0, 1},
		{"Jitter(20ms) answers within [0, 20ms)", dnsfault.Jitter(20*time.Millisecond, draws), 1, true, 0, 2 * time.Second, 1},
		{"Drop(1) never answers", dnsfault.Drop(1, draws), 0, false, 0, 0, 0},
		{"Drop(0) always answers", dnsfault.Drop(0, draws), 1, false, 0, 0, 0},
		{"Duplicate(1) answers twice", dnsfault.Duplicate(1, draws), 2, false, 0, 0, 0},
		{"Hold on a closed channel answers at once, hijacked", dnsfault.Hold(func(*dns.Msg) <-chan struct{} { return open }), 1, true, 0, 0, 1},
		{"Hold with no channel passes through", dnsfault.Hold(func(*dns.Msg) <-chan struct{} { return nil }), 1, false, 0, 0, 0},
		{"Act: three copies after 10ms", dnsfault.Act(func(dns.ResponseWriter, *dns.Msg) dnsfault.Action {
			return dnsfault.Action{Copies: 3, Delay: 10 * time.Millisecond}
		}), 3, true, 10 * time.Millisecond, 0, 1},
		{"Delay inside Hold: one hijack, one close", func(next dns.Handler) dns.Handler {
			return dnsfault.Chain(next, dnsfault.Hold(func(*dns.Msg) <-chan struct{} { return open }), dnsfault.Delay(5*time.Millisecond))
		}, 1, true, 5 * time.Millisecond, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := dnsfault.Chain(answer, tt.mw)
			for i := range 5 {
				r, start := serveOne(t, h, query(i), context.Background())
				time.Sleep(time.Millisecond) // a stray late write would show
				r.mu.Lock()
				if len(r.msgs) != tt.writes || r.hijacked != tt.hijacked || r.closes != tt.wantCloses {
					t.Errorf("query %d: %d written, hijacked %v, closed %d times; want %d, %v, %d",
						i, len(r.msgs), r.hijacked, r.closes, tt.writes, tt.hijacked, tt.wantCloses)
				}
				for _, at := range r.at {
					if late := at.Sub(start); late < tt.minLate || (tt.maxLate > 0 && late > tt.maxLate) {
						t.Errorf("query %d answered after %v, want %v to %v", i, late, tt.minLate, tt.maxLate)
					}
				}
				for _, m := range r.msgs {
					if m.Id != query(i).Id {
						t.Errorf("query %d: answer id %d", i, m.Id)
					}
				}
				r.mu.Unlock()
			}
		})
	}
}

// The random faults hit about the fraction asked, with the draws of one
// seed the same whatever order the queries come in.
func TestRandomFaultsFractionAndSeed(t *testing.T) {
	const n = 4000
	tests := []struct {
		name string
		mw   func(*dnsfault.Draws) dnsfault.Middleware
		hit  func(r *recorder) bool
		want float64
	}{
		{"drop a quarter", func(d *dnsfault.Draws) dnsfault.Middleware { return dnsfault.Drop(0.25, d) },
			func(r *recorder) bool { return len(r.msgs) == 0 }, 0.25},
		{"duplicate a tenth", func(d *dnsfault.Draws) dnsfault.Middleware { return dnsfault.Duplicate(0.1, d) },
			func(r *recorder) bool { return len(r.msgs) == 2 }, 0.1},
		{"Jitter's draw below 1ms: about half under 500µs", func(d *dnsfault.Draws) dnsfault.Middleware {
			return dnsfault.Act(func(_ dns.ResponseWriter, q *dns.Msg) dnsfault.Action {
				// The draw Jitter makes, without the wait.
				return dnsfault.Action{Drop: d.For("jitter", q).Int64N(int64(time.Millisecond)) < int64(500*time.Microsecond)}
			})
		}, func(r *recorder) bool { return len(r.msgs) == 0 }, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome := func(order []int) []bool {
				h := tt.mw(dnsfault.NewDraws(7))(answer)
				out := make([]bool, n)
				for _, i := range order {
					r, _ := serveOne(t, h, query(i), context.Background())
					out[i] = tt.hit(r)
				}
				return out
			}
			forward, backward := make([]int, n), make([]int, n)
			for i := range n {
				forward[i], backward[i] = i, n-1-i
			}
			a, b := outcome(forward), outcome(backward)
			hits := 0
			for i := range n {
				if a[i] != b[i] {
					t.Fatalf("query %d: %v in order, %v in reverse", i, a[i], b[i])
				}
				if a[i] {
					hits++
				}
			}
			if f := float64(hits) / n; f < tt.want-0.03 || f > tt.want+0.03 {
				t.Errorf("hit %.3f of the queries, want %.2f±0.03", f, tt.want)
			}
		})
	}
}

// The same query asked again draws anew; another seed draws otherwise.
func TestDrawsPerOccurrenceAndSeed(t *testing.T) {
	q := query(1)
	d := dnsfault.NewDraws(3)
	first := d.For("drop", q).Uint64()
	again := d.For("drop", q).Uint64()
	other := dnsfault.NewDraws(4).For("drop", q).Uint64()
	fresh := dnsfault.NewDraws(3).For("drop", q).Uint64()
	otherFault := dnsfault.NewDraws(3).For("jitter", q).Uint64()
	switch {
	case first == again:
		t.Error("the same query asked twice drew the same")
	case first == other:
		t.Error("two seeds drew the same")
	case first != fresh:
		t.Error("one seed drew differently")
	case first == otherFault:
		t.Error("two faults drew the same")
	}
	if dnsfault.NewDraws(0).Seed() == 0 {
		t.Error("seed 0 was not replaced by one from the clock")
	}
}

// A deferred answer whose context ends before it is due is abandoned:
// nothing written, the writer closed.
func TestDeferredAnswerAbandonedWhenContextEnds(t *testing.T) {
	never := make(chan struct{})
	tests := []struct {
		name string
		mw   dnsfault.Middleware
	}{
		{"held forever", dnsfault.Hold(func(*dns.Msg) <-chan struct{} { return never })},
		{"delayed an hour", dnsfault.Delay(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			r, _ := serveOne(t, dnsfault.Chain(answer, tt.mw), query(0), ctx)
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.msgs) != 0 || r.closes != 1 {
				t.Errorf("%d written, closed %d times; want nothing written, closed once", len(r.msgs), r.closes)
			}
		})
	}
}

// Act's Sent hook runs once the answer is written, every copy, with the
// first write error; not when nothing was written.
func TestActSent(t *testing.T) {
	failing := errors.New("no route")
	tests := []struct {
		name     string
		action   dnsfault.Action
		inner    dnsfault.Middleware
		writeErr error
		calls    int
		wantErr  error
	}{
		{"written at once", dnsfault.Action{}, nil, nil, 1, nil},
		{"written late, two copies", dnsfault.Action{Delay: 5 * time.Millisecond, Copies: 2}, nil, nil, 1, nil},
		{"the write failed", dnsfault.Action{}, nil, failing, 1, failing},
		{"dropped further in: not called", dnsfault.Action{}, dnsfault.Drop(1, nil), nil, 0, nil},
		{"delayed further in: called when written", dnsfault.Action{}, dnsfault.Delay(5 * time.Millisecond), nil, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []error
			a := tt.action
			a.Sent = func(err error) { mu.Lock(); calls = append(calls, err); mu.Unlock() }
			h := dnsfault.Chain(answer, dnsfault.Act(func(dns.ResponseWriter, *dns.Msg) dnsfault.Action { return a }), tt.inner)
			r := newRecorder(context.Background())
			r.writeErr = tt.writeErr
			h.ServeDNS(r, query(0))
			if r.hijacked {
				<-r.done
			}
			time.Sleep(10 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != tt.calls || (len(calls) > 0 && !errors.Is(calls[0], tt.wantErr)) {
				t.Errorf("Sent called with %v, want %d call(s) with %v", calls, tt.calls, tt.wantErr)
			}
		})
	}
}

// AnswerFrom sends the answer from another socket to the query's source.
func TestAnswerFrom(t *testing.T) {
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	client, alt := listen(), listen()
	tests := []struct {
		name  string
		chain []dnsfault.Middleware
		want  int
	}{
		{"one answer from the other socket", []dnsfault.Middleware{dnsfault.AnswerFrom(alt)}, 1},
		{"duplicated, both from the other socket", []dnsfault.Middleware{dnsfault.AnswerFrom(alt), dnsfault.Duplicate(1, nil)}, 2},
		{"delayed, from the other socket", []dnsfault.Middleware{dnsfault.AnswerFrom(alt), dnsfault.Delay(5 * time.Millisecond)}, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRecorder(context.Background())
			r.remote = client.LocalAddr()
			q := query(i)
			dnsfault.Chain(answer, tt.chain...).ServeDNS(r, q)
			buf := make([]byte, 512)
			for range tt.want {
				_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := client.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatal(err)
				}
				m := new(dns.Msg)
				if err := m.Unpack(buf[:n]); err != nil || m.Id != q.Id {
					t.Errorf("got %v (%v), want the answer to id %d", m, err, q.Id)
				}
				if want := alt.LocalAddr().(*net.UDPAddr).AddrPort(); from != netip.AddrPortFrom(want.Addr(), want.Port()) {
					t.Errorf("answer from %v, want the other socket %v", from, want)
				}
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.msgs) != 0 {
				t.Errorf("%d answers went through the server's own writer", len(r.msgs))
			}
		})
	}
}

// Chain puts the first middleware outermost and skips nil.
func TestChainOrder(t *testing.T) {
	var order []string
	tag := func(s string) dnsfault.Middleware {
		return func(next dns.Handler) dns.Handler {
			return dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) { order = append(order, s); next.ServeDNS(w, q) })
		}
	}
	serveOne(t, dnsfault.Chain(answer, tag("a"), nil, tag("b"), tag("c")), query(0), context.Background())
	if fmt.Sprint(order) != "[a b c]" {
		t.Errorf("order %v, want [a b c]", order)
	}
}
