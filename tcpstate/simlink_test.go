package tcpstate

import (
	"bytes"
	"container/heap"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

// packet is a segment in flight on the simulated link.
type packet struct {
	at  time.Duration
	id  int
	to  int // index of the receiving endpoint
	seg Segment
}

type packetQueue []packet

func (q packetQueue) Len() int { return len(q) }
func (q packetQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].id < q[j].id
}
func (q packetQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *packetQueue) Push(x any)   { *q = append(*q, x.(packet)) }
func (q *packetQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

// link joins two endpoints through a lossy, duplicating, reordering channel
// driven by a seeded random source and a simulated clock.
type link struct {
	t       testing.TB
	rng     *rand.Rand
	now     time.Duration
	ep      [2]*Endpoint
	out     Output
	q       packetQueue
	nextID  int
	loss    float64
	dup     float64
	delay   time.Duration
	jitter  time.Duration
	sent    [2]int
	dropped int
}

func newLink(t testing.TB, seed uint64, a, b *Endpoint) *link {
	return &link{
		t: t, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ep: [2]*Endpoint{a, b}, delay: 10 * time.Millisecond, now: time.Second,
	}
}

// flush puts what endpoint from emitted on the wire.
func (l *link) flush(from int) {
	for _, s := range l.out.Segments {
		l.sent[from]++
		if l.rng.Float64() < l.loss {
			l.dropped++
			continue
		}
		copies := 1
		if l.rng.Float64() < l.dup {
			copies = 2
		}
		for range copies {
			s2 := s
			s2.Payload = append([]byte(nil), s.Payload...)
			d := l.delay
			if l.jitter > 0 {
				d += time.Duration(l.rng.Int64N(int64(l.jitter)))
			}
			heap.Push(&l.q, packet{at: l.now + d, id: l.nextID, to: 1 - from, seg: s2})
			l.nextID++
		}
	}
	l.out.Reset()
}

// step delivers the next packet or fires the next timer, whichever is
// first. It reports false when nothing is pending.
func (l *link) step() bool {
	next, which := time.Duration(-1), -1
	if len(l.q) > 0 {
		next, which = l.q[0].at, 2
	}
	for i, e := range l.ep {
		if at, ok := e.NextTimer(); ok && (which < 0 || at < next) {
			next, which = at, i
		}
	}
	if which < 0 {
		return false
	}
	l.now = max(l.now, next)
	if which == 2 {
		p := heap.Pop(&l.q).(packet)
		l.ep[p.to].HandleSegment(l.now, &p.seg, &l.out)
		l.flush(p.to)
	} else {
		l.ep[which].HandleTimer(l.now, &l.out)
		l.flush(which)
	}
	return true
}

// pattern returns n deterministic pseudo-random bytes.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// transfer runs a full connection lifetime: handshake, size bytes each way,
// close from both sides, and checks the byte streams and final states.
func transfer(t testing.TB, seed uint64, size int, loss, dup float64, jitter time.Duration) *link {
	cfg := Config{
		MinRTO:     200 * time.Millisecond,
		InitialRTO: time.Second,
		MaxRTO:     10 * time.Second,
		MaxRetries: 30,
		MSL:        time.Second,
	}
	ca, cb := cfg, cfg
	ca.ISS = func() Seq { return Seq(0xffffffff - 100000) } // wraps early
	cb.ISS = func() Seq { return 0x7fffff00 }
	a, b := NewEndpoint(ca), NewEndpoint(cb)
	l := newLink(t, seed, a, b)
	l.loss, l.dup, l.jitter = loss, dup, jitter
	if err := b.OpenPassive(l.now, 2222, &l.out); err != nil {
		t.Fatal(err)
	}
	l.flush(1)
	if err := a.OpenActive(l.now, 1111, 2222, &l.out); err != nil {
		t.Fatal(err)
	}
	l.flush(0)

	src := [2][]byte{pattern(seed+1, size), pattern(seed+2, size)}
	var got [2][]byte
	for i := range got {
		got[i] = make([]byte, 0, size)
	}
	var sentOff [2]int
	var eof, closed [2]bool
	buf := make([]byte, 64<<10)
	for steps := 0; ; steps++ {
		if steps > 20_000_000 {
			t.Fatalf("no progress: a=%v b=%v", a, b)
		}
		for i, e := range l.ep {
			if st := e.State(); st == Established || st == CloseWait {
				for sentOff[i] < size && e.SendSpace() > 0 {
					n, err := e.Send(l.now, src[i][sentOff[i]:], &l.out)
					if err != nil {
						t.Fatal(err)
					}
					sentOff[i] += n
				}
				if sentOff[i] == size && !closed[i] {
					closed[i] = true
					if err := e.Close(l.now, &l.out); err != nil {
						t.Fatal(err)
					}
				}
			}
			for !eof[i] {
				n, err := e.Receive(l.now, buf, &l.out)
				got[i] = append(got[i], buf[:n]...)
				if errors.Is(err, io.EOF) {
					eof[i] = true
				} else if err != nil {
					t.Fatalf("endpoint %d: %v (%v)", i, err, e)
				}
				if n == 0 {
					break
				}
			}
			l.flush(i)
		}
		if !l.step() {
			break
		}
	}
	for i, e := range l.ep {
		if e.State() != Closed {
			t.Fatalf("endpoint %d ended in %v", i, e.State())
		}
		if e.Err() != nil {
			t.Fatalf("endpoint %d: %v", i, e.Err())
		}
		if !eof[i] {
			t.Fatalf("endpoint %d saw no EOF", i)
		}
		if !bytes.Equal(got[i], src[1-i]) {
			t.Fatalf("endpoint %d received %d bytes, want %d; first difference at %d",
				i, len(got[i]), size, firstDiff(got[i], src[1-i]))
		}
	}
	return l
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestTransferLosslessLink(t *testing.T) {
	l := transfer(t, 1, 1<<20, 0, 0, 0)
	t.Logf("simulated %v, %d+%d segments", l.now, l.sent[0], l.sent[1])
}

func TestTransfer8MiBEachWayUnderLossDuplicationReordering(t *testing.T) {
	size := 8 << 20
	if testing.Short() {
		size = 1 << 20
	}
	for _, seed := range []uint64{1, 2} {
		l := transfer(t, seed, size, 0.05, 0.01, 8*time.Millisecond)
		t.Logf("seed %d: %d bytes each way in simulated %v, %d+%d segments, %d dropped",
			seed, size, l.now, l.sent[0], l.sent[1], l.dropped)
	}
}
