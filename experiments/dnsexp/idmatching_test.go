package dnsexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// dns/id-matching's reading of its capture: pairs, reorderings, strays.
func TestReadIDMatching(t *testing.T) {
	n0, n1, n2 := synthName("q", 0), synthName("q", 1), synthName("q", 2)
	tests := []struct {
		name                                          string
		pkts                                          func() []*capture.Packet
		queries, overtaken, missing, orphans, dup, mx int
		ladder                                        int
		comment                                       string
	}{
		{"answers in order", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, n0), q(t, 2, n1), a(t, 1, n0), a(t, 2, n1)}
		}, 2, 0, 0, 0, 0, 2, 4, "answer to query 1 (id=0x0002 q1.synth.lab. A) → A"},
		{"the later query answered first", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, n0), q(t, 2, n1), q(t, 3, n2), a(t, 3, n2), a(t, 1, n0), a(t, 2, n1)}
		}, 3, 2, 0, 0, 0, 3, 6, "answer to query 0 (id=0x0001 q0.synth.lab. A) → A " + udpdns.SynthA(n0).String() + "; 1 answers arrived before it; client: matched"},
		{"an answer missing", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, n0), q(t, 2, n1), a(t, 2, n1)}
		}, 2, 0, 1, 0, 0, 2, 3, "query 0 (attempt 1): id=0x0001 q0.synth.lab. A"},
		{"an answer twice, one for nobody", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, n0), a(t, 1, n0), a(t, 1, n0), a(t, 9, n1)}
		}, 1, 0, 0, 2, 0, 1, 2, "answer id=0x0009 q1.synth.lab. A → A " + udpdns.SynthA(n1).String() + " with no captured query of that ID and name"},
		{"an ID reused while in flight", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, n0), q(t, 1, n1), a(t, 1, n1)}
		}, 2, 0, 1, 0, 1, 2, 2, "query 1 (attempt 1): id=0x0001 q1.synth.lab. A"}, // the ladder follows the ID to its latest query
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := tt.pkts()
			said := saidOf(udpdns.Event{Kind: udpdns.EventMatched, ID: 1, Name: n0})
			w := readIDMatching(pkts, srvAP, said)
			got := []int{len(w.queries), w.overtaken, w.missing, w.orphans, w.dupIDs, w.maxOut, len(w.ladder), len(w.ports)}
			want := []int{tt.queries, tt.overtaken, tt.missing, tt.orphans, tt.dup, tt.mx, tt.ladder, 1}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("queries, overtaken, missing, orphans, dup IDs, max in flight, ladder rows, ports = %v, want %v", got, want)
					break
				}
			}
			allCommented(t, pkts)
			if c := comments(pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
}

// The first four queries' ladder: sends and answers as they interleaved.
func TestIDMatchingLadder(t *testing.T) {
	var pkts []*capture.Packet
	for i := range 5 {
		pkts = append(pkts, q(t, uint16(i+1), synthName("q", i)))
	}
	for _, i := range []int{4, 2, 0, 1, 3} {
		pkts = append(pkts, a(t, uint16(i+1), synthName("q", i)))
	}
	w := readIDMatching(pkts, srvAP, saidOf())
	var got []string
	for _, r := range w.ladder {
		got = append(got, r.LeftState)
	}
	want := "1 in flight|2 in flight|3 in flight|4 in flight|matched query 2; 3 in flight|matched query 0; 2 in flight|matched query 1; 1 in flight|matched query 3; 0 in flight"
	if strings.Join(got, "|") != want {
		t.Errorf("ladder states\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}

// The callers' outcomes: how many right, their round trips, the first
// failure.
func TestTallyOutcomes(t *testing.T) {
	good, rtts, fail := tallyOutcomes([]outcome{
		{name: "a", ok: true, rtt: 3}, {name: "b", got: "6.6.6.6"}, {name: "c", ok: true, rtt: 1}, {name: "d", err: udpdns.ErrTimeout},
	})
	if good != 2 || len(rtts) != 2 || rtts[0] != 1 || fail == nil || fail.Error() != "b: wrong answer 6.6.6.6" {
		t.Errorf("good %d, rtts %v, first failure %v", good, rtts, fail)
	}
}
