package httpstate

import (
	"sync"
	"time"
)

// Denylist is what a token server must keep to make logging out mean
// anything: the session ids logged out, each until the last token of its
// session expires. It is per-client state on the server again — the very
// thing a signed token was to remove — and it lives in the process's
// memory, so a restart forgets it (http/signed-token measures both).
type Denylist struct {
	mu  sync.Mutex
	ids map[string]time.Time // session id → when its last token expires
	max int
	now func() time.Time
}

// MaxDenylist bounds a denylist: beyond it a logout is refused with 503
// denylist_full rather than forgotten.
const MaxDenylist = 100_000

// NewDenylist returns an empty denylist; now is its clock (nil for
// time.Now).
func NewDenylist(now func() time.Time) *Denylist {
	if now == nil {
		now = time.Now
	}
	return &Denylist{ids: map[string]time.Time{}, max: MaxDenylist, now: now}
}

// Add denies session sid until until. It reports false when the list is
// full of unexpired entries.
func (d *Denylist) Add(sid string, until time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[sid]; !ok && len(d.ids) >= d.max {
		d.prune()
		if len(d.ids) >= d.max {
			return false
		}
	}
	if until.After(d.ids[sid]) {
		d.ids[sid] = until
	}
	return true
}

// Denied reports whether sid is denied now.
func (d *Denylist) Denied(sid string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.ids[sid]
	return ok && d.now().Before(until)
}

// Len is how many session ids the list holds.
func (d *Denylist) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

// prune drops the entries whose tokens have all expired; d.mu is held.
func (d *Denylist) prune() {
	now := d.now()
	for sid, until := range d.ids {
		if !now.Before(until) {
			delete(d.ids, sid)
		}
	}
}
