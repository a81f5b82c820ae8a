package dnsexp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// dns/spoofing's replay of its capture through a strict and an ID-only
// matcher, with the forger's log naming each forgery.
func TestReadSpoofing(t *testing.T) {
	name := synthName("s", 0)
	query := new(dns.Msg)
	query.SetQuestion(name, dns.TypeA)
	query.Id = 7
	fromAlt, fromAltPayload := forgeryKinds[4].make(query, srvAP, nil)                             // right everything, from 127.0.0.2
	randomID, randomIDPayload := forgeryKinds[0].make(query, srvAP, func() uint16 { return 0x99 }) // random ID
	alt := udpPkt(fromAlt, cliAP, fromAltPayload)
	rid := udpPkt(randomID, cliAP, randomIDPayload)
	logged := []forgery{{forgeryKinds[4], fromAlt, 7}, {forgeryKinds[0], randomID, 0x99}}
	tests := []struct {
		name                                  string
		pkts                                  []*capture.Packet
		forged                                []forgery
		seen, unlogged, naive, idOnly, ladder int
		comment                               string
	}{
		{"forgeries before the answer", []*capture.Packet{q(t, 7, name), alt, rid, a(t, 7, name)}, logged, 2, 0, 1, 1, 4,
			"forged #1 (right everything, from 127.0.0.2) from 127.0.0.2:53: id=0x0007 s0.synth.lab. A → A 6.6.6.6; client: rejected by the client (wrong source); an ID-only matcher would accept it for s0.synth.lab."},
		{"a forgery after the answer poisons nobody", []*capture.Packet{q(t, 7, name), a(t, 7, name), alt}, logged[:1], 1, 0, 0, 0, 2,
			"genuine answer from 127.0.0.1:53: id=0x0007 s0.synth.lab. A → A " + udpdns.SynthA(name).String() + "; client: matched: completes its query"},
		{"a forgery the log does not name", []*capture.Packet{q(t, 7, name), rid, a(t, 7, name)}, logged[:1], 1, 1, 0, 0, 3,
			"forged #1 (unknown kind)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			said := saidOf(
				udpdns.Event{Kind: udpdns.EventRejected, ID: 7, Name: name, Reason: udpdns.WrongSource},
				udpdns.Event{Kind: udpdns.EventRejected, ID: 0x99, Name: name, Reason: udpdns.WrongID},
				udpdns.Event{Kind: udpdns.EventMatched, ID: 7, Name: name},
			)
			w := readSpoofing(tt.pkts, srvAP, cliAP, tt.forged, said)
			got := []int{w.queries, w.forgedSeen, w.forgedUnlogged, w.naivePoisoned, w.idOnlyPass, len(w.ladder)}
			want := []int{1, tt.seen, tt.unlogged, tt.naive, tt.idOnly, tt.ladder}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("queries, forged seen, unlogged, naive poisoned, ID-only pass, ladder rows = %v, want %v", got, want)
					break
				}
			}
			allCommented(t, tt.pkts)
			if c := comments(tt.pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
}

// A datagram the forger's log does not name is judged as the client
// would.
func TestClassify(t *testing.T) {
	name := synthName("s", 1)
	inflight := map[uint16]string{7: name}
	alt := netip.MustParseAddrPort("127.0.0.2:53")
	notResp := dnsQuery(t, 7, name)
	tests := []struct {
		name string
		pkt  *capture.Packet
		want udpdns.Reason
	}{
		{"question cut short", udpPkt(srvAP, cliAP, dnsAnswer(t, 7, name)[:udpdns.HeaderLen+3]), udpdns.Malformed},
		{"QR=0", udpPkt(srvAP, cliAP, notResp), udpdns.NotResponse},
		{"an ID not in flight", udpPkt(srvAP, cliAP, dnsAnswer(t, 8, name)), udpdns.WrongID},
		{"from another address", udpPkt(alt, cliAP, dnsAnswer(t, 7, name)), udpdns.WrongSource},
		{"from the server, in flight: the question", udpPkt(srvAP, cliAP, dnsAnswer(t, 7, "evil."+udpdns.SynthSuffix)), udpdns.WrongQuestion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := dnsPacket(tt.pkt)
			if got := classify(d, srvAP, inflight); !ok || got != tt.want {
				t.Errorf("classified %v (DNS %v), want %v", got, ok, tt.want)
			}
		})
	}
}
