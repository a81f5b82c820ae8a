package tcpstate

// Seq is a TCP sequence number. Sequence numbers live in a circular space of
// 2^32 values, so they are compared with serial-number arithmetic (RFC 1982,
// RFC 9293 §3.4): a is "less than" b when the signed 32-bit distance b-a is
// positive. Every comparison in this package goes through these methods; a raw
// < on two Seq values is a bug once the stream wraps past 2^32.
type Seq uint32

// Size is a length in sequence space (a number of octets, SYN and FIN count
// as one each).
type Size uint32

// LessThan reports whether s precedes o in sequence space.
func (s Seq) LessThan(o Seq) bool { return int32(s-o) < 0 }

// LessThanEq reports whether s precedes or equals o.
func (s Seq) LessThanEq(o Seq) bool { return s == o || s.LessThan(o) }

// GreaterThan reports whether s follows o in sequence space.
func (s Seq) GreaterThan(o Seq) bool { return o.LessThan(s) }

// GreaterThanEq reports whether s follows or equals o.
func (s Seq) GreaterThanEq(o Seq) bool { return s == o || o.LessThan(s) }

// InRange reports whether a <= s < b. An empty range (a == b) contains
// nothing.
func (s Seq) InRange(a, b Seq) bool { return s-a < b-a }

// InWindow reports whether s lies in the window [first, first+size).
func (s Seq) InWindow(first Seq, size Size) bool { return s.InRange(first, first.Add(size)) }

// Add returns s advanced by n.
func (s Seq) Add(n Size) Seq { return s + Seq(n) }

// Sub returns s moved back by n.
func (s Seq) Sub(n Size) Seq { return s - Seq(n) }

// Size returns the distance from s forward to end (end - s mod 2^32).
func (s Seq) Size(end Seq) Size { return Size(end - s) }

// UpdateForward advances s by n in place.
func (s *Seq) UpdateForward(n Size) { *s += Seq(n) }

// MaxSeq returns the later of a and b in sequence space.
func MaxSeq(a, b Seq) Seq {
	if a.LessThan(b) {
		return b
	}
	return a
}

// MinSeq returns the earlier of a and b in sequence space.
func MinSeq(a, b Seq) Seq {
	if a.LessThan(b) {
		return a
	}
	return b
}

// Overlap reports whether the ranges [a, a+b) and [x, x+y) share a sequence
// number.
func Overlap(a Seq, b Size, x Seq, y Size) bool {
	return a.LessThan(x.Add(y)) && x.LessThan(a.Add(b))
}
