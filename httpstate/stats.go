package httpstate

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/v2"
)

// StoreStats is what a server has asked of the session store it was given
// (Config.Store), counted as it asked: the measured price of keeping the
// process stateless. A server on its own memory store counts nothing.
type StoreStats struct {
	// Reads and Writes are session reads and writes through scs; Reads
	// include Server.Session's.
	Reads, Writes int64
	// LockOps are round trips to the store for SQLite's cross-process lock:
	// take attempts and releases.
	LockOps int64
	// RoundTrips are the commands sent to Redis, one round trip each (its
	// reads are answered from the process's cache and checked by each
	// write's compare-and-set); Reruns are the requests run again because
	// another process had changed their session (optimistic.go).
	RoundTrips, Reruns int64
}

// StoreStats returns the server's store counts so far.
func (s *Server) StoreStats() StoreStats {
	var st StoreStats
	if s.counted != nil {
		st.Reads, st.Writes = s.counted.finds.Load(), s.counted.commits.Load()
	}
	if sl, ok := s.locker.(*sharedLocker); ok {
		st.LockOps = sl.ops.Load()
	}
	if s.occ != nil {
		st.RoundTrips, st.Reruns = s.occ.roundTrips(), s.occ.conflicts.Load()
	}
	return st
}

// countingStore counts a session store's reads and writes, passing on the
// lock (SQLite) and the compare-and-set writes (Redis) of the store it
// wraps.
type countingStore struct {
	scs.Store
	finds, commits atomic.Int64
}

// sessionLocker passes on the wrapped store's cross-process lock.
func (c *countingStore) sessionLocker() SessionLocker {
	if ls, ok := c.Store.(lockerStore); ok {
		return ls.sessionLocker()
	}
	return newStripedLocker()
}

// optimistic passes on the wrapped store's compare-and-set writes (Redis).
func (c *countingStore) optimistic() *redisSessions {
	if o, ok := c.Store.(optimisticStore); ok {
		return o.optimistic()
	}
	return nil
}

func (c *countingStore) Find(token string) ([]byte, bool, error) {
	c.finds.Add(1)
	return c.Store.Find(token)
}

func (c *countingStore) Commit(token string, b []byte, expiry time.Time) error {
	c.commits.Add(1)
	return c.Store.Commit(token, b, expiry)
}

// The context-aware methods, which scs prefers; they pass through to the
// wrapped store's own when it has them (the go-redis store has only those).

func (c *countingStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	c.finds.Add(1)
	return findSession(ctx, c.Store, token)
}

func (c *countingStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	c.commits.Add(1)
	if cs, ok := c.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, token, b, expiry)
	}
	return c.Store.Commit(token, b, expiry)
}

func (c *countingStore) DeleteCtx(ctx context.Context, token string) error {
	if cs, ok := c.Store.(scs.CtxStore); ok {
		return cs.DeleteCtx(ctx, token)
	}
	return c.Store.Delete(token)
}
