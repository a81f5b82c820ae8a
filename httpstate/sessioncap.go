package httpstate

import (
	"sync"
	"time"
)

// sessionCap enforces Config.MaxSessions without making a new session cost
// a walk over the store: it counts the store's sessions at most once per
// recount interval (a listing is one read per session on Redis) and, in
// between, adds the sessions this process started. A flood of session
// starts at the cap is refused from memory; the store is listed once a
// second at most, however fast the flood.
//
// Sessions that expire or that other processes start are seen at the next
// recount, so the cap can be passed by what other processes start within
// one interval, and room comes back within one interval of sessions
// expiring.
type sessionCap struct {
	max   int
	every time.Duration
	now   func() time.Time
	count func() int // the store's live sessions, -1 when it cannot list them

	mu       sync.Mutex
	n        int       // sessions at the last count, plus those started since
	at       time.Time // when last counted (zero: never)
	counting bool      // a request is listing the store
	uncapped bool      // the store cannot list its sessions
}

// capRecount is how often a capped server lists its store.
const capRecount = time.Second

// admit reports whether one more session may start, and counts it if so.
func (c *sessionCap) admit() bool {
	c.mu.Lock()
	if (c.at.IsZero() || c.now().Sub(c.at) >= c.every) && !c.counting {
		c.counting = true
		c.mu.Unlock()
		n := c.count() // outside the lock: other requests go on with the old figure
		c.mu.Lock()
		c.counting = false
		switch {
		case n < 0 && c.at.IsZero():
			c.uncapped = true // documented: a store that cannot count is not capped
		case n >= 0:
			c.n, c.at, c.uncapped = n, c.now(), false
		}
	}
	defer c.mu.Unlock()
	if c.uncapped {
		return true
	}
	if c.n >= c.max {
		return false
	}
	c.n++
	return true
}
