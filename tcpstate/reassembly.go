package tcpstate

// span is a half-open range [start, end) of sequence numbers.
type span struct{ start, end Seq }

// reassembler records which out-of-order ranges beyond RCV.NXT have been
// received (their bytes are already in the receive ring at their place).
// When in-order data closes a gap, advance moves RCV.NXT over every range
// that has become contiguous. Ranges are kept sorted, disjoint and
// non-adjacent; at most max of them are kept, further ones are forgotten (the
// peer will retransmit them).
type reassembler struct {
	spans []span
	max   int
}

func newReassembler(max int) reassembler {
	return reassembler{spans: make([]span, 0, max), max: max}
}

func (r *reassembler) reset() { r.spans = r.spans[:0] }

// pending reports whether out-of-order ranges wait beyond a gap.
func (r *reassembler) pending() bool { return len(r.spans) > 0 }

// add records [start, end).
func (r *reassembler) add(start, end Seq) {
	if !start.LessThan(end) {
		return
	}
	// Find the first span that ends at or after start (could merge).
	i := 0
	for i < len(r.spans) && r.spans[i].end.LessThan(start) {
		i++
	}
	// Merge with every span that starts at or before end.
	j := i
	for j < len(r.spans) && r.spans[j].start.LessThanEq(end) {
		start = MinSeq(start, r.spans[j].start)
		end = MaxSeq(end, r.spans[j].end)
		j++
	}
	if j > i {
		r.spans[i] = span{start, end}
		r.spans = append(r.spans[:i+1], r.spans[j:]...)
		return
	}
	if len(r.spans) >= r.max {
		return
	}
	r.spans = append(r.spans, span{})
	copy(r.spans[i+1:], r.spans[i:])
	r.spans[i] = span{start, end}
}

// advance returns the new RCV.NXT after consuming every span that starts at
// or before nxt.
func (r *reassembler) advance(nxt Seq) Seq {
	k := 0
	for k < len(r.spans) && r.spans[k].start.LessThanEq(nxt) {
		nxt = MaxSeq(nxt, r.spans[k].end)
		k++
	}
	if k > 0 {
		r.spans = append(r.spans[:0], r.spans[k:]...)
	}
	return nxt
}

// bytes returns how many out-of-order octets are held.
func (r *reassembler) bytes() int {
	n := 0
	for _, s := range r.spans {
		n += int(s.start.Size(s.end))
	}
	return n
}

// find returns the range holding seq.
func (r *reassembler) find(seq Seq) (span, bool) {
	for _, s := range r.spans {
		if s.start.LessThanEq(seq) && seq.LessThan(s.end) {
			return s, true
		}
	}
	return span{}, false
}

// dropBelow forgets everything before seq, trimming a range that straddles
// it.
func (r *reassembler) dropBelow(seq Seq) {
	k := 0
	for k < len(r.spans) && r.spans[k].end.LessThanEq(seq) {
		k++
	}
	if k > 0 {
		r.spans = append(r.spans[:0], r.spans[k:]...)
	}
	if len(r.spans) > 0 && r.spans[0].start.LessThan(seq) {
		r.spans[0].start = seq
	}
}
