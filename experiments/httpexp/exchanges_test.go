package httpexp

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

func TestNumbers(t *testing.T) {
	tests := []struct {
		name, ct, body string
		want           int
	}{
		{"json operands", "application/json", `{"op":"add","a":10,"b":5}`, 2},
		{"json one operand", "application/json", `{"op":"multiply","b":2}`, 1},
		{"json nested", "application/json", `{"x":[1,2,{"y":3}],"s":"4"}`, 3},
		{"form fields", "application/x-www-form-urlencoded", "op=add&a=10&b=5.5", 2},
		{"no body", "application/json", ``, 0},
		{"malformed json counts what came before", "application/json", `{"a":1,"b":`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Numbers(tt.ct, []byte(tt.body)); len(got) != tt.want {
				t.Errorf("Numbers(%q) = %v, want %d numbers", tt.body, got, tt.want)
			}
		})
	}
}
