package httpstate

import (
	"errors"
	"math"
	"testing"
)

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		a, b float64
		want float64
		err  error
	}{
		{"add", Add, 10, 5, 15, nil},
		{"multiply", Multiply, 15, 2, 30, nil},
		{"subtract", Subtract, 30, 3, 27, nil},
		{"divide", Divide, 27, 3, 9, nil},
		{"divide by zero is refused", Divide, 1, 0, 0, ErrDivideByZero},
		{"unknown op is refused", Op("pow"), 2, 3, 0, ErrUnknownOp},
		{"empty op is refused", Op(""), 2, 3, 0, ErrUnknownOp},
		{"NaN operand is refused", Add, math.NaN(), 1, 0, ErrNotFinite},
		{"infinite operand is refused", Add, math.Inf(1), 1, 0, ErrNotFinite},
		{"overflowing result is refused", Multiply, math.MaxFloat64, 2, 0, ErrNotFinite},
		{"negative overflow is refused", Subtract, -math.MaxFloat64, math.MaxFloat64, 0, ErrNotFinite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Apply(tt.op, tt.a, tt.b)
			if !errors.Is(err, tt.err) || (err == nil && got != tt.want) {
				t.Errorf("Apply(%s, %g, %g) = %g, %v; want %g, %v", tt.op, tt.a, tt.b, got, err, tt.want, tt.err)
			}
		})
	}
}
