package dnsexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

// dns/client-gone's reading of its capture: query, answer to a closed
// port, the client kernel's ICMP error quoting the answer.
func TestReadClientGone(t *testing.T) {
	answer := udp4(srvAP, cliAP, dnsAnswer(t, 4, goneName))
	refused := icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), answer)
	refusedOther := icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), udp4(srvAP, cliAP, dnsAnswer(t, 5, goneName)))
	tests := []struct {
		name    string
		pkts    []*capture.Packet
		ok      bool
		ladder  int
		comment string
	}{
		{"query, answer, ICMP", []*capture.Packet{q(t, 4, goneName), frame(answer), refused}, true, 4,
			"ICMP port unreachable from the client's kernel: nobody listens on port 40000 any more; quotes the answer id=0x0004"},
		{"no ICMP", []*capture.Packet{q(t, 4, goneName), frame(answer)}, false, 3,
			"answer to query 0 id=0x0004 gone.synth.lab. A → A"},
		{"an ICMP quoting another answer", []*capture.Packet{q(t, 4, goneName), frame(answer), refusedOther}, false, 3,
			"ICMP destination unreachable (code 3) from the kernel"},
		{"no query", []*capture.Packet{frame(answer), refused}, false, 0, "reply id=0x0004"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := readClientGone(tt.pkts, srvAP, cliAP)
			if w.ok() != tt.ok || len(w.ladder) != tt.ladder {
				t.Errorf("ok %v (%+v), %d ladder rows; want %v, %d", w.ok(), w, len(w.ladder), tt.ok, tt.ladder)
			}
			allCommented(t, tt.pkts)
			if c := comments(tt.pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
}
