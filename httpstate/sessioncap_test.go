package httpstate

import (
	"testing"
	"time"
)

// The cap lists the store once per interval whatever happens — a flood at
// the cap, a store that fails — and adds what it admits while it lists.
func TestSessionCapListsOncePerInterval(t *testing.T) {
	tests := []struct {
		name string
		// store returns the count each listing sees (call is 1, 2, …); c is
		// the cap, for a store that admits while it is listed.
		store        func(c *sessionCap, call int) int
		max, admits  int
		advance      bool // one interval passes after the first admit
		wantAdmitted int
		wantListings int
		wantN        int
	}{
		{"a flood at the cap: refused from memory", func(*sessionCap, int) int { return 3 }, 3, 100, false, 0, 1, 3},
		{"under the cap: counted locally", func(*sessionCap, int) int { return 0 }, 3, 100, false, 3, 1, 3},
		{"a store that cannot be listed: no cap, listed once", func(*sessionCap, int) int { return -1 }, 3, 100, false, 100, 1, 0},
		{"a second interval lists again", func(*sessionCap, int) int { return 1 }, 3, 10, true, 3, 2, 3},
		{"a start admitted during a listing is added to it", func(c *sessionCap, call int) int {
			if call == 2 {
				c.admit() // another request, while the store is read
			}
			return 1
		}, 5, 2, true, 2, 2, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			listings := 0
			c := &sessionCap{max: tt.max, every: time.Second, now: func() time.Time { return now }}
			c.count = func() int { listings++; return tt.store(c, listings) }
			admitted := 0
			for i := range tt.admits {
				if c.admit() {
					admitted++
				}
				if i == 0 && tt.advance {
					now = now.Add(time.Second)
				}
			}
			if admitted != tt.wantAdmitted || listings != tt.wantListings || (!c.uncapped && c.n != tt.wantN) {
				t.Errorf("admitted %d, listed %d times, n=%d; want %d, %d, %d", admitted, listings, c.n, tt.wantAdmitted, tt.wantListings, tt.wantN)
			}
		})
	}
}
