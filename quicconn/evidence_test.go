package quicconn

import (
	"encoding/binary"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
)

var (
	tServer = netip.MustParseAddrPort("127.0.0.1:4433")
	tNAT    = netip.MustParseAddrPort("127.0.0.1:50001") // the NAT's outside binding
	tFront  = netip.MustParseAddrPort("127.0.0.1:40000") // where the client sends
	tClient = netip.MustParseAddrPort("127.0.0.1:30000")
	tForged = netip.MustParseAddrPort("127.0.0.3:50003")
)

// frame builds an Ethernet/IPv4 frame as the loopback capture records it.
func frame(src, dst netip.AddrPort, proto uint8, l4 []byte) []byte {
	b := make([]byte, 14+20, 14+20+len(l4))
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
	ip[8], ip[9] = 64, proto
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	return append(b, l4...)
}

func udpPacket(src, dst netip.AddrPort, payload []byte) *capture.Packet {
	u := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	return &capture.Packet{Time: time.Unix(1000, 0), Data: frame(src, dst, capture.ProtoUDP, append(u, payload...))}
}

func tcpPacket(src, dst netip.AddrPort, seq, ack uint32, flags uint8, payload []byte) *capture.Packet {
	t := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(t[0:], src.Port())
	binary.BigEndian.PutUint16(t[2:], dst.Port())
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12], t[13] = 5<<4, flags
	binary.BigEndian.PutUint16(t[14:], 512)
	return &capture.Packet{Time: time.Unix(1000, 0), Data: frame(src, dst, capture.ProtoTCP, append(t, payload...))}
}

// shortPacket is a 1-RTT packet of size bytes to dcid whose protected
// bytes start with tag (so two packets of one size differ).
func shortPacket(dcid string, size int, tag byte) []byte {
	b := make([]byte, size)
	b[0] = 0x40
	copy(b[1:], mustHex(dcid))
	b[9] = tag
	return b
}

// initialPacket is an Initial of size bytes (token length 0).
func initialPacket(dcid, scid string, size int) []byte {
	d, s := mustHex(dcid), mustHex(scid)
	b := []byte{0xc0, 0, 0, 0, 1, byte(len(d))}
	b = append(b, d...)
	b = append(b, byte(len(s)))
	b = append(b, s...)
	b = append(b, 0)          // token length
	rest := size - len(b) - 2 // a 2-byte length
	b = append(b, 0x40|byte(rest>>8), byte(rest))
	return append(b, make([]byte, rest)...)
}

func sum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func sent(typ, dcid string, pn int64, length int, detail ...string) PacketEvent {
	return PacketEvent{Sent: true, Type: typ, DCID: dcid, PN: pn, Length: length, Detail: detail, Local: tClient, Remote: tFront}
}

func received(typ string, pn int64, seq int) PacketEvent {
	return PacketEvent{Type: typ, PN: pn, Seq: seq, Local: tServer, Remote: tNAT}
}

func write(to netip.AddrPort, b []byte) Write {
	return Write{To: to, Size: len(b), Sum: sum(b), Parts: parseParts(b, 8)}
}

const cidA = "0a0a0a0a0a0a0a0a"

// Correlate finds each captured packet's records: by the socket's record
// of writes even when a datagram was lost before the capture's leg (where
// order alone would shift every later packet number by one), by bytes for
// an attacker's copy, and by packet number on the receiving side, a
// duplicate getting the receiver's packet_dropped.
func TestCorrelateFindsEachPacketsRecords(t *testing.T) {
	p1, p2, p3 := shortPacket(cidA, 1280, 1), shortPacket(cidA, 1280, 2), shortPacket(cidA, 1280, 3)
	clientSent := []PacketEvent{sent("1RTT", cidA, 1, 1280), sent("1RTT", cidA, 2, 1280), sent("1RTT", cidA, 3, 1280)}
	for _, tc := range []struct {
		name     string
		captured []*capture.Packet
		logs     Logs
		forged   func(netip.AddrPort) bool
		// wantPN is, for each captured datagram, the packet number of its
		// sender's record (-1: none); wantRecv the receiver's record's
		// drop reason ("" processed, "-" none).
		wantPN   []int64
		wantRecv []string
		wantCopy []bool
	}{
		{
			name:     "in order, every record",
			captured: []*capture.Packet{udpPacket(tNAT, tServer, p1), udpPacket(tNAT, tServer, p2), udpPacket(tNAT, tServer, p3)},
			logs: Logs{Client: clientSent, Server: []PacketEvent{received("1RTT", 1, 1), received("1RTT", 2, 2), received("1RTT", 3, 3)},
				ClientWrites: []Write{write(tFront, p1), write(tFront, p2), write(tFront, p3)}},
			wantPN: []int64{1, 2, 3}, wantRecv: []string{"", "", ""}, wantCopy: []bool{false, false, false},
		},
		{
			name:     "a datagram lost before the NAT: the writes keep the numbers right",
			captured: []*capture.Packet{udpPacket(tNAT, tServer, p1), udpPacket(tNAT, tServer, p3)},
			logs: Logs{Client: clientSent, Server: []PacketEvent{received("1RTT", 1, 1), received("1RTT", 3, 2)},
				ClientWrites: []Write{write(tFront, p1), write(tFront, p2), write(tFront, p3)}},
			wantPN: []int64{1, 3}, wantRecv: []string{"", ""}, wantCopy: []bool{false, false},
		},
		{
			name:     "the same loss without a record of writes: order alone is off by one",
			captured: []*capture.Packet{udpPacket(tNAT, tServer, p1), udpPacket(tNAT, tServer, p3)},
			logs:     Logs{Client: clientSent, Server: []PacketEvent{received("1RTT", 1, 1), received("1RTT", 3, 2)}},
			wantPN:   []int64{1, 2}, wantRecv: []string{"", "-"}, wantCopy: []bool{false, false},
		},
		{
			name:     "an attacker's copy first: it takes the client's record and the packet_received, the original the packet_dropped",
			captured: []*capture.Packet{udpPacket(tForged, tServer, p2), udpPacket(tNAT, tServer, p2)},
			logs: Logs{Client: clientSent[1:2], Server: []PacketEvent{received("1RTT", 2, 1)},
				ServerDropped: []PacketEvent{{Type: "1RTT", PN: 2, Seq: 2, Dropped: "duplicate"}},
				ClientWrites:  []Write{write(tFront, p2)}},
			forged: func(a netip.AddrPort) bool { return a == tForged },
			wantPN: []int64{2, 2}, wantRecv: []string{"", "duplicate"}, wantCopy: []bool{true, false},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Datagrams(tc.captured, tServer, 8)
			Correlate(ds, tServer, tc.logs, tc.forged)
			for i, d := range ds {
				pn, recv := int64(-1), "-"
				if s := d.Parts[0].Sent; s != nil {
					pn = s.PN
				}
				if r := d.Parts[0].Recv; r != nil {
					recv = r.Dropped
				}
				if pn != tc.wantPN[i] || recv != tc.wantRecv[i] || (d.CopyOf != nil) != tc.wantCopy[i] {
					t.Errorf("datagram %d: sender's pn %d, receiver's record %q, copy %t; want %d, %q, %t", i, pn, recv, d.CopyOf != nil, tc.wantPN[i], tc.wantRecv[i], tc.wantCopy[i])
				}
			}
		})
	}
}

// A coalesced datagram's packets are found by the datagram checksum
// quic-go logs for them, each part with its own record.
func TestCorrelateMatchesCoalescedPacketsByChecksum(t *testing.T) {
	init := initialPacket("1111111111111111", "2222222222222222", 300)
	short := shortPacket(cidA, 100, 9)
	dg := append(append([]byte{}, init...), short...)
	ev := []PacketEvent{sent("initial", "1111111111111111", 0, 300), sent("1RTT", cidA, 0, 100)}
	ev[0].Checksum, ev[1].Checksum = sum(dg), sum(dg)
	ds := Datagrams([]*capture.Packet{udpPacket(tServer, tNAT, dg)}, tServer, 8)
	c := Correlate(ds, tServer, Logs{Server: ev}, nil)
	if len(ds[0].Parts) != 2 || ds[0].Parts[0].Sent != &ev[0] || ds[0].Parts[1].Sent != &ev[1] || ds[0].Event != &ev[1] {
		t.Fatalf("parts %+v", ds[0].Parts)
	}
	if c.ServerMatched != 2 || c.ServerTotal != 2 {
		t.Errorf("server %d of %d matched", c.ServerMatched, c.ServerTotal)
	}
}

func TestDatagramCommentSaysWhatEachEndpointLogged(t *testing.T) {
	snd := sent("1RTT", cidA, 57, 1280, "ACK 0-55", "STREAM 0 off 1200 len 1100")
	rcv := PacketEvent{Type: "1RTT", PN: 57, Local: tServer, Remote: tNAT}
	dup := PacketEvent{Type: "1RTT", PN: 57, Dropped: "duplicate"}
	srvSent := PacketEvent{Sent: true, Type: "initial", PN: 0, Detail: []string{"ACK 0"}, Local: tServer, Remote: tNAT}
	srvHS := PacketEvent{Sent: true, Type: "handshake", PN: 0, Detail: []string{"CRYPTO off 0 len 900"}, Local: tServer, Remote: tNAT}
	part := func(typ string, s, r *PacketEvent) Part {
		return Part{Type: typ, DCID: cidA, Len: 1280, Sent: s, Recv: r}
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
			&Datagram{Src: tServer, Dst: tNAT, Parts: []Part{{Type: "initial", DCID: cidA, SCID: "bb", Sent: &srvSent}, {Type: "handshake", DCID: cidA, Sent: &srvHS}}},
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

func TestDatagramsSentCountsCoalescedPacketsOnce(t *testing.T) {
	ev := func(sent bool, sum uint32) PacketEvent { return PacketEvent{Sent: sent, Checksum: sum} }
	for _, tc := range []struct {
		name   string
		events []PacketEvent
		want   int
	}{
		{"one datagram per 1-RTT packet", []PacketEvent{ev(true, 0), ev(true, 0), ev(true, 0)}, 3},
		{"Initial+Handshake+1-RTT coalesced share one checksum", []PacketEvent{ev(true, 7), ev(true, 7), ev(true, 7), ev(true, 0)}, 2},
		{"two coalesced datagrams in a row", []PacketEvent{ev(true, 7), ev(true, 7), ev(true, 8), ev(true, 8)}, 2},
		{"received packets do not count, nor split a datagram", []PacketEvent{ev(true, 7), ev(false, 0), ev(true, 7), ev(false, 9)}, 1},
		{"nothing", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DatagramsSent(tc.events); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// The completeness test stops the capture only when every count is met,
// and an extra packet of one kind does not hide a missing one of another.
func TestCompletenessMeetsEveryCountOfItsSource(t *testing.T) {
	outside, sink := netip.MustParseAddrPort("127.0.0.1:50010"), netip.MustParseAddrPort("127.0.0.1:5001")
	udp := func() *capture.Packet { return udpPacket(tNAT, tServer, shortPacket(cidA, 50, 0)) }
	data := func(n int) *capture.Packet {
		return tcpPacket(outside, sink, 1, 1, capture.FlagACK|capture.FlagPSH, make([]byte, n))
	}
	ack := tcpPacket(outside, sink, 1, 1, capture.FlagACK, nil)
	synAck := tcpPacket(sink, outside, 1, 1, capture.FlagSYN|capture.FlagACK, nil)
	// The NAT's socket sent 1 segment without data and 3000 payload bytes
	// (however the kernel cut them); the server's only its SYN,ACK.
	tcp := tcpExpect(outside, sink, TCPCount{Control: 1, Bytes: 3000}, TCPCount{}, TCPRebinding{})
	for _, tc := range []struct {
		name      string
		exp       []expect
		pkts      []*capture.Packet
		complete  bool
		got, want int
		unit      string
	}{
		{"one kind: packets of packets", []expect{{what: "QUIC datagrams", want: 2, units: udpTo(tServer.Port())}},
			[]*capture.Packet{udp()}, false, 1, 2, "QUIC datagrams"},
		{"one kind, more than counted: got is capped", []expect{{what: "QUIC datagrams", want: 2, units: udpTo(tServer.Port())}},
			[]*capture.Packet{udp(), udp(), udp()}, true, 2, 2, "QUIC datagrams"},
		{"several kinds: nothing yet", tcp, nil, false, 2, 5, // no payload is wanted from the server nor anything on a new 4-tuple
			"counts met: 0 of 1 TCP segments without data NAT → server, 0 of 3000 TCP payload bytes NAT → server, 0 of 1 TCP segments without data server → NAT"},
		{"the bytes in one segment of two MSS or in three", tcp, []*capture.Packet{synAck, ack, data(3000)}, true, 5, 5, "3000 of 3000 TCP payload bytes"},
		{"the same bytes in three segments", tcp, []*capture.Packet{synAck, ack, data(1000), data(1000), data(1000)}, true, 5, 5, "3000 of 3000 TCP payload bytes"},
		{"an extra ACK does not make up for missing bytes", tcp, []*capture.Packet{synAck, ack, ack, data(2000)}, false, 4, 5, "2 of 1 TCP segments without data NAT → server, 2000 of 3000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCompleteness(tc.exp...)
			// Packets arrive one by one, as StopWhen calls the test.
			done := c.add(nil)
			for i := range tc.pkts {
				done = c.add(tc.pkts[:i+1])
			}
			got, want, unit, _ := c.totals()
			if done != tc.complete || got != tc.got || want != tc.want || !strings.Contains(unit, tc.unit) {
				t.Errorf("complete %t, %d of %d, unit %q; want %t, %d of %d, %q", done, got, want, unit, tc.complete, tc.got, tc.want, tc.unit)
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
	rb := TCPRebinding{Old: outside, New: newPort, Seq: issO + 1 + 20, Ack: issS + 1, SeqKnown: true}
	pkts := []*capture.Packet{
		tcpPacket(outside, sink, issO, 0, capture.FlagSYN, nil),
		tcpPacket(sink, outside, issS, issO+1, capture.FlagSYN|capture.FlagACK, nil),
		tcpPacket(outside, sink, issO+1, issS+1, capture.FlagACK|capture.FlagPSH, make([]byte, 20)),
		tcpPacket(sink, outside, issS+1, issO+21, capture.FlagACK, nil),
		tcpPacket(newPort, sink, rb.Seq, rb.Ack, capture.FlagACK|capture.FlagPSH, make([]byte, 10)),
		tcpPacket(sink, newPort, rb.Ack, 0, capture.FlagRST, nil),
	}
	segs := CommentTCP(pkts, outside, sink, rb)
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
