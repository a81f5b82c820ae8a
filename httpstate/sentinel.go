package httpstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A store behind Redis Sentinel: the backends ask the Sentinels which
// server is the primary (go-redis's failover client), so nothing in
// statelab decides it; after a failover the Sentinels name another and the
// client follows (+switch-master).
//
//	redis-sentinel://HOST:PORT[,HOST:PORT…]/MASTER[?wait=N&wait_timeout=D]
//
// wait=N makes every session write a replica-confirmed one: the write and
// WAIT N in one round trip, and a write no N replicas confirmed within
// wait_timeout (default 500ms) is answered 503, never acknowledged
// (sentinel_confirm.go).

// StoreRedisSentinel is a Redis primary found through Sentinel.
const StoreRedisSentinel StoreKind = "redis-sentinel"

// ErrSentinel is wrapped by every error about reaching the store through
// Sentinel at start-up: no Sentinel answered, none monitors the master, or
// the primary they name does not answer.
var ErrSentinel = errors.New("httpstate: redis sentinel")

// Defaults and bounds of the replica-confirmed write's wait.
const (
	defaultConfirmTimeout = 500 * time.Millisecond
	maxConfirmTimeout     = 10 * time.Second
	maxConfirmReplicas    = 16
)

// SentinelAddrs are the URL's Sentinels, host:port each.
func (u StoreURL) SentinelAddrs() []string {
	if u.Sentinels == "" {
		return nil
	}
	return strings.Split(u.Sentinels, ",")
}

// sentinelString gives a redis-sentinel URL back, without the password.
func (u StoreURL) sentinelString() string {
	s := "redis-sentinel://" + u.Sentinels + "/" + u.Master
	if u.Confirm > 0 {
		s += fmt.Sprintf("?wait=%d&wait_timeout=%s", u.Confirm, u.ConfirmTimeout)
	}
	return s
}

// parseSentinelURL parses the redis-sentinel URL s. It is parsed by hand:
// net/url takes a list of hosts for one host with a bad port.
func parseSentinelURL(s string) (StoreURL, error) {
	bad := func(format string, args ...any) (StoreURL, error) {
		return StoreURL{}, fmt.Errorf("%w %q: "+format, append([]any{ErrStoreURL, s}, args...)...)
	}
	rest, ok := strings.CutPrefix(s, "redis-sentinel://")
	if !ok {
		return bad("want redis-sentinel://HOST:PORT[,HOST:PORT…]/MASTER")
	}
	rest, frag, hasFrag := strings.Cut(rest, "#")
	if hasFrag || frag != "" {
		return bad("no fragment")
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, master, ok := strings.Cut(rest, "/")
	if !ok || master == "" {
		return bad("no master name: redis-sentinel://127.0.0.1:26379/mymaster")
	}
	out := StoreURL{Kind: StoreRedisSentinel, Master: master}
	if strings.IndexFunc(master, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
	}) >= 0 {
		return bad("master name %q: letters, digits, '.', '_' and '-' only", master)
	}
	if user, h, ok := strings.Cut(hosts, "@"); ok {
		pw, hasPW := strings.CutPrefix(user, ":")
		if !hasPW {
			pw = user // redis-sentinel://secret@
		}
		p, err := url.PathUnescape(pw)
		if err != nil {
			return bad("password: %v", err)
		}
		out.Password, hosts = p, h
	}
	if hosts == "" {
		return bad("no Sentinel: redis-sentinel://127.0.0.1:26379/mymaster")
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			if !strings.Contains(h, ":") || strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
				host, port, err = strings.Trim(h, "[]"), "26379", nil
			}
		}
		if err != nil || host == "" {
			return bad("Sentinel %q is not HOST:PORT", h)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
			return bad("Sentinel %q: port %q is not 1-65535", h, port)
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	out.Sentinels = strings.Join(addrs, ",")
	q, err := url.ParseQuery(query)
	if err != nil {
		return bad("query: %v", err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return bad("%s given %d times", k, len(v))
		}
		switch k {
		case "wait":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 0 || n > maxConfirmReplicas {
				return bad("wait=%q is not a number of replicas 0-%d", v[0], maxConfirmReplicas)
			}
			out.Confirm = n
		case "wait_timeout":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < time.Millisecond || d > maxConfirmTimeout {
				return bad("wait_timeout=%q is not a duration 1ms-%s", v[0], maxConfirmTimeout)
			}
			out.ConfirmTimeout = d
		default:
			return bad("unknown parameter %q (want wait, wait_timeout)", k)
		}
	}
	if out.Confirm == 0 {
		if out.ConfirmTimeout != 0 {
			return bad("wait_timeout without wait=N")
		}
	} else if out.ConfirmTimeout == 0 {
		out.ConfirmTimeout = defaultConfirmTimeout
	}
	return out, nil
}

// sentinelCheck is what the Sentinels said at start-up.
type sentinelCheck struct {
	primary  string   // the primary's address, as the first Sentinel that knew it said
	answered []string // Sentinels that answered
	masters  []string // the masters those that did not know MASTER monitor
	errs     []string // Sentinels that did not answer, with why
}

// askSentinels asks every Sentinel of u, at once, which server is the
// primary of u.Master, within ctx.
func askSentinels(ctx context.Context, u StoreURL) sentinelCheck {
	var mu sync.Mutex
	var chk sentinelCheck
	var wg sync.WaitGroup
	for _, addr := range u.SentinelAddrs() {
		wg.Go(func() {
			sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Password: u.Password, MaxRetries: -1,
				DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
			defer sc.Close()
			got, err := sc.GetMasterAddrByName(ctx, u.Master).Result()
			var names []string
			if errors.Is(err, redis.Nil) {
				if ms, merr := sc.Masters(ctx).Result(); merr == nil {
					names = masterNames(ms)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && len(got) == 2:
				chk.answered = append(chk.answered, addr)
				if chk.primary == "" {
					chk.primary = net.JoinHostPort(got[0], got[1])
				}
			case errors.Is(err, redis.Nil):
				chk.answered = append(chk.answered, addr)
				chk.masters = append(chk.masters, names...)
			default:
				chk.errs = append(chk.errs, fmt.Sprintf("%s: %v", addr, err))
			}
		})
	}
	wg.Wait()
	return chk
}

// masterNames reads the names out of SENTINEL MASTERS' reply.
func masterNames(ms []any) []string {
	var out []string
	for _, m := range ms {
		switch v := m.(type) {
		case map[any]any: // RESP3
			if n, ok := v["name"].(string); ok {
				out = append(out, n)
			}
		case []any: // RESP2: name, value, …
			for i := 0; i+1 < len(v); i += 2 {
				if k, _ := v[i].(string); k == "name" {
					if n, ok := v[i+1].(string); ok {
						out = append(out, n)
					}
				}
			}
		}
	}
	return out
}

// problem turns what the Sentinels said into a start-up error that
// says what is wrong, or nil when one of them names the primary.
func (chk sentinelCheck) problem(u StoreURL) error {
	switch {
	case chk.primary != "":
		return nil
	case len(chk.answered) == 0:
		return fmt.Errorf("%w: no Sentinel answered (%s): is redis-sentinel running there?", ErrSentinel, strings.Join(chk.errs, "; "))
	}
	known := "none"
	if len(chk.masters) > 0 {
		known = strings.Join(dedupe(chk.masters), ", ")
	}
	return fmt.Errorf("%w: no Sentinel monitors a master named %q (asked %s; they monitor: %s)", ErrSentinel, u.Master, strings.Join(chk.answered, ", "), known)
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// openSentinelStore checks the Sentinels, then opens the session store on
// go-redis's Sentinel-aware failover client, built like the plain Redis
// store (compare-and-set writes, the process's session cache), with
// replica-confirmed writes when the URL asks for them.
func openSentinelStore(ctx context.Context, u StoreURL) (*redisSessions, func() error, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := askSentinels(cctx, u).problem(u); err != nil {
		return nil, nil, err
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: u.Master, SentinelAddrs: u.SentinelAddrs(), Password: u.Password,
		DialTimeout: 2 * time.Second, ReadTimeout: 2*time.Second + u.ConfirmTimeout, WriteTimeout: 2 * time.Second,
		// No resend: a write that failed is answered 503 and retried by
		// the client, which sees the failover, rather than sent again
		// into it by go-redis.
		MaxRetries: -1,
	})
	if err := c.Ping(cctx).Err(); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%w: the primary of %q that the Sentinels name does not answer: %w", ErrSentinel, u.Master, err)
	}
	rs, err := newRedisSessions(cctx, c, "master "+u.Master)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	rs.confirm, rs.confirmTimeout = u.Confirm, u.ConfirmTimeout
	return rs, c.Close, nil
}
