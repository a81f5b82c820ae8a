package quicexp

import (
	"net/netip"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

func TestParseHeaderReadsCleartextConnectionIDs(t *testing.T) {
	short := append([]byte{0x40}, mustHex("0102030405060708")...)
	short = append(short, make([]byte, 30)...)
	// An Initial (token length 0, length 3) coalesced with a 1-RTT packet.
	initial := []byte{0xc0, 0, 0, 0, 1, 4, 0xaa, 0xbb, 0xcc, 0xdd, 2, 0x11, 0x22, 0x00, 0x03, 1, 2, 3}
	coalesced := append(append([]byte{}, initial...), short...)
	for _, tc := range []struct {
		name            string
		in              []byte
		long            bool
		typ, dcid, scid string
		tailLen         int
		tailDCID        string
	}{
		{"short header: 8-byte DCID after the flags", short, false, "1RTT", "0102030405060708", "", 0, ""},
		{"initial alone", initial, true, "initial", "aabbccdd", "1122", 0, ""},
		{"initial with a coalesced 1-RTT packet", coalesced, true, "initial", "aabbccdd", "1122", len(short), "0102030405060708"},
		{"truncated long header does not panic", []byte{0xc0, 0, 0, 0, 1, 20, 1}, true, "initial", "", "", 0, ""},
		{"version negotiation", []byte{0x80, 0, 0, 0, 0, 1, 9, 1, 8}, true, "version_negotiation", "09", "08", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Datagram{}
			parseHeader(d, tc.in, 8)
			if d.Long != tc.long || d.Type != tc.typ || d.DCID != tc.dcid || d.SCID != tc.scid || d.TailLen != tc.tailLen || d.TailDCID != tc.tailDCID {
				t.Errorf("got long=%t type=%s dcid=%s scid=%s tail=%d/%s", d.Long, d.Type, d.DCID, d.SCID, d.TailLen, d.TailDCID)
			}
		})
	}
}

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
