package tcpstate

import (
	"os"
	"testing"
	"time"
)

func TestStressSeeds(t *testing.T) {
	if os.Getenv("TCPSTATE_STRESS") == "" {
		t.Skip("set TCPSTATE_STRESS=1")
	}
	for seed := uint64(1); seed <= 200; seed++ {
		for _, loss := range []float64{0.05, 0.2, 0.35} {
			transfer(t, seed, 200<<10, loss, 0.05, 15*time.Millisecond)
		}
	}
}
