package tcpexp

import (
	"math/rand/v2"
	"testing"

	"github.com/statelab/statelab/tcpstate"
)

func TestSeededISSRepeatsWithTheSeed(t *testing.T) {
	draw := func(seed uint64) []tcpstate.Seq {
		iss := seededISS(rand.New(rand.NewPCG(seed, 0)))
		return []tcpstate.Seq{iss(), iss(), iss()}
	}
	a, b, c := draw(42), draw(42), draw(43)
	if a[0] != b[0] || a[1] != b[1] || a[2] != b[2] {
		t.Errorf("seed 42 gave %v then %v", a, b)
	}
	if a[0] == c[0] && a[1] == c[1] {
		t.Errorf("seeds 42 and 43 gave the same ISSs %v", a)
	}
}
