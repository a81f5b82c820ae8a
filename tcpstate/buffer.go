package tcpstate

// ring is a fixed-capacity byte ring. The send side keeps unacknowledged and
// unsent data in one; the receive side keeps in-order data not yet read by
// the user, and writes out-of-order data directly at its place beyond the
// readable part (the receive window never exceeds the free space, so there is
// always room).
type ring struct {
	buf  []byte
	head int // index of the first readable byte
	n    int // readable bytes
}

func newRing(size int) ring { return ring{buf: make([]byte, size)} }

func (r *ring) len() int  { return r.n }
func (r *ring) free() int { return len(r.buf) - r.n }

// write appends as much of p as fits and returns how much it took.
func (r *ring) write(p []byte) int {
	n := min(len(p), r.free())
	r.writeAt(0, p[:n])
	r.n += n
	return n
}

// writeAt copies p to the positions off.. beyond the readable part without
// making them readable. The caller guarantees off+len(p) <= free().
func (r *ring) writeAt(off int, p []byte) {
	pos := r.head + r.n + off
	if pos >= len(r.buf) {
		pos -= len(r.buf)
	}
	c := copy(r.buf[pos:], p)
	if c < len(p) {
		copy(r.buf, p[c:])
	}
}

// commit makes k bytes written with writeAt readable.
func (r *ring) commit(k int) { r.n += k }

// peek returns the n bytes starting off bytes into the readable part, as at
// most two slices.
func (r *ring) peek(off, n int) (a, b []byte) {
	pos := r.head + off
	if pos >= len(r.buf) {
		pos -= len(r.buf)
	}
	if pos+n <= len(r.buf) {
		return r.buf[pos : pos+n], nil
	}
	return r.buf[pos:], r.buf[:n-(len(r.buf)-pos)]
}

// read moves up to len(p) bytes into p.
func (r *ring) read(p []byte) int {
	n := min(len(p), r.n)
	a, b := r.peek(0, n)
	copy(p, a)
	copy(p[len(a):], b)
	r.discard(n)
	return n
}

// skip moves the front past n octets that were never written, as if they
// had been written and read at once (a posted read took them); the ring
// holds nothing readable.
func (r *ring) skip(n int) {
	r.head += n
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
}

// discard drops n readable bytes from the front.
func (r *ring) discard(n int) {
	r.head += n
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
	r.n -= n
	// head is not rewound when the ring empties: out-of-order data may
	// already sit beyond the readable part, positioned relative to head+n.
}
