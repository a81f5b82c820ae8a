package dnsexp

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// withCookie packs m with a COOKIE option (nil: none).
func withCookie(t *testing.T, m *dns.Msg, cookie []byte) []byte {
	if cookie != nil {
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: hex.EncodeToString(cookie)})
	}
	return pack(t, m)
}

// dns/cookies' reading: the cookie each query carried, what the first
// answer taught, forgeries named with the client's verdict, BADCOOKIE
// counted.
func TestReadCookies(t *testing.T) {
	client := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	sc, _ := udpdns.ServerCookie(make([]byte, 16), [8]byte(client), ip4("127.0.0.1"), 1559731985)
	full := append(append([]byte(nil), client...), sc[:]...)
	n0, n1 := synthName("learn", 0), synthName("learn", 1)
	query := func(id uint16, name string, c []byte) *capture.Packet {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = id
		return udpPkt(cliAP, srvAP, withCookie(t, m, c))
	}
	answer := func(id uint16, name string, c []byte, rcode int) *capture.Packet {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Id = id
		r := udpdns.BuiltinZone().Answer(m)
		r.Rcode = rcode
		if rcode != dns.RcodeSuccess {
			r.Answer = nil
		}
		return udpPkt(srvAP, cliAP, withCookie(t, r, c))
	}
	fm := new(dns.Msg)
	fm.SetQuestion(n1, dns.TypeA)
	fm.Id = 2
	forged := udpPkt(srvAP, cliAP, pack(t, poisonReply(fm, 2, n1, dns.TypeA, dns.ClassINET)))
	pkts := []*capture.Packet{
		query(1, n0, client), answer(1, n0, full, dns.RcodeSuccess),
		query(2, n1, full), forged, answer(2, n1, full, dns.RcodeSuccess),
		query(3, n1, full), answer(3, n1, full, dns.RcodeBadCookie),
	}
	said := saidOf(udpdns.Event{Kind: udpdns.EventMatched, ID: 1, Name: n0},
		udpdns.Event{Kind: udpdns.EventRejected, ID: 2, Name: n1, Reason: udpdns.MissingCookie},
		udpdns.Event{Kind: udpdns.EventMatched, ID: 2, Name: n1})
	w := readCookies(pkts, srvAP, cliAP, nil, said)
	if w.clientQueries != 3 || w.firstCookie != 8 || w.full != 2 || w.fullLen != 24 || w.optionBytes != 56 || !w.learnedInFirstAnswer || w.forgedSeen != 1 || w.badCookies != 1 {
		t.Errorf("read %+v", w)
	}
	allCommented(t, pkts)
	c := comments(pkts)
	for _, want := range []string{"cookie: client cookie only (8 bytes)", "24 bytes: client 8 + server 16 (version 1, stamped 10:53:05)",
		"forged answer #1 from 127.0.0.1:53 (raw socket) with no cookie", "rejected by the client (missing cookie)", "BADCOOKIE (extended RCODE 23)"} {
		if !strings.Contains(c, want) {
			t.Errorf("comments lack %q:\n%s", want, c)
		}
	}
}
