// Package dnsfault makes a DNS server misbehave the way networks and
// servers do: middleware around any miekg/dns Handler that delays, jitters
// (reorders), drops, duplicates, holds answers, or sends them from another
// address. Each fault is a Middleware, func(dns.Handler) dns.Handler; Chain
// stacks them, the first outermost:
//
//	draws := dnsfault.NewDraws(seed)
//	h := dnsfault.Chain(zone,
//		dnsfault.Drop(0.1, draws),      // one query in ten never answered
//		dnsfault.Duplicate(0.05, draws), // one answer in twenty sent twice
//		dnsfault.Jitter(5*time.Millisecond, draws))
//
// Random faults draw from Draws: each query gets a stream of its own,
// derived from the seed, the fault, the query (ID, QNAME as sent, QTYPE)
// and how many times that same query came before, so one seed makes the
// same choices whatever order concurrent queries reach the handler in.
//
// Act is the general form (one Action decided per query: drop, delay,
// hold, copies, and a hook once the answer is written); Delay, Jitter,
// Drop, Duplicate and Hold are Act with one field set. AnswerFrom rewrites
// the reply path instead: a ResponseWriter that sends from another socket.
//
// A deferred answer (Delay, Jitter, Hold) is written after ServeDNS has
// returned: the middleware calls the ResponseWriter's Hijack before
// returning and Close once the answer is written or abandoned, as
// miekg/dns asks of a handler that takes over its writer. When the writer
// has a method Context() context.Context (udpdns.Server's do), a deferred
// answer still waiting when that context ends is abandoned: nothing is
// written. A ResponseWriter wrapper of one's own should forward Context
// (see Context) for that to reach the middleware beneath it.
//
// Files: fault.go (Middleware, Chain, Act and the faults built on it),
// writers.go (the reply-path writers: copies, another source, the tracker
// that knows when an answer is done), draws.go (per-query seeded streams).
package dnsfault
