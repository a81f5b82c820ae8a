package dnsexp

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns"
)

// benchQueries are the bench's queries, one per name, built once and only
// read (SendFunc copies what it sends).
var benchQueries = func() []*dns.Msg {
	q := make([]*dns.Msg, len(benchNames))
	for i, n := range benchNames {
		q[i] = new(dns.Msg)
		q[i].SetQuestion(n, dns.TypeA)
	}
	return q
}()

// benchBatch is how many replies the SendFunc driver reads per recvmmsg,
// and how many queries it sends per sendmmsg: the queries that a batch of
// replies' completions send go out together once the batch is handled.
const benchBatch = 64

// benchQueryTimeout is how long a query of the callback driver may go
// unanswered before it counts as lost and its slot sends the next (dnsperf
// -t 2).
const benchQueryTimeout = 2 * time.Second

// benchClientFunc drives udpdns's client like dnsperf drives its socket:
// concurrency slots, each sending its next query from the completion
// callback of the last (SendFunc), so a reply and the next query are
// handled on the socket's reader goroutine with no hand-off. A sweeper ends
// queries unanswered after benchQueryTimeout; after d, the queries still
// in flight get that long to finish before they are cancelled, like
// dnsperf's.
func benchClientFunc(ctx context.Context, server udpdns.Config, d time.Duration, concurrency int) (BenchResult, error) {
	server.FailWhenFull = true
	server.ReadBatch, server.WriteBatch = benchBatch, benchBatch
	c, err := udpdns.NewClient(server)
	if err != nil {
		return BenchResult{}, err
	}
	defer c.Close()
	// A slot's call is set only by the send that made it, and only if no
	// later send (from its completion, perhaps already run) has begun.
	type slot struct {
		mu   sync.Mutex
		gen  int
		call *udpdns.Call
		sent int64 // unix ns
		next int
	}
	var (
		mu      sync.Mutex
		lat     []float64
		lost    int
		stopped atomic.Bool
		open    sync.WaitGroup // slots still sending
		sendErr atomic.Pointer[error]
	)
	slots := make([]*slot, concurrency)
	var send func(sl *slot)
	send = func(sl *slot) {
		for !stopped.Load() && ctx.Err() == nil {
			sl.mu.Lock()
			i := sl.next
			sl.next += concurrency
			sl.gen++
			g := sl.gen
			sl.call, sl.sent = nil, time.Now().UnixNano()
			sl.mu.Unlock()
			call, err := c.SendFunc(ctx, benchQueries[i%len(benchQueries)], func(call *udpdns.Call) {
				// Answered or not, and the latency, as dnsperf counts
				// them: the reply is matched (RFC 5452) and its
				// records' bounds checked, not unpacked.
				err := call.Err()
				mu.Lock()
				if err != nil {
					lost++
				} else {
					lat = append(lat, float64(call.RTT().Nanoseconds())/1e6)
				}
				mu.Unlock()
				send(sl)
			})
			if err == nil {
				sl.mu.Lock()
				if sl.gen == g {
					sl.call = call
				}
				sl.mu.Unlock()
				return
			}
			if !errors.Is(err, udpdns.ErrIDsExhausted) {
				sendErr.CompareAndSwap(nil, &err)
				break
			}
			// Every ID taken or resting: wait off the reader, then retry.
			go func() { time.Sleep(time.Millisecond); send(sl) }()
			return
		}
		open.Done()
	}
	start := time.Now()
	for w := range concurrency {
		slots[w] = &slot{next: w}
		open.Add(1)
	}
	for _, sl := range slots {
		send(sl)
	}
	sweep := func(older time.Duration) {
		now := time.Now().UnixNano()
		for _, sl := range slots {
			sl.mu.Lock()
			call, sent := sl.call, sl.sent
			sl.mu.Unlock()
			if call != nil && now-sent > int64(older) {
				call.Cancel()
			}
		}
	}
	sweepFor(ctx, d, sweep)
	stopped.Store(true)
	el := time.Since(start).Seconds()
	mu.Lock()
	inTime := len(lat) // completed within d: the rate
	mu.Unlock()
	finishOrCancel(&open, sweep)
	if p := sendErr.Load(); p != nil {
		return BenchResult{}, *p
	}
	mu.Lock()
	defer mu.Unlock()
	return benchSummary(lat, lost, el, inTime), nil
}

// sweepFor runs the sweeper for d (or until ctx ends): every 100 ms, the
// queries older than benchQueryTimeout are lost and end.
func sweepFor(ctx context.Context, d time.Duration, sweep func(older time.Duration)) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		select {
		case <-tick.C:
			sweep(benchQueryTimeout)
		case <-end.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// finishOrCancel waits for the last queries in flight: answered soon, or
// cancelled after benchQueryTimeout (sweep(0) ends them all).
func finishOrCancel(open *sync.WaitGroup, sweep func(older time.Duration)) {
	finished := make(chan struct{})
	go func() { open.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(benchQueryTimeout):
		sweep(0)
		<-finished
	}
}

// benchSummary is the client's result: lat holds the latencies (ms) of
// every answered query, the last ones after the duration too (the CPU
// measured covers them); the rate counts the inTime answered within the
// el seconds.
func benchSummary(lat []float64, lost int, el float64, inTime int) BenchResult {
	sort.Float64s(lat)
	r := BenchResult{Tool: "udpdns", Completed: len(lat), Lost: lost, Seconds: el, QPS: float64(inTime) / el,
		P50MS: percentileMS(lat, 0.5), P99MS: percentileMS(lat, 0.99)}
	var sum float64
	for _, v := range lat {
		sum += v
	}
	if len(lat) > 0 {
		r.AvgMS = sum / float64(len(lat))
	}
	return r
}
