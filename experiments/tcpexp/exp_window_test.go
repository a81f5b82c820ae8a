package tcpexp

import (
	"testing"
	"time"
)

func TestPersistBackoffJudgesTheArmedIntervals(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		armed []time.Duration
		ok    bool
	}{
		{"doubling", []time.Duration{200 * ms, 400 * ms, 800 * ms}, true},
		{"doubling up to MaxRTO", []time.Duration{800 * ms, 1600 * ms, 2000 * ms}, true},
		{"held at MaxRTO", []time.Duration{2000 * ms, 2000 * ms, 2000 * ms}, true},
		{"more arms than probes judged", []time.Duration{200 * ms, 400 * ms, 800 * ms, 5 * ms}, true},
		{"no backoff", []time.Duration{200 * ms, 200 * ms, 200 * ms}, false},
		{"too few", []time.Duration{200 * ms, 400 * ms}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, why := persistBackoff(tt.armed, 3, 2*time.Second); ok != tt.ok {
				t.Errorf("persistBackoff(%v) = %v (%s), want %v", tt.armed, ok, why, tt.ok)
			}
		})
	}
}
