package dnsexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

// dns/server-restart's reading of its capture: the kernel's refusal of the
// query sent while down, and which process answered what.
func TestReadRestart(t *testing.T) {
	before := synthName("before", 0)
	refused := icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), udp4(cliAP, srvAP, dnsQuery(t, 2, gapName)))
	refusedOther := icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), udp4(cliAP, srvAP, dnsQuery(t, 9, before)))
	otherPort := udpPkt(netipAP("127.0.0.1:40001"), srvAP, dnsQuery(t, 5, synthName("after", 0)))
	tests := []struct {
		name    string
		pkts    []*capture.Packet
		icmps   int
		forGap  bool
		ports   int
		ladder  int
		comment string
	}{
		{"refused while down, answered by the new process",
			[]*capture.Packet{q(t, 1, before), a(t, 1, before), q(t, 2, gapName), refused, q(t, 3, gapName), a(t, 3, gapName)},
			1, true, 1, 6, "answer to query 1 id=0x0003 during-restart.synth.lab. A → A"},
		{"the refusal quotes another query", []*capture.Packet{q(t, 9, before), refusedOther}, 1, false, 1, 2,
			"ICMP port unreachable (code 3) from the kernel: nothing listens on 127.0.0.1:53 — the server is down; quotes query id=0x0009 before0.synth.lab."},
		{"no refusal, two client ports", []*capture.Packet{q(t, 1, before), a(t, 1, before), otherPort}, 0, false, 2, 2,
			"answer to query 0 id=0x0001 before0.synth.lab. A → A"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := readRestart(tt.pkts, srvAP, cliAP, 100, 200, saidOf())
			if w.icmps != tt.icmps || w.icmpForGap != tt.forGap || len(w.ports) != tt.ports || len(w.ladder) != tt.ladder {
				t.Errorf("ICMP %d (for the gap query: %v), %d ports, %d ladder rows; want %d (%v), %d, %d",
					w.icmps, w.icmpForGap, len(w.ports), len(w.ladder), tt.icmps, tt.forGap, tt.ports, tt.ladder)
			}
			if tt.forGap && w.gapFirstID != 2 {
				t.Errorf("the gap query's first ID %#04x, want 0x0002", w.gapFirstID)
			}
			allCommented(t, tt.pkts)
			if c := comments(tt.pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
	// After the kernel's refusal, answers are the new process's.
	pkts := []*capture.Packet{q(t, 1, before), a(t, 1, before), q(t, 2, gapName), refused, q(t, 3, gapName), a(t, 3, gapName)}
	readRestart(pkts, srvAP, cliAP, 100, 200, saidOf())
	if !strings.Contains(pkts[1].Comments[0], "(pid 100)") || !strings.Contains(pkts[5].Comments[0], "(pid 200)") {
		t.Errorf("answers credited to %q and %q", pkts[1].Comments[0], pkts[5].Comments[0])
	}
}

// The Holding row's bytes: ID (2) + QNAME in wire form + QTYPE and QCLASS
// (4) of every captured query, answers not counted.
func TestReadRestartCountsIDAndQuestionBytes(t *testing.T) {
	before := synthName("before", 0) // 1+7 +1+5 +1+3 +1 = 19 bytes of QNAME
	pkts := []*capture.Packet{q(t, 1, before), a(t, 1, before), q(t, 2, gapName)}
	w := readRestart(pkts, srvAP, cliAP, 100, 200, saidOf())
	if want := (2 + 19 + 4) + (2 + 26 + 4); w.queries != 2 || w.idQuestionBytes != want {
		t.Errorf("%d queries, %d bytes; want 2, %d", w.queries, w.idQuestionBytes, want)
	}
}
