package httpstate

import (
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ErrSessionBusy means a session's lock could not be had before the
// request's deadline: another request of the same session held it.
var ErrSessionBusy = errors.New("httpstate: session busy")

// SessionLocker serialises the requests of one session. scs loads a session
// at the start of a request and, with an idle timeout, writes the whole of
// it back at the end (scs data.go marks every loaded session Modified), so
// two overlapping requests of one session lose an update unless they are
// serialised — across every process that shares the store, not only inside
// one.
type SessionLocker interface {
	// Lock blocks until the token's lock is held or ctx ends, and returns
	// the function that releases it.
	Lock(ctx context.Context, token string) (unlock func(), err error)
}

// lockerStore is a store that knows the lock that goes with it (OpenStore's
// SQLite store; Redis needs none: optimistic.go).
type lockerStore interface{ sessionLocker() SessionLocker }

// lockStripes is how many mutexes the in-process lock has: a fixed array
// selected by a hash of the token, so that client-supplied tokens cannot
// grow it. Two sessions that share a stripe are merely serialised.
const lockStripes = 256

// stripedLocker is the in-process lock: enough for the memory store, whose
// sessions no other process can see.
type stripedLocker struct {
	seed    maphash.Seed
	stripes [lockStripes]chan struct{} // a one-slot semaphore: waiting can end with ctx
}

func newStripedLocker() *stripedLocker {
	l := &stripedLocker{seed: maphash.MakeSeed()}
	for i := range l.stripes {
		l.stripes[i] = make(chan struct{}, 1)
	}
	return l
}

func (l *stripedLocker) Lock(ctx context.Context, token string) (func(), error) {
	ch := l.stripes[maphash.String(l.seed, token)%lockStripes]
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrSessionBusy, context.Cause(ctx))
	}
}

// sharedLocker takes the in-process stripe first, so that only one request
// per process polls the shared lock, then the lock in the store.
type sharedLocker struct {
	local *stripedLocker
	// try makes one attempt at the shared lock; release gives it back.
	try     func(ctx context.Context, key, owner string, ttl time.Duration) (bool, error)
	release func(ctx context.Context, key, owner string) error
	ttl     time.Duration
	ops     atomic.Int64 // round trips to the store for the lock: take attempts and releases
}

// lockTTL bounds how long a lock outlives a process that died holding it
// (kill -9 mid-request): after it the lock may be taken over. A request
// that runs longer than this could lose its lock; calculator requests take
// milliseconds.
const lockTTL = 10 * time.Second

func (l *sharedLocker) Lock(ctx context.Context, token string) (func(), error) {
	owner := randomID()
	unlockLocal, err := l.acquire(ctx, token, owner)
	if err != nil {
		return nil, err
	}
	return func() {
		l.releaseShared(ctx, token, owner)
		unlockLocal()
	}, nil
}

// acquire takes the in-process stripe, then tries the shared lock (one
// round trip to the store) until it is held or ctx ends; it returns the
// function that gives the stripe back.
func (l *sharedLocker) acquire(ctx context.Context, token, owner string) (func(), error) {
	unlockLocal, err := l.local.Lock(ctx, token)
	if err != nil {
		return nil, err
	}
	// A distributed lock has no event to wait on (no notification when
	// another process releases it), so waiting is a retry with a short,
	// bounded, jittered backoff until the request's deadline.
	backoff := time.Millisecond
	for {
		l.ops.Add(1)
		ok, err := l.try(ctx, token, owner, l.ttl)
		if err != nil && ctx.Err() == nil {
			unlockLocal()
			return nil, err
		}
		if ok {
			return unlockLocal, nil
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			unlockLocal()
			return nil, fmt.Errorf("%w: %v", ErrSessionBusy, context.Cause(ctx))
		}
		backoff = min(2*backoff, 20*time.Millisecond)
	}
}

// releaseShared gives the shared lock back, even when the request's context
// has ended.
func (l *sharedLocker) releaseShared(ctx context.Context, token, owner string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	l.ops.Add(1)
	_ = l.release(rctx, token, owner)
}

// randomID is 128 random bits in hex: a lock owner, a write id.
func randomID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sqliteLockSchema is the lock table: one row per locked session.
const sqliteLockSchema = `CREATE TABLE IF NOT EXISTS session_locks (token TEXT PRIMARY KEY, owner TEXT NOT NULL, expiry INTEGER NOT NULL);`

// newSQLiteLocker locks with a row in session_locks: an INSERT that
// succeeds only when no row exists or the existing one is past its expiry
// (its holder died), and a DELETE of our own row on release.
func newSQLiteLocker(db *sql.DB) *sharedLocker {
	return &sharedLocker{local: newStripedLocker(), ttl: lockTTL,
		try: func(ctx context.Context, token, owner string, ttl time.Duration) (bool, error) {
			now := time.Now()
			res, err := db.ExecContext(ctx, `INSERT INTO session_locks (token, owner, expiry) VALUES (?, ?, ?)
ON CONFLICT(token) DO UPDATE SET owner = excluded.owner, expiry = excluded.expiry WHERE session_locks.expiry < ?`,
				token, owner, now.Add(ttl).UnixNano(), now.UnixNano())
			if err != nil {
				return false, err
			}
			n, err := res.RowsAffected()
			return n == 1, err
		},
		release: func(ctx context.Context, token, owner string) error {
			_, err := db.ExecContext(ctx, `DELETE FROM session_locks WHERE token = ? AND owner = ?`, token, owner)
			return err
		}}
}
