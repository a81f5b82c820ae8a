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

	"github.com/redis/go-redis/v9"
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
// SQLite and Redis stores).
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
	ops     atomic.Int64 // round trips to the store for the lock: take attempts and releases, fused or not

	// The fused operations, when the store has them (Redis): tryLoad takes
	// the lock and reads the session in one round trip (lock-and-load);
	// saveRelease writes the session and releases the lock, only if this
	// request still owns it (save-and-unlock); deleteRelease deletes the
	// session and releases the lock. Nil: the 4-round-trip path (lock,
	// load, save, unlock).
	tryLoad       func(ctx context.Context, token, owner string, ttl time.Duration) (ok bool, data []byte, found bool, err error)
	saveRelease   func(ctx context.Context, token, owner string, data []byte, ttl time.Duration, touchOnly bool) (saveResult, error)
	deleteRelease func(ctx context.Context, token, owner string) error
}

// saveResult is what save-and-unlock did.
type saveResult int

const (
	saveLockLost saveResult = iota // the lock was no longer ours: nothing written
	saveDone                       // written (or its expiry renewed) and the lock released
	saveMissing                    // touch-only, but the session was gone: nothing done, lock still held
)

// ErrLockLost means a request's session lock expired (or was taken over)
// before it could write the session back: the write is refused rather than
// risk overwriting another request's update.
var ErrLockLost = errors.New("httpstate: session lock lost before the write-back")

// heldLock is a session lock taken together with the session's bytes. The
// request's context carries it (heldLockKey) so that the store's FindCtx
// answers from it without a round trip, and its CommitCtx writes the
// session and releases the lock in one round trip.
type heldLock struct {
	locker       *sharedLocker
	token, owner string
	data         []byte
	found        bool
	loaded       bool // data is what the store holds: FindCtx may answer from it
	released     bool // the shared lock is already given back (saved or deleted)
}

type heldLockKey struct{}

// heldFor returns the lock the request holds on token through l, if any.
func heldFor(ctx context.Context, l *sharedLocker, token string) *heldLock {
	h, _ := ctx.Value(heldLockKey{}).(*heldLock)
	if h == nil || h.locker != l || h.token != token {
		return nil
	}
	return h
}

// fused reports whether l can lock-and-load and save-and-unlock.
func (l *sharedLocker) fused() bool {
	return l.tryLoad != nil && l.saveRelease != nil && l.deleteRelease != nil
}

// lockAndLoad takes token's lock and reads its session in the same round
// trip. The returned function releases the lock unless the write-back (or
// a delete) already did.
func (l *sharedLocker) lockAndLoad(ctx context.Context, token string) (*heldLock, func(), error) {
	h := &heldLock{locker: l, token: token, owner: randomOwner()}
	unlockLocal, err := l.acquire(ctx, token, func() (bool, error) {
		ok, data, found, err := l.tryLoad(ctx, token, h.owner, l.ttl)
		if ok {
			h.data, h.found, h.loaded = data, found, true
		}
		return ok, err
	})
	if err != nil {
		return nil, nil, err
	}
	return h, func() {
		if !h.released {
			l.releaseShared(ctx, token, h.owner)
		}
		unlockLocal()
	}, nil
}

// lockTTL bounds how long a lock outlives a process that died holding it
// (kill -9 mid-request): after it the lock may be taken over. A request
// that runs longer than this could lose its lock; calculator requests take
// milliseconds.
const lockTTL = 10 * time.Second

func (l *sharedLocker) Lock(ctx context.Context, token string) (func(), error) {
	owner := randomOwner()
	unlockLocal, err := l.acquire(ctx, token, func() (bool, error) { return l.try(ctx, token, owner, l.ttl) })
	if err != nil {
		return nil, err
	}
	return func() {
		l.releaseShared(ctx, token, owner)
		unlockLocal()
	}, nil
}

// acquire takes the in-process stripe, then polls attempt (one round trip
// to the store) until it reports the shared lock held or ctx ends; it
// returns the function that gives the stripe back.
func (l *sharedLocker) acquire(ctx context.Context, token string, attempt func() (bool, error)) (func(), error) {
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
		ok, err := attempt()
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

func randomOwner() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redisLockPrefix prefixes a session's lock key in Redis.
const redisLockPrefix = "lock:"

// redisUnlock deletes the lock only if this request still owns it.
var redisUnlock = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

// redisLockAndLoad takes the lock (SET NX PX; or finds it already ours, when
// a retried command had taken it) and returns {1, session bytes or nil};
// {0} when another request holds it.
var redisLockAndLoad = redis.NewScript(`if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) or redis.call("GET", KEYS[1]) == ARGV[1] then
  return {1, redis.call("GET", KEYS[2])}
end
return {0}`)

// redisSaveAndUnlock writes the session with its expiry and deletes the
// lock, only if the lock is still ours (0 otherwise, and nothing written).
// ARGV[3] == "1": the session is unchanged, so only its expiry is renewed
// (PEXPIRE); 2 if it has gone meanwhile, lock kept.
var redisSaveAndUnlock = redis.NewScript(`if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == "1" then
  if redis.call("PEXPIRE", KEYS[2], ARGV[2]) == 0 then return 2 end
else
  redis.call("SET", KEYS[2], ARGV[4], "PX", ARGV[2])
end
redis.call("DEL", KEYS[1])
return 1`)

// redisDeleteAndUnlock deletes the session (as the plain store does, owner
// or not) and then the lock if it is still ours.
var redisDeleteAndUnlock = redis.NewScript(`redis.call("DEL", KEYS[2])
if redis.call("GET", KEYS[1]) == ARGV[1] then redis.call("DEL", KEYS[1]) end
return 1`)

// redisSessionPrefix prefixes a session's key in Redis (the scs go-redis
// store's own default, given to it explicitly so the scripts agree).
const redisSessionPrefix = "scs:session:"

// newRedisLocker locks with SET lock:<token> <random> NX PX <ttl>, fused
// with the session's read and write (2 round trips a request, not 4).
func newRedisLocker(c *redis.Client) *sharedLocker {
	keys := func(token string) []string { return []string{redisLockPrefix + token, redisSessionPrefix + token} }
	return &sharedLocker{local: newStripedLocker(), ttl: lockTTL,
		tryLoad: func(ctx context.Context, token, owner string, ttl time.Duration) (bool, []byte, bool, error) {
			res, err := redisLockAndLoad.Run(ctx, c, keys(token), owner, ttl.Milliseconds()).Slice()
			if err != nil {
				return false, nil, false, err
			}
			if len(res) == 0 || res[0] != int64(1) {
				return false, nil, false, nil
			}
			if len(res) < 2 || res[1] == nil {
				return true, nil, false, nil
			}
			b, ok := res[1].(string)
			if !ok {
				return false, nil, false, fmt.Errorf("httpstate: lock-and-load: unexpected reply %T", res[1])
			}
			return true, []byte(b), true, nil
		},
		saveRelease: func(ctx context.Context, token, owner string, data []byte, ttl time.Duration, touchOnly bool) (saveResult, error) {
			touch, payload := "0", data
			if touchOnly {
				touch, payload = "1", nil
			}
			n, err := redisSaveAndUnlock.Run(ctx, c, keys(token), owner, max(1, ttl.Milliseconds()), touch, payload).Int64()
			if err != nil {
				return saveLockLost, err
			}
			switch n {
			case 1:
				return saveDone, nil
			case 2:
				return saveMissing, nil
			}
			return saveLockLost, nil
		},
		deleteRelease: func(ctx context.Context, token, owner string) error {
			return redisDeleteAndUnlock.Run(ctx, c, keys(token), owner).Err()
		},
		try: func(ctx context.Context, token, owner string, ttl time.Duration) (bool, error) {
			err := c.SetArgs(ctx, redisLockPrefix+token, owner, redis.SetArgs{Mode: "NX", TTL: ttl}).Err()
			if errors.Is(err, redis.Nil) {
				return false, nil
			}
			return err == nil, err
		},
		release: func(ctx context.Context, token, owner string) error {
			return redisUnlock.Run(ctx, c, []string{redisLockPrefix + token}, owner).Err()
		}}
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
