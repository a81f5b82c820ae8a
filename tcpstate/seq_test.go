package tcpstate

import "testing"

func TestSeqComparisonsWrap(t *testing.T) {
	tests := []struct {
		a, b Seq
		less bool
	}{
		{1, 2, true},
		{2, 1, false},
		{0xffffffff, 0, true}, // wraps
		{0, 0xffffffff, false},
		{0xfffffff0, 0x10, true},
		{0x7fffffff, 0x80000000, true},
		{5, 5, false},
	}
	for _, tt := range tests {
		if got := tt.a.LessThan(tt.b); got != tt.less {
			t.Errorf("%d.LessThan(%d) = %v", tt.a, tt.b, got)
		}
		if got := tt.b.GreaterThan(tt.a); got != tt.less {
			t.Errorf("%d.GreaterThan(%d) = %v", tt.b, tt.a, got)
		}
		if got := tt.a.LessThanEq(tt.b); got != (tt.less || tt.a == tt.b) {
			t.Errorf("%d.LessThanEq(%d) = %v", tt.a, tt.b, got)
		}
	}
	if !Seq(5).GreaterThanEq(5) || MaxSeq(0xffffffff, 1) != 1 || MinSeq(0xffffffff, 1) != 0xffffffff {
		t.Error("Max/Min/GreaterThanEq")
	}
}

func TestSeqRangesAndArithmetic(t *testing.T) {
	if !Seq(0xfffffffe).InWindow(0xfffffff0, 0x20) || !Seq(3).InWindow(0xfffffff0, 0x20) {
		t.Error("InWindow across wrap")
	}
	if Seq(0x10).InWindow(0xfffffff0, 0x20) || Seq(5).InWindow(5, 0) {
		t.Error("InWindow end exclusive / empty window")
	}
	if !Seq(5).InRange(5, 6) || Seq(6).InRange(5, 6) {
		t.Error("InRange bounds")
	}
	if Seq(0xffffffff).Add(2) != 1 || Seq(1).Sub(2) != 0xffffffff || Seq(0xfffffffe).Size(3) != 5 {
		t.Error("Add/Sub/Size")
	}
	s := Seq(0xffffffff)
	s.UpdateForward(1)
	if s != 0 {
		t.Error("UpdateForward")
	}
	if !Overlap(0xfffffff0, 0x20, 5, 1) || Overlap(0, 5, 5, 5) {
		t.Error("Overlap")
	}
}

func TestAcceptabilityFourCases(t *testing.T) {
	tests := []struct {
		name   string
		seq    Seq
		len    Size
		rcvNxt Seq
		wnd    Size
		want   bool
	}{
		{"len 0 wnd 0 at RCV.NXT", 100, 0, 100, 0, true},
		{"len 0 wnd 0 elsewhere", 101, 0, 100, 0, false},
		{"len 0 wnd>0 in window", 150, 0, 100, 100, true},
		{"len 0 wnd>0 at right edge", 200, 0, 100, 100, false},
		{"len 0 wnd>0 below", 99, 0, 100, 100, false},
		{"len>0 wnd 0", 100, 10, 100, 0, false},
		{"len>0 start in window", 190, 20, 100, 100, true},
		{"len>0 end in window", 95, 10, 100, 100, true},
		{"len>0 all old", 80, 20, 100, 100, false},
		{"len>0 beyond", 200, 10, 100, 100, false},
		{"len>0 across wrap", 0xfffffff0, 0x20, 0, 100, true},
	}
	for _, tt := range tests {
		if got := acceptable(tt.seq, tt.len, tt.rcvNxt, tt.wnd); got != tt.want {
			t.Errorf("%s: %v", tt.name, got)
		}
	}
}

func TestReassemblerMergesAndAdvances(t *testing.T) {
	r := newReassembler(3)
	r.add(20, 30)
	r.add(40, 50)
	r.add(30, 35) // adjacent: merges with [20,30)
	r.add(45, 60) // overlaps [40,50)
	if len(r.spans) != 2 || r.spans[0] != (span{20, 35}) || r.spans[1] != (span{40, 60}) || r.bytes() != 35 {
		t.Fatalf("spans %v", r.spans)
	}
	r.add(70, 80)
	r.add(90, 95) // over the limit: forgotten
	if len(r.spans) != 3 {
		t.Fatalf("spans %v", r.spans)
	}
	if got := r.advance(10); got != 10 {
		t.Fatalf("advance with a hole: %d", got)
	}
	if got := r.advance(20); got != 35 {
		t.Fatalf("advance: %d", got)
	}
	if got := r.advance(41); got != 60 || len(r.spans) != 1 {
		t.Fatalf("advance over second: %d %v", got, r.spans)
	}
	r.add(0xfffffff0, 5) // across the wrap, before [70,80)
	if r.spans[0] != (span{0xfffffff0, 5}) {
		t.Fatalf("wrap: %v", r.spans)
	}
}

func TestRingWrapsAndKeepsOutOfOrderPositions(t *testing.T) {
	r := newRing(8)
	r.write([]byte("abcdef"))
	p := make([]byte, 4)
	r.read(p)                  // head at 4, "ef" readable
	r.writeAt(2, []byte("xy")) // out of order, wraps the ring
	r.discard(2)               // empty now; positions must not move
	r.writeAt(0, []byte("gh")) // the hole
	r.commit(4)
	out := make([]byte, 8)
	if n := r.read(out); string(out[:n]) != "ghxy" {
		t.Fatalf("%q", out[:n])
	}
}
