package httpstate

import (
	"errors"
	"fmt"
	"math"
)

// Op is a calculator operation.
type Op string

// The operations the calculator knows.
const (
	Add      Op = "add"
	Subtract Op = "subtract"
	Multiply Op = "multiply"
	Divide   Op = "divide"
)

// Symbol is the operator as written in arithmetic.
func (o Op) Symbol() string {
	switch o {
	case Add:
		return "+"
	case Subtract:
		return "−"
	case Multiply:
		return "×"
	case Divide:
		return "÷"
	}
	return "?"
}

// Calculator errors; the HTTP layer maps each to a status and a code.
var (
	ErrUnknownOp    = errors.New("httpstate: unknown operation")
	ErrDivideByZero = errors.New("httpstate: division by zero")
	ErrNotFinite    = errors.New("httpstate: operands and results must be finite numbers")
)

// Apply computes a op b. It refuses unknown operations, division by zero, and
// any operand or result that is NaN or infinite (an overflow).
func Apply(op Op, a, b float64) (float64, error) {
	if math.IsNaN(a) || math.IsInf(a, 0) || math.IsNaN(b) || math.IsInf(b, 0) {
		return 0, ErrNotFinite
	}
	var r float64
	switch op {
	case Add:
		r = a + b
	case Subtract:
		r = a - b
	case Multiply:
		r = a * b
	case Divide:
		if b == 0 {
			return 0, ErrDivideByZero
		}
		r = a / b
	default:
		return 0, fmt.Errorf("%w %q (want add, subtract, multiply or divide)", ErrUnknownOp, string(op))
	}
	if math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("%w: %g %s %g overflows", ErrNotFinite, a, op.Symbol(), b)
	}
	return r, nil
}
