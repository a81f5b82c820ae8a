package quicexp

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
)

// Small captures for the analysis tests: frames built as the loopback
// capture records them, and qlog records to join with them.

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

func sum(b []byte) uint32 { return quicconn.Checksum(b) }

func sent(typ, dcid string, pn int64, length int, detail ...string) PacketEvent {
	return PacketEvent{Sent: true, Type: typ, DCID: dcid, PN: pn, Length: length, Detail: detail, Local: tClient, Remote: tFront}
}

func received(typ string, pn int64, seq int) PacketEvent {
	return PacketEvent{Type: typ, PN: pn, Seq: seq, Local: tServer, Remote: tNAT}
}

func write(to netip.AddrPort, b []byte) Write {
	return Write{To: to, Size: len(b), Sum: sum(b), Headers: quicconn.ParseHeaders(b, 8)}
}

const cidA = "0a0a0a0a0a0a0a0a"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Correlated datagrams, as the experiments' analysis reads them: built
// directly, without bytes, for the steps that read only the join.

var (
	tNew  = netip.MustParseAddrPort("127.0.0.1:50002") // a NAT's new binding, a client's new path
	tNew2 = netip.MustParseAddrPort("127.0.0.2:50003")
	t0    = time.Unix(1000, 0)
)

// dgram is a 1-RTT datagram from src to dst with destination connection
// ID dcid; opts fill in the rest.
func dgram(src, dst netip.AddrPort, dcid string, opts ...func(*Datagram)) *Datagram {
	d := &Datagram{Src: src, Dst: dst, DCID: dcid, Type: "1RTT", Size: 100}
	for _, o := range opts {
		o(d)
	}
	return d
}

// capturedIn numbers the datagrams as a capture holds them, 1 ms apart.
func capturedIn(ds ...*Datagram) []*Datagram {
	for i, d := range ds {
		d.Index, d.Time = i, t0.Add(time.Duration(i)*time.Millisecond)
	}
	return ds
}

// long makes a datagram a long header one of type typ.
func long(typ, scid string) func(*Datagram) {
	return func(d *Datagram) { d.Long, d.Type, d.SCID = true, typ, scid }
}

// srvLogged gives a datagram the server's record e (sent when the server
// sent the datagram).
func srvLogged(e PacketEvent) func(*Datagram) {
	return func(d *Datagram) { d.Event = &e }
}

// cliLogged gives a datagram the client's record e.
func cliLogged(e PacketEvent) func(*Datagram) {
	return func(d *Datagram) { d.ClientEvent = &e }
}

func size(n int) func(*Datagram) { return func(d *Datagram) { d.Size = n } }

// challenge and response are PATH_CHALLENGE and PATH_RESPONSE records.
func challenge(b byte) PacketEvent {
	return PacketEvent{Sent: true, Challenge: [][8]byte{{b}}, Frames: []string{"PATH_CHALLENGE"}}
}

func response(b byte) PacketEvent {
	return PacketEvent{Sent: true, Response: [][8]byte{{b}}, Frames: []string{"PATH_RESPONSE"}}
}
