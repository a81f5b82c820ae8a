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
// second at most, however fast the flood, and whether the listing
// succeeds or fails.
//
// The first listing is waited for, so a server started on a full store
// admits nothing before it knows; later ones run while other requests go
// on with the last figure, and what those requests start is added to the
// new figure. Sessions that expire, and sessions other processes sharing
// the store start, are seen at the next listing: the cap can be passed by
// what other processes start within one interval, and a start admitted
// that then fails holds its room until the next listing.
type sessionCap struct {
	max   int
	every time.Duration
	now   func() time.Time
	count func() int // the store's live sessions, -1 when it cannot list them

	mu       sync.Mutex
	n        int       // sessions at the last count, plus those started since
	at       time.Time // when last listed, successfully or not (zero: never)
	counting bool      // a request is listing the store
	during   int       // sessions admitted while it lists
	uncapped bool      // the store has not been counted: no cap yet
}

// capRecount is how often a capped server lists its store.
const capRecount = time.Second

// admit reports whether one more session may start, and counts it if so.
func (c *sessionCap) admit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.at.IsZero():
		c.recount(true) // the first: under the lock, so nothing passes unknown
	case c.now().Sub(c.at) >= c.every && !c.counting:
		c.recount(false)
	}
	if c.uncapped {
		return true
	}
	if c.n >= c.max {
		return false
	}
	c.n++
	if c.counting {
		c.during++
	}
	return true
}

// recount lists the store, with c.mu held on entry and on return; unless
// first, it lets go of the lock while the store is read. A store that
// panics leaves the cap listing again an interval later.
func (c *sessionCap) recount(first bool) {
	c.counting, c.during = true, 0
	n := -1
	defer func() { // runs last, with the lock held again
		c.counting, c.at = false, c.now()
		switch {
		case n >= 0:
			c.n, c.uncapped = n+c.during, false
		case first:
			c.uncapped = true // documented: a store that cannot count is not capped
		}
	}()
	if !first {
		c.mu.Unlock()
		defer c.mu.Lock()
	}
	n = c.count()
}
