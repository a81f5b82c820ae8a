package tcpstate

import "testing"

func TestReachEveryState(t *testing.T) {
	for _, s := range States() {
		t.Run(s.String(), func(t *testing.T) {
			h := newHarness(t, testConfig())
			h.reach(s)
		})
	}
}
