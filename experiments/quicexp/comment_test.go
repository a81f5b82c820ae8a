package quicexp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

func TestDatagramCommentSaysWhatEachEndpointLogged(t *testing.T) {
	snd := sent("1RTT", cidA, 57, 1280, "ACK 0-55", "STREAM 0 off 1200 len 1100")
	rcv := PacketEvent{Type: "1RTT", PN: 57, Local: tServer, Remote: tNAT}
	dup := PacketEvent{Type: "1RTT", PN: 57, Dropped: "duplicate"}
	srvSent := PacketEvent{Sent: true, Type: "initial", PN: 0, Detail: []string{"ACK 0"}, Local: tServer, Remote: tNAT}
	srvHS := PacketEvent{Sent: true, Type: "handshake", PN: 0, Detail: []string{"CRYPTO off 0 len 900"}, Local: tServer, Remote: tNAT}
	part := func(typ string, s, r *PacketEvent) Part {
		return Part{Header: quicconn.Header{Type: typ, DCID: cidA, Len: 1280}, Sent: s, Recv: r}
	}
	orig := &Datagram{Index: 7, Src: tNAT, Dst: tServer}
	for _, tc := range []struct {
		name string
		d    *Datagram
		want []string
	}{
		{"a 1-RTT packet both endpoints logged",
			&Datagram{Src: tNAT, Dst: tServer, Parts: []Part{part("1RTT", &snd, &rcv)}},
			[]string{"1-RTT pn 57 [ACK 0-55, STREAM 0 off 1200 len 1100] DCID " + cidA,
				"client sent it on 127.0.0.1:30000 → 127.0.0.1:40000 (as logged by the client)",
				"server received it on 127.0.0.1:50001 → 127.0.0.1:4433 (as logged by the server)"}},
		{"coalesced packets, one description each",
			&Datagram{Src: tServer, Dst: tNAT, Parts: []Part{{Header: quicconn.Header{Type: "initial", DCID: cidA, SCID: "bb"}, Sent: &srvSent}, {Header: quicconn.Header{Type: "handshake", DCID: cidA}, Sent: &srvHS}}},
			[]string{"Initial pn 0 [ACK 0] DCID " + cidA + " SCID bb + Handshake pn 0 [CRYPTO off 0 len 900]",
				"server sent it on 127.0.0.1:4433 → 127.0.0.1:50001 (as logged by the server)",
				"the client's qlog has no record of receiving it"}},
		{"no qlog record: the cleartext header alone",
			&Datagram{Src: tNAT, Dst: tServer, Size: 1280, Parts: []Part{part("1RTT", nil, nil)}},
			[]string{"1-RTT DCID " + cidA + " (1280 B; no qlog record",
				"127.0.0.1:50001 → 127.0.0.1:4433 on the wire; not in the client's qlog as sent"}},
		{"a duplicate the server dropped",
			&Datagram{Src: tNAT, Dst: tServer, Parts: []Part{part("1RTT", &snd, &dup)}},
			[]string{"1-RTT pn 57", "the server dropped it: duplicate (as logged by the server)"}},
		{"an attacker's copy",
			&Datagram{Src: tForged, Dst: tServer, CopyOf: orig, Parts: []Part{part("1RTT", &snd, &rcv)}},
			[]string{"1-RTT pn 57", "a byte-identical copy of the client's datagram (frame 8), sent from 127.0.0.3:50003 by an attacker, not by the client",
				"server received it on"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DatagramComment(tc.d, tServer)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("comment %q\nlacks %q", got, w)
				}
			}
		})
	}
}

// Every TCP segment is commented with Wireshark's relative numbers: from
// the ISS where the SYN is captured, from 1 on the NAT's new 4-tuple,
// which has no handshake; the crafted segment also in the old
// connection's terms.
func TestCommentTCPNumbersAsWiresharkDoes(t *testing.T) {
	outside, sink, newPort := netip.MustParseAddrPort("127.0.0.1:50010"), netip.MustParseAddrPort("127.0.0.1:5001"), netip.MustParseAddrPort("127.0.0.1:50020")
	const issO, issS = 1000, 900000
	rb := nat.TCPRebinding{Old: outside, New: newPort, Seq: issO + 1 + 20, Ack: issS + 1, SeqKnown: true}
	pkts := []*capture.Packet{
		tcpPacket(outside, sink, issO, 0, capture.FlagSYN, nil),
		tcpPacket(sink, outside, issS, issO+1, capture.FlagSYN|capture.FlagACK, nil),
		tcpPacket(outside, sink, issO+1, issS+1, capture.FlagACK|capture.FlagPSH, make([]byte, 20)),
		tcpPacket(sink, outside, issS+1, issO+21, capture.FlagACK, nil),
		tcpPacket(newPort, sink, rb.Seq, rb.Ack, capture.FlagACK|capture.FlagPSH, make([]byte, 10)),
		tcpPacket(sink, newPort, rb.Ack, 0, capture.FlagRST, nil),
	}
	segs := commentTCP(pkts, outside, sink, rb)
	for i, want := range []struct {
		seq     uint32
		comment []string
	}{
		{0, []string{"TCP [SYN] seq 0 len 0", "the NAT's outside socket", "(ISS 1000;"}},
		{0, []string{"TCP [SYN, ACK] seq 0 ack 1", "the server's kernel", "(ISS 900000;"}},
		{1, []string{"TCP [PSH, ACK] seq 1 ack 1 len 20", "the client's bytes 0–19, relayed"}},
		{1, []string{"TCP [ACK] seq 1 ack 21", "acknowledges the client's first 20 bytes"}},
		{1, []string{"TCP [PSH, ACK] seq 1 ack 1 len 10", "crafted by the NAT", "seq 21 ack 1 in its terms (raw seq 1021 ack 900001"}},
		{1, []string{"TCP [RST] seq 1 len 0", "no socket has this 4-tuple"}},
	} {
		if len(segs) <= i {
			t.Fatalf("%d segments", len(segs))
		}
		if segs[i].relSeq != want.seq {
			t.Errorf("segment %d: relative seq %d, want %d", i, segs[i].relSeq, want.seq)
		}
		if len(pkts[i].Comments) != 1 {
			t.Fatalf("segment %d: %d comments", i, len(pkts[i].Comments))
		}
		for _, w := range want.comment {
			if !strings.Contains(pkts[i].Comments[0], w) {
				t.Errorf("segment %d: comment %q\nlacks %q", i, pkts[i].Comments[0], w)
			}
		}
	}
}
