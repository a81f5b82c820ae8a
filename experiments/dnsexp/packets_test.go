package dnsexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// What the capture's packets are read as, and what an undrawn packet's
// comment says.
func TestReadingPackets(t *testing.T) {
	name := "x." + udpdns.SynthSuffix
	query := udp4(cliAP, srvAP, dnsQuery(t, 0x1234, name))
	tests := []struct {
		name    string
		pkt     *capture.Packet
		isDNS   bool
		icmp    bool
		comment string // substring of describePacket
	}{
		{"a query", udpPkt(cliAP, srvAP, dnsQuery(t, 0x1234, name)), true, false, "query id=0x1234 x.synth.lab. A from 127.0.0.1:40000 to 127.0.0.1:53"},
		{"an answer", udpPkt(srvAP, cliAP, dnsAnswer(t, 0x1234, name)), true, false, "reply id=0x1234 x.synth.lab. A"},
		{"too short for DNS", udpPkt(cliAP, srvAP, []byte{1, 2, 3}), false, false, "not DNS"},
		{"ICMP port unreachable quoting a query", icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), query), false, true,
			"ICMP destination unreachable (code 3) from the kernel: nothing listens on 127.0.0.1:53; quotes the datagram 127.0.0.1:40000 → 127.0.0.1:53 id=0x1234"},
		{"another ICMP message", frame(ipv4(ip4("127.0.0.1"), ip4("127.0.0.2"), capture.ProtoICMP, []byte{8, 0, 0, 0, 0, 0, 0, 0})), false, false,
			"ICMP type 8 from 127.0.0.1 to 127.0.0.2"},
		{"not IP", &capture.Packet{Data: []byte{1, 2, 3}}, false, false, "not decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, isDNS := dnsPacket(tt.pkt)
			u, icmp := icmpUnreachable(tt.pkt)
			if isDNS != tt.isDNS || icmp != tt.icmp {
				t.Errorf("DNS %v, ICMP unreachable %v; want %v, %v", isDNS, icmp, tt.isDNS, tt.icmp)
			}
			if icmp && (u.src != cliAP || u.dst != srvAP || u.quoted.ID != 0x1234 || u.quoted.Name() != name) {
				t.Errorf("quoted %v → %v id %#04x %q", u.src, u.dst, u.quoted.ID, u.quoted.Name())
			}
			if c := describePacket(tt.pkt); !strings.Contains(c, tt.comment) {
				t.Errorf("comment %q lacks %q", c, tt.comment)
			}
		})
	}
}

// An answer renders as its records, or its rcode.
func TestAnswerRendering(t *testing.T) {
	name := "y." + udpdns.SynthSuffix
	tests := []struct {
		name    string
		payload []byte
		want    string
	}{
		{"synthetic A", dnsAnswer(t, 1, name), "A " + udpdns.SynthA(name).String()},
		{"NXDOMAIN", dnsAnswer(t, 1, "nosuch.lab."), "NXDOMAIN"},
		{"malformed", dnsAnswer(t, 1, name)[:udpdns.HeaderLen+3], "(malformed)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := dnsPacket(udpPkt(srvAP, cliAP, tt.payload))
			if !ok || d.answer() != tt.want {
				t.Errorf("answer %q (DNS: %v), want %q", d.answer(), ok, tt.want)
			}
		})
	}
}

// A capture is counted in the sources' categories, and holds what they
// counted or not.
func TestWireWantCounts(t *testing.T) {
	name := "z." + udpdns.SynthSuffix
	full := []*capture.Packet{q(t, 1, name), a(t, 1, name), icmpPkt(ip4("127.0.0.1"), ip4("127.0.0.1"), udp4(srvAP, cliAP, dnsAnswer(t, 1, name))),
		udpPkt(srvAP, netipAP("127.0.0.1:999"), dnsAnswer(t, 1, name))}
	x := wireWant{server: srvAP, client: cliAP, queries: 1, replies: 1}
	tests := []struct {
		name string
		pkts []*capture.Packet
		icmp int // the kernel's count
		want wireGot
		ok   bool
	}{
		{"everything", full, 1, wireGot{queries: 1, replies: 1, icmp: 1}, true},
		{"the ICMP error missing", full[:2], 1, wireGot{queries: 1, replies: 1}, false},
		{"the answer missing", []*capture.Packet{full[0], full[2]}, 1, wireGot{queries: 1, icmp: 1}, false},
		{"nothing", nil, 0, wireGot{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := x.count(tt.pkts)
			if g != tt.want || x.holds(g, tt.icmp) != tt.ok {
				t.Errorf("counted %+v (holds %v), want %+v (%v)", g, x.holds(g, tt.icmp), tt.want, tt.ok)
			}
		})
	}
}

// The client's verdicts are handed out per ID and name, in the order it
// read them, the first that fits.
func TestVerdicts(t *testing.T) {
	name := "v." + udpdns.SynthSuffix
	said := saidOf(
		udpdns.Event{Kind: udpdns.EventRejected, ID: 7, Name: name, Reason: udpdns.WrongSource},
		udpdns.Event{Kind: udpdns.EventMatched, ID: 7, Name: strings.ToUpper(name)},
		udpdns.Event{Kind: udpdns.EventDuplicate, ID: 7, Name: name},
		udpdns.Event{Kind: udpdns.EventSent, ID: 7, Name: name}, // not a verdict
	)
	d, _ := dnsPacket(a(t, 7, name))
	steps := []struct {
		fits  func(udpdns.Event) bool
		short string
	}{
		{func(e udpdns.Event) bool { return e.Kind != udpdns.EventRejected }, "matched"},
		{nil, "rejected: wrong source"},
		{nil, "duplicate: completes nothing"},
		{nil, "not read"},
	}
	for i, s := range steps {
		var short string
		if s.fits != nil {
			_, short = said.saidWhere(d, s.fits)
		} else {
			_, short = said.said(d)
		}
		if short != s.short {
			t.Errorf("step %d: %q, want %q", i, short, s.short)
		}
	}
}
