package dnsfault

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Draws hands each query a random stream of its own for each fault,
// derived from a seed, the fault's name, the query (ID, QNAME as sent,
// QTYPE) and how many times that same query came to that fault before. The
// draws therefore do not depend on the order in which concurrent queries
// reach the handler, and the same query asked again draws anew. Safe for
// concurrent use; one Draws may serve several faults.
type Draws struct {
	seed uint64

	mu   sync.Mutex
	seen map[drawKey]uint32
}

// drawKey names a query, for one fault, for its draws.
type drawKey struct {
	fault     string
	id, qtype uint16
	name      string
}

// maxSeen bounds the memory of queries seen: past it, the counts restart.
const maxSeen = 1 << 20

// NewDraws returns the streams of seed; 0 picks a seed from the clock.
func NewDraws(seed uint64) *Draws {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	return &Draws{seed: seed, seen: map[drawKey]uint32{}}
}

// Seed is the seed the streams derive from.
func (d *Draws) Seed() uint64 { return d.seed }

// For returns the random stream of query q for the named fault.
func (d *Draws) For(fault string, q *dns.Msg) *rand.Rand {
	k := drawKey{fault: fault, id: q.Id}
	if len(q.Question) > 0 {
		k.name, k.qtype = q.Question[0].Name, q.Question[0].Qtype
	}
	d.mu.Lock()
	if len(d.seen) >= maxSeen {
		clear(d.seen)
	}
	n := d.seen[k]
	d.seen[k] = n + 1
	d.mu.Unlock()
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%d", k.fault, k.id, k.qtype, k.name, n)
	return rand.New(rand.NewPCG(d.seed, h.Sum64()))
}

// orNew is d, or a Draws seeded from the clock when d is nil.
func orNew(d *Draws) *Draws {
	if d == nil {
		return NewDraws(0)
	}
	return d
}
