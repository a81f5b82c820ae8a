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
// per process polls the shared lock, then the lock in the store: a row in
// SQLite's session_locks, inserted only when no row exists or the existing
// one is past its expiry (its holder died), deleted by its owner on release.
type sharedLocker struct {
	local *stripedLocker
	db    *sql.DB
	ttl   time.Duration
	ops   atomic.Int64 // round trips to the store for the lock: take attempts and releases
}

// sqliteLockSchema is the lock table: one row per locked session.
const sqliteLockSchema = `CREATE TABLE IF NOT EXISTS session_locks (token TEXT PRIMARY KEY, owner TEXT NOT NULL, expiry INTEGER NOT NULL);`

func newSQLiteLocker(db *sql.DB) *sharedLocker {
	return &sharedLocker{local: newStripedLocker(), db: db, ttl: lockTTL}
}

// lockTTL bounds how long a lock outlives a process that died holding it
// (kill -9 mid-request): after it the lock may be taken over. A request
// that runs longer than this could lose its lock; calculator requests take
// milliseconds.
const lockTTL = 10 * time.Second

func (l *sharedLocker) Lock(ctx context.Context, token string) (func(), error) {
	owner := randomID()
	unlockLocal, err := l.local.Lock(ctx, token)
	if err != nil {
		return nil, err
	}
	// A lock in a store has no event to wait on (no notification when
	// another process releases it), so waiting is a retry with a short,
	// bounded, jittered backoff until the request's deadline.
	wait := retryWait{next: time.Millisecond, max: 20 * time.Millisecond}
	for {
		l.ops.Add(1)
		ok, err := l.try(ctx, token, owner)
		if err != nil && ctx.Err() == nil {
			unlockLocal()
			return nil, err
		}
		if ok {
			break
		}
		if !wait.wait(ctx) {
			unlockLocal()
			return nil, fmt.Errorf("%w: %v", ErrSessionBusy, context.Cause(ctx))
		}
	}
	return func() {
		l.release(ctx, token, owner)
		unlockLocal()
	}, nil
}

// try makes one attempt at token's lock row.
func (l *sharedLocker) try(ctx context.Context, token, owner string) (bool, error) {
	now := time.Now()
	res, err := l.db.ExecContext(ctx, `INSERT INTO session_locks (token, owner, expiry) VALUES (?, ?, ?)
ON CONFLICT(token) DO UPDATE SET owner = excluded.owner, expiry = excluded.expiry WHERE session_locks.expiry < ?`,
		token, owner, now.Add(l.ttl).UnixNano(), now.UnixNano())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// release gives the lock back, even when the request's context has ended.
func (l *sharedLocker) release(ctx context.Context, token, owner string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	l.ops.Add(1)
	_, _ = l.db.ExecContext(rctx, `DELETE FROM session_locks WHERE token = ? AND owner = ?`, token, owner)
}

// retryWait is the wait between retries on something shared that has no
// event to wait on (a lock row, a session other processes keep changing):
// jittered, doubling up to max.
type retryWait struct{ next, max time.Duration }

// wait waits, and reports false if ctx ended first.
func (w *retryWait) wait(ctx context.Context) bool {
	t := time.NewTimer(w.next/2 + rand.N(w.next/2+1))
	defer t.Stop()
	w.next = min(2*w.next, w.max)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// randomID is 128 random bits in hex: a lock owner, a write id.
func randomID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
