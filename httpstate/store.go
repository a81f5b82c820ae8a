package httpstate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alexedwards/scs/goredisstore"
	"github.com/alexedwards/scs/sqlite3store"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // the "sqlite" driver: pure Go, no cgo
)

// ErrStoreURL is wrapped by every error about a --store URL.
var ErrStoreURL = errors.New("httpstate: bad store URL")

// StoreKind is where sessions live.
type StoreKind string

// The stores a server can keep sessions in.
const (
	StoreMemory StoreKind = "memory"
	StoreSQLite StoreKind = "sqlite"
	StoreRedis  StoreKind = "redis"
)

// StoreURL is a parsed --store URL:
//
//	memory                         the process's memory (sessions die with it)
//	sqlite:///var/tmp/sessions.db  an SQLite file (absolute path)
//	sqlite:sessions.db             an SQLite file (relative path)
//	redis://127.0.0.1:6379/0       a Redis server, optional database number
//	redis-sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster[?wait=1]
//	                               a Redis primary the Sentinels name (sentinel.go)
type StoreURL struct {
	Kind     StoreKind
	Path     string // sqlite
	Addr     string // redis host:port
	DB       int    // redis database
	Password string // redis, from the URL's user info
	// Sentinels (host:port, comma-separated: SentinelAddrs) and Master
	// name a redis-sentinel store; Confirm > 0 makes its writes wait for
	// that many replicas, up to ConfirmTimeout.
	Sentinels      string
	Master         string
	Confirm        int
	ConfirmTimeout time.Duration
}

// String gives the URL back, without the password.
func (u StoreURL) String() string {
	switch u.Kind {
	case StoreSQLite:
		if strings.HasPrefix(u.Path, "/") {
			return "sqlite://" + u.Path
		}
		return "sqlite:" + u.Path
	case StoreRedis:
		return fmt.Sprintf("redis://%s/%d", u.Addr, u.DB)
	case StoreRedisSentinel:
		return u.sentinelString()
	}
	return string(u.Kind)
}

// ParseStoreURL parses a --store URL.
func ParseStoreURL(s string) (StoreURL, error) {
	if s == "memory" || s == "memory://" {
		return StoreURL{Kind: StoreMemory}, nil
	}
	if strings.ContainsAny(s, "\x00\r\n\t ") {
		return StoreURL{}, fmt.Errorf("%w %q: no spaces or control characters", ErrStoreURL, s)
	}
	if strings.HasPrefix(s, "redis-sentinel:") {
		return parseSentinelURL(s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return StoreURL{}, fmt.Errorf("%w %q: %v", ErrStoreURL, s, err)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return StoreURL{}, fmt.Errorf("%w %q: no query or fragment", ErrStoreURL, s)
	}
	switch u.Scheme {
	case "sqlite":
		path := u.Opaque
		if path == "" {
			if u.Host != "" || u.User != nil {
				return StoreURL{}, fmt.Errorf("%w %q: sqlite takes a path, not a host: sqlite:///abs/path or sqlite:rel/path", ErrStoreURL, s)
			}
			path = u.Path
		}
		if path == "" || strings.HasSuffix(path, "/") {
			return StoreURL{}, fmt.Errorf("%w %q: sqlite needs a file path: sqlite:///abs/path.db", ErrStoreURL, s)
		}
		return StoreURL{Kind: StoreSQLite, Path: path}, nil
	case "redis":
		if u.Opaque != "" {
			return StoreURL{}, fmt.Errorf("%w %q: want redis://host:port", ErrStoreURL, s)
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return StoreURL{}, fmt.Errorf("%w %q: redis needs a host: redis://127.0.0.1:6379", ErrStoreURL, s)
		}
		if port == "" {
			if strings.HasSuffix(u.Host, ":") {
				return StoreURL{}, fmt.Errorf("%w %q: empty port", ErrStoreURL, s)
			}
			port = "6379"
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return StoreURL{}, fmt.Errorf("%w %q: port %q is not 1-65535", ErrStoreURL, s, port)
		}
		out := StoreURL{Kind: StoreRedis, Addr: net.JoinHostPort(host, port)}
		if db := strings.TrimPrefix(u.Path, "/"); db != "" {
			n, err := strconv.Atoi(db)
			if err != nil || n < 0 || n > 15 || strconv.Itoa(n) != db {
				return StoreURL{}, fmt.Errorf("%w %q: database %q is not 0-15", ErrStoreURL, s, db)
			}
			out.DB = n
		}
		if u.User != nil {
			out.Password, _ = u.User.Password()
			if out.Password == "" {
				out.Password = u.User.Username() // redis://:secret@ or redis://secret@
			}
		}
		return out, nil
	case "":
		return StoreURL{}, fmt.Errorf("%w %q: want memory, sqlite:///path, redis://host:port or redis-sentinel://host:port/master", ErrStoreURL, s)
	}
	return StoreURL{}, fmt.Errorf("%w %q: unknown scheme %q (want memory, sqlite, redis or redis-sentinel)", ErrStoreURL, s, u.Scheme)
}

// OpenStore connects to the store a URL names and returns it with the
// function that releases it. The SQLite store carries a per-session lock
// that works across processes (lock.go), which New uses; the Redis store
// needs none: its writes are compare-and-sets (optimistic.go). An SQLite
// file and its table are created when missing; a Redis server must answer
// PING within ctx.
func OpenStore(ctx context.Context, u StoreURL) (scs.Store, func() error, error) {
	switch u.Kind {
	case StoreMemory:
		ms := memstore.NewWithCleanupInterval(time.Minute)
		return ms, func() error { ms.StopCleanup(); return nil }, nil
	case StoreSQLite:
		// Create the file 0600 before SQLite does (it would use 0644
		// less the umask): it holds live session tokens. SQLite gives its
		// -wal and -shm files the database file's mode.
		f, err := os.OpenFile(u.Path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("httpstate: opening %s: %w", u, err)
		}
		f.Close()
		dsn := "file:" + u.Path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("httpstate: opening %s: %w", u, err)
		}
		const schema = `CREATE TABLE IF NOT EXISTS sessions (token TEXT PRIMARY KEY, data BLOB NOT NULL, expiry REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_expiry_idx ON sessions(expiry);
` + sqliteLockSchema
		if _, err := db.ExecContext(ctx, schema); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("httpstate: preparing %s: %w", u, err)
		}
		st := sqlite3store.NewWithCleanupInterval(db, time.Minute)
		return &sqliteSessions{st, newSQLiteLocker(db)}, func() error { st.StopCleanup(); return db.Close() }, nil
	case StoreRedis:
		c := redis.NewClient(&redis.Options{Addr: u.Addr, DB: u.DB, Password: u.Password,
			DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second, MaxRetries: 1})
		if err := c.Ping(ctx).Err(); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("httpstate: redis at %s: %w", u.Addr, err)
		}
		rs, err := newRedisSessions(ctx, c, u.Addr)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		return rs, c.Close, nil
	case StoreRedisSentinel:
		return openSentinelStore(ctx, u)
	}
	return nil, nil, fmt.Errorf("%w: unknown kind %q", ErrStoreURL, u.Kind)
}

// newRedisSessions builds the session store on a go-redis client (one
// server's, or the Sentinel-aware failover client) that answered PING;
// where names the server for errors.
func newRedisSessions(ctx context.Context, c *redis.Client, where string) (*redisSessions, error) {
	// Load the compare-and-set script now, so that requests send only
	// its SHA (go-redis sends the script again if Redis restarted).
	if err := redisCompareAndSet.Load(ctx, c).Err(); err != nil {
		return nil, fmt.Errorf("httpstate: redis at %s: loading the compare-and-set script: %w", where, err)
	}
	// Compare-and-sets go through go-redis's full-duplex autopipeliner:
	// one held connection, written and read at once, so that the
	// concurrent requests' writes share system calls and wake-ups of
	// redis-server (measured: +10% requests/s, p99 4.3 → 1.4 ms).
	writer, err := c.AutoPipelineWithOptions(&redis.AutoPipelineOptions{FullDuplex: true})
	if err != nil {
		return nil, fmt.Errorf("httpstate: redis at %s: %w", where, err)
	}
	rs := &redisSessions{RedisStore: goredisstore.NewWithPrefix(c, redisSessionPrefix), client: c, writer: writer,
		cache: newSessionCache(sessionCacheEntries, sessionCacheBytes)}
	c.AddHook(countingHook{&rs.trips})
	return rs, nil
}

// StoreFileWarnings says which of an SQLite store's files (the database,
// its -wal and -shm) other local users may read or write: they hold live
// session tokens, which anyone who reads them can use. Nothing for other
// stores or files that do not exist.
func StoreFileWarnings(u StoreURL) []string {
	if u.Kind != StoreSQLite {
		return nil
	}
	var out []string
	for _, p := range []string{u.Path, u.Path + "-wal", u.Path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s is mode %04o: other local users can read its session tokens (chmod 600 %s)", p, fi.Mode().Perm(), p))
	}
	return out
}

// sqliteSessions is the scs SQLite store with the cross-process lock that
// goes with it (lock.go); embedding keeps every method scs looks for.
type sqliteSessions struct {
	*sqlite3store.SQLite3Store
	locker *sharedLocker
}

func (s *sqliteSessions) sessionLocker() SessionLocker { return s.locker }

// redisSessions is the scs go-redis store, written to by compare-and-set
// (optimistic.go): sessions are the store's own keys and bytes, so any scs
// go-redis store reads them.
type redisSessions struct {
	*goredisstore.RedisStore
	client    *redis.Client
	writer    redis.Scripter // the compare-and-sets' client: c's full-duplex autopipeliner
	cache     *sessionCache
	trips     atomic.Int64 // commands sent to Redis: one round trip each
	conflicts atomic.Int64 // compare-and-sets refused: requests run again
	// confirm > 0: each write waits for that many replicas, up to
	// confirmTimeout (sentinel_confirm.go).
	confirm        int
	confirmTimeout time.Duration
	unconfirmed    atomic.Int64 // writes no replicas confirmed in time: answered 503
}

func (s *redisSessions) roundTrips() int64 { return s.trips.Load() }

// countingHook counts the round trips a go-redis client makes for
// sessions: each command or pipeline, except a new connection's setup
// (HELLO, CLIENT SETINFO), which go-redis also sends through the hooks.
type countingHook struct{ n *atomic.Int64 }

func (h countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func connSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (h countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 || slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !connSetup(c) }) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}
