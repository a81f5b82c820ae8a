package httpstate

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis store keeps sessions consistent across processes by optimistic
// concurrency instead of a lock. A request reads its session (from this
// process's cache of what it last saw in Redis, else from Redis), runs, and
// writes the session back with a compare-and-set: one Lua script that
// writes only if Redis still holds exactly the bytes the request read
// (compared by SHA-1), else writes nothing and returns what Redis holds. On
// such a conflict the request is run again on those bytes, its first
// response thrown away, so no update is ever lost and no response is
// computed from a stale session.
//
// The cost, measured by TestRedisRequestCostsOneRoundTrip: a request whose
// session this process saw last is one round trip (the compare-and-set);
// one whose session was changed elsewhere meanwhile (round-robin balancing)
// is two (the refused write returns the session; the rerun's write
// succeeds); starting a session is one (the old token's delete and the new
// token's write in one script). With a lock it was two at best (lock-and-
// load, save-and-unlock), and a request could wait for a lock left by a
// process that died until the lock expired.

// redisSessionPrefix prefixes a session's key in Redis (the scs go-redis
// store's own default, given to it explicitly so the scripts agree).
const redisSessionPrefix = "scs:session:"

// errSessionChanged means a write-back found the session changed by another
// request (another process) since this one read it; nothing was written.
// ServeHTTP runs the request again on the current session, so it never
// reaches a client.
var errSessionChanged = errors.New("httpstate: session changed by another request since it was read")

// optimisticAttempts bounds how many times a request runs when its session
// keeps changing under it (and so does the lock wait, LockWait); then it is
// a 503 session_busy, as a lock wait that times out is. With the backoff
// between runs, 32 runs take about half a second.
const optimisticAttempts = 32

// optimisticStore is a store whose requests ServeHTTP runs optimistically
// (Redis); wrappers pass it on.
type optimisticStore interface{ optimistic() *redisSessions }

func (s *redisSessions) optimistic() *redisSessions { return s }

// sessionCache is what this process last read from or wrote to Redis for
// each session: a hint, never an authority, since every write and every
// check compares it with Redis. It is bounded in entries and in bytes;
// arbitrary entries make way for a new one when it is full (an evicted
// session costs one read). Only sessions Redis holds are cached, so made-up
// tokens add nothing.
type sessionCache struct {
	mu       sync.Mutex
	m        map[string][]byte
	bytes    int // sum of len(token)+len(session) over m
	max      int
	maxBytes int
}

// The cache's bounds: a session is 0.3 KiB fresh, 8.5 KiB with a full
// history (maxHistory entries).
const (
	sessionCacheEntries = 1 << 14
	sessionCacheBytes   = 16 << 20
)

func newSessionCache(entries, bytes int) *sessionCache {
	return &sessionCache{m: make(map[string][]byte), max: entries, maxBytes: bytes}
}

func (c *sessionCache) get(token string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[token]
	return b, ok
}

// put records b (never modified afterwards: scs encodes a new slice on
// every commit) as token's session, or forgets token when found is false.
func (c *sessionCache) put(token string, b []byte, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[token]; ok {
		delete(c.m, token)
		c.bytes -= len(token) + len(old)
	}
	size := len(token) + len(b)
	if !found || size > c.maxBytes {
		return
	}
	for k, v := range c.m { // Go's map order is random: arbitrary victims
		if len(c.m) < c.max && c.bytes+size <= c.maxBytes {
			break
		}
		delete(c.m, k)
		c.bytes -= len(k) + len(v)
	}
	c.m[token] = b
	c.bytes += size
}

// size reports the entries and bytes the cache holds.
func (c *sessionCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m), c.bytes
}

// attempt is one run of a request on the optimistic store: what it read,
// and what its writes found. The request's context carries it (attemptKey).
type attempt struct {
	store *redisSessions
	token string // the token the request came with ("" when none)

	base      []byte // token's session as this attempt read it
	found     bool   // token had a session
	known     bool   // base and found hold an answer
	unchecked bool   // base came from the cache and nothing has compared it with Redis yet
	deleted   bool   // the handler deleted token (renewal, destroy); not yet done in Redis

	conflict     bool   // Redis held something other than base
	current      []byte // what Redis held then
	currentFound bool
	err          error // a store error
}

type attemptKey struct{}

// attemptFor returns the attempt ctx carries for this store, if any.
func attemptFor(ctx context.Context, s *redisSessions) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	if a == nil || a.store != s {
		return nil
	}
	return a
}

// rerun is the attempt that follows a on a conflict: it starts from what
// Redis held, which it need not read again.
func (a *attempt) rerun() *attempt {
	return &attempt{store: a.store, token: a.token, base: a.current, found: a.currentFound, known: true}
}

// sessionDigest is what the compare-and-set compares: the hex SHA-1 of the
// session's bytes, "" for no session (Lua's redis.sha1hex gives the same).
func sessionDigest(b []byte, found bool) string {
	if !found {
		return ""
	}
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}

// redisWritePrefix prefixes the list of a session's recent write ids: a
// write whose reply was lost and that go-redis sends again finds its id
// there and succeeds, instead of taking its own first write for another
// request's change (and running the request twice). The list keeps the
// last recentWrites ids for writeIDLife after the session's last write, a
// margin far beyond go-redis's resend (within its 2 s timeouts) and the
// writes another process could slip in before it.
const (
	redisWritePrefix = "scs:write:"
	recentWrites     = 16
	writeIDLife      = time.Minute
)

// redisCompareAndSet, unless this very write (id ARGV[5]) is among the
// recent ones in KEYS[2] (a resend: {1}), acts on the session a request
// read (KEYS[1]) only if Redis still holds those bytes (ARGV[1]: their
// SHA-1, "" for none); else it does nothing and returns {0, what Redis
// holds}. ARGV[2] is the action: set (write ARGV[4] with a PX of ARGV[3]
// ms; with ARGV[1] "", a creation), touch (renew the expiry of an unchanged
// session), del, rotate (delete it and write ARGV[4] under the new token
// KEYS[3]: a token renewal in one round trip) or check (nothing). ARGV[6]
// is the id list's PX, ARGV[7] its last index (recentWrites-1).
var redisCompareAndSet = redis.NewScript(`if redis.call("LPOS", KEYS[2], ARGV[5]) then return {1} end
local cur = redis.call("GET", KEYS[1])
local h = ""
if cur then h = redis.sha1hex(cur) end
if h ~= ARGV[1] then return {0, cur} end
local act = ARGV[2]
if act == "check" then return {1} end
if act == "set" then
  redis.call("SET", KEYS[1], ARGV[4], "PX", ARGV[3])
elseif act == "touch" then
  redis.call("PEXPIRE", KEYS[1], ARGV[3])
elseif act == "del" then
  redis.call("DEL", KEYS[1])
elseif act == "rotate" then
  redis.call("DEL", KEYS[1])
  redis.call("SET", KEYS[3], ARGV[4], "PX", ARGV[3])
end
redis.call("LPUSH", KEYS[2], ARGV[5])
redis.call("LTRIM", KEYS[2], 0, ARGV[7])
redis.call("PEXPIRE", KEYS[2], ARGV[6])
return {1}`)

// runCompareAndSet runs redisCompareAndSet on token's session, expecting
// the bytes whose digest is want. ok false is a conflict, with what Redis
// holds (cur, found).
func (s *redisSessions) runCompareAndSet(ctx context.Context, token, want, act, newToken string, b []byte, ttl time.Duration) (ok bool, cur []byte, found bool, err error) {
	keys := []string{redisSessionPrefix + token, redisWritePrefix + token}
	if newToken != "" {
		keys = append(keys, redisSessionPrefix+newToken)
	}
	args := []any{want, act, max(1, ttl.Milliseconds()), b, randomID(), writeIDLife.Milliseconds(), recentWrites - 1}
	var res []any
	if s.confirm > 0 {
		res, err = s.runConfirmed(ctx, keys, args) // sentinel_confirm.go
	} else {
		res, err = redisCompareAndSet.Run(ctx, s.writer, keys, args...).Slice()
	}
	if err != nil {
		return false, nil, false, err
	}
	if len(res) > 0 && res[0] == int64(1) {
		return true, nil, false, nil
	}
	if len(res) > 1 && res[1] != nil {
		str, ok := res[1].(string)
		if !ok {
			return false, nil, false, fmt.Errorf("httpstate: compare-and-set: unexpected reply %T", res[1])
		}
		return false, []byte(str), true, nil
	}
	return false, nil, false, nil
}

// compareAndSet runs redisCompareAndSet for a's session; on a conflict it
// records what Redis holds in a (and the cache) and returns
// errSessionChanged.
func (s *redisSessions) compareAndSet(ctx context.Context, a *attempt, act, newToken string, b []byte, ttl time.Duration) error {
	ok, cur, found, err := s.runCompareAndSet(ctx, a.token, sessionDigest(a.base, a.found), act, newToken, b, ttl)
	if err != nil {
		a.err = err
		return err
	}
	if ok {
		// What the attempt read is now what this write left.
		a.unchecked = false
		switch act {
		case "set", "touch":
			a.base, a.found = b, true
		case "del", "rotate":
			a.base, a.found, a.deleted = nil, false, false
		}
		return nil
	}
	a.conflict, a.current, a.currentFound = true, cur, found
	s.cache.put(a.token, cur, found)
	s.conflicts.Add(1)
	return errSessionChanged
}

// FindCtx, for the session of the request's own token, answers from the
// cache (checked later by the request's write) or reads Redis once.
func (s *redisSessions) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	a := attemptFor(ctx, s)
	if a == nil || token == "" || token != a.token {
		return s.RedisStore.FindCtx(ctx, token)
	}
	if !a.known {
		if b, ok := s.cache.get(token); ok {
			a.base, a.found, a.unchecked = b, true, true
		} else {
			b, found, err := s.RedisStore.FindCtx(ctx, token)
			if err != nil {
				a.err = err
				return nil, false, err
			}
			a.base, a.found = b, found
			s.cache.put(token, b, found)
		}
		a.known = true
	}
	if a.deleted {
		return nil, false, nil
	}
	return a.base, a.found, nil
}

// CommitCtx writes a session. The request's own session is written by
// compare-and-set (only renewing the expiry when the bytes are unchanged);
// a new token after the request deleted its own (a renewal) is written
// together with that delete, by the same compare. A conflict is
// errSessionChanged, with nothing written. Any other write is a new
// session under a fresh 256-bit token: it is created, never overwritten
// (createSession), so that a write that bypassed the compare (a store
// wrapper that hides optimistic()) fails loudly instead of losing updates.
func (s *redisSessions) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	a := attemptFor(ctx, s)
	ttl := time.Until(expiry)
	switch {
	case a != nil && token != "" && token == a.token:
		if a.deleted {
			return fmt.Errorf("httpstate: session %q written after being deleted in the same request", token)
		}
		act := "set"
		if a.found && bytes.Equal(b, a.base) {
			act = "touch" // scs rewrites every loaded session; only its expiry changes
		}
		if err := s.compareAndSet(ctx, a, act, "", b, ttl); err != nil {
			return err
		}
	case a != nil && a.deleted:
		old := a.token
		if err := s.compareAndSet(ctx, a, "rotate", token, b, ttl); err != nil {
			return err
		}
		s.cache.put(old, nil, false)
	default:
		// No request, a request that came without a token, or one whose
		// token had no session: scs has made a new token.
		if err := s.createSession(ctx, token, b, ttl); err != nil {
			if a != nil {
				a.err = err
			}
			return err
		}
	}
	s.cache.put(token, b, true)
	return nil
}

// createSession writes a session that must not exist yet: a
// compare-and-set that expects no session (so a resend is recognised too).
func (s *redisSessions) createSession(ctx context.Context, token string, b []byte, ttl time.Duration) error {
	ok, _, _, err := s.runCompareAndSet(ctx, token, "", "set", "", b, ttl)
	if err == nil && !ok {
		return fmt.Errorf("httpstate: refusing to overwrite session %q outside a compare-and-set", token)
	}
	return err
}

// DeleteCtx deletes a session; the request's own is deleted when the
// request writes its new token (rotate) or ends (finish), by
// compare-and-set like a write.
func (s *redisSessions) DeleteCtx(ctx context.Context, token string) error {
	if a := attemptFor(ctx, s); a != nil && token != "" && token == a.token && a.known {
		a.deleted = true
		return nil
	}
	s.cache.put(token, nil, false)
	return s.RedisStore.DeleteCtx(ctx, token)
}

// finish completes an attempt whose handler has run: a delete not yet done
// is done now, and a session read from the cache that no write compared
// with Redis is checked, so that no response rests on a stale read. Either
// can find a conflict (a.conflict). Neither happens with the server's
// handlers today (scs writes back every session it loaded, since there is
// an idle timeout, and a token renewal is always followed by the new
// token's write); finish keeps the guarantee if that ever changes.
func (s *redisSessions) finish(ctx context.Context, a *attempt) {
	if a.conflict || a.err != nil {
		return
	}
	switch {
	case a.deleted:
		if s.compareAndSet(ctx, a, "del", "", nil, 0) == nil {
			a.deleted = false
			s.cache.put(a.token, nil, false)
		}
	case a.unchecked:
		_ = s.compareAndSet(ctx, a, "check", "", nil, 0)
	}
}
