package tcpexp

import (
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func seqIdx(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

func TestTSSamplesRecoversEachSampleFromSRTT(t *testing.T) {
	ms := time.Millisecond
	rec := func(sent bool, samples uint32, srtt time.Duration) rawtcp.Record {
		return rawtcp.Record{Sent: sent, Seg: rawtcp.RecSeg{Flags: tcpstate.ACK, TSEcr: 7}, TCB: tcpstate.TCB{TSRTTSamples: samples, SRTT: srtt}}
	}
	// Samples 8 ms, then 16 ms: SRTT 8 ms, then 7/8*8 + 16/8 = 9 ms.
	recs := []rawtcp.Record{rec(true, 0, 0), rec(false, 1, 8*ms), rec(true, 1, 8*ms), rec(false, 1, 8*ms), rec(false, 2, 9*ms)}
	got := tsSamples(recs, seqIdx(len(recs)))
	if len(got) != 2 || got[0].rtt != 8*ms || got[1].rtt != 16*ms || got[1].srtt != 9*ms {
		t.Fatalf("samples %+v, want 8ms then 16ms", got)
	}
}

func TestTSEchoFindsMissingOptionsFalseEchoesAndClocksGoingBack(t *testing.T) {
	seg := func(sent bool, val, ecr uint32, ts bool) rawtcp.Record {
		f := tcpstate.ACK
		if ecr == 0 {
			f = tcpstate.SYN // the first SYN echoes nothing
		}
		return rawtcp.Record{Sent: sent, Seg: rawtcp.RecSeg{SrcPort: 1, Flags: f, HasTS: ts, TSVal: val, TSEcr: ecr}}
	}
	tests := []struct {
		name                       string
		recs                       []rawtcp.Record
		missing, badEcho, backward int
	}{
		{"a clean exchange", []rawtcp.Record{seg(true, 10, 0, true), seg(false, 500, 10, true), seg(true, 11, 500, true)}, 0, 0, 0},
		{"a segment without TSopt", []rawtcp.Record{seg(true, 10, 0, true), seg(false, 0, 10, false)}, 1, 0, 0},
		{"an echo of a TSval never sent", []rawtcp.Record{seg(true, 10, 0, true), seg(false, 500, 11, true)}, 0, 1, 0},
		{"a clock going back", []rawtcp.Record{seg(true, 10, 0, true), seg(false, 500, 10, true), seg(true, 9, 500, true)}, 0, 0, 1},
		{"the old duplicate is left out", []rawtcp.Record{seg(true, 10, 0, true), seg(false, 500, 10, true), seg(true, 1, 500, true)}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip := func(i int) bool { return tt.name == "the old duplicate is left out" && i == 2 }
			m, b, back, _ := tsEcho(tt.recs, seqIdx(len(tt.recs)), skip)
			if m != tt.missing || b != tt.badEcho || back != tt.backward {
				t.Errorf("missing %d, bad echoes %d, backwards %d; want %d %d %d", m, b, back, tt.missing, tt.badEcho, tt.backward)
			}
		})
	}
}

func TestIPv4HeaderChecksumVerifies(t *testing.T) {
	h := ipv4Header([4]byte{127, 0, 0, 1}, [4]byte{127, 0, 0, 2}, 40)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	if sum != 0xffff || h[9] != 6 || int(h[2])<<8|int(h[3]) != 60 {
		t.Fatalf("header % x: sum %#x", h, sum)
	}
}
