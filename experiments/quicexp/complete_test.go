package quicexp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn/nat"
)

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
	tcp := tcpExpect(outside, sink, nat.TCPCount{Control: 1, Bytes: 3000}, nat.TCPCount{}, nat.TCPRebinding{})
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
