package httpstate

import (
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

// Exchanges sort by (has a request packet, time): a missing packet no
// longer makes the comparison inconsistent and leaves later exchanges out
// of time order.
func TestExchangesSortByTimeEvenWhenAPacketIsMissing(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ex := func(name string, at int) *Exchange {
		e := &Exchange{ReqBody: []byte(name)}
		if at >= 0 {
			e.ReqPacket = &capture.Packet{Time: t0.Add(time.Duration(at) * time.Millisecond)}
		}
		return e
	}
	tests := []struct {
		name string
		in   []*Exchange
		want string
	}{
		{"missing packet in the middle", []*Exchange{ex("c", 3), ex("x", -1), ex("a", 1), ex("b", 2)}, "a b c x"},
		{"missing packets first", []*Exchange{ex("x", -1), ex("y", -1), ex("b", 2), ex("a", 1)}, "a b x y"},
		{"all present", []*Exchange{ex("b", 2), ex("a", 1), ex("c", 3)}, "a b c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sortExchanges(tt.in)
			got := ""
			for i, e := range tt.in {
				if i > 0 {
					got += " "
				}
				got += string(e.ReqBody)
			}
			if got != tt.want {
				t.Fatalf("order %q, want %q", got, tt.want)
			}
		})
	}
}
