package tcpexp

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcpFrame builds a captured Ethernet/IPv4/TCP frame.
func tcpFrame(src, dst netip.AddrPort, flags uint8, seq, ack uint32, n int) *capture.Packet {
	b := make([]byte, 14+20+20+n)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+n))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12], tcp[13] = 5<<4, flags
	return &capture.Packet{Data: b}
}

func TestRecMatcherCountsTheSegmentsOnTheWire(t *testing.T) {
	loop := netip.MustParseAddr("127.0.0.1")
	lab, kernel := netip.AddrPortFrom(loop, 61000), netip.AddrPortFrom(loop, 4000)
	recs := []rawtcp.Record{
		{Sent: true, Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1000, Flags: tcpstate.SYN}},
		{Seg: rawtcp.RecSeg{SrcPort: 4000, DstPort: 61000, Seq: 5000, Ack: 1001, Flags: tcpstate.SYN | tcpstate.ACK}},
		{Sent: true, Note: "dropped by the link", Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1001, Ack: 5001, Flags: tcpstate.ACK, Len: 10}},
		{Sent: true, Note: "lab forgot its TCB (crash)"}, // a note, no segment
		{Sent: true, Seg: rawtcp.RecSeg{SrcPort: 61000, DstPort: 4000, Seq: 1001, Ack: 5001, Flags: tcpstate.ACK, Len: 10}},
	}
	pkts := []*capture.Packet{
		tcpFrame(lab, kernel, wSYN, 1000, 0, 0),
		tcpFrame(kernel, lab, wSYN|wACK, 5000, 1001, 0),
	}
	m := newRecMatcher(recs, loop, 61000, 61999)
	if m.want != 3 {
		t.Fatalf("want %d on-wire segments, expected 3 (the dropped copy and the note are not on the wire)", m.want)
	}
	if m.feed(pkts) || m.got != 2 {
		t.Fatalf("after 2 of 3 packets: complete, got %d", m.got)
	}
	pkts = append(pkts, tcpFrame(lab, kernel, wACK, 1001, 5001, 10), tcpFrame(kernel, lab, wRST, 5001, 0, 0))
	if !m.feed(pkts) || m.got != 3 || m.extra != 1 {
		t.Fatalf("after every packet: got %d of %d, extra %d, want 3 of 3 and 1 extra", m.got, m.want, m.extra)
	}
	if m.rec[2] != 4 || m.rec[3] != -1 {
		t.Errorf("packet → record %v: the data packet is the copy that went out (record 4), the RST has none", m.rec)
	}
}
