package httpexp

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/statelab/statelab/lab/capture"
)

func TestCommentSegmentsLeavesNoPacketBare(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cl := netip.MustParseAddrPort("127.0.0.1:40000")
	other := netip.MustParseAddrPort("127.0.0.1:9999")
	req := tcpPacket(cl, srv, capture.FlagACK|capture.FlagPSH, "POST / HTTP/1.1\r\n\r\n")
	req.Comment("already said: request 1")
	pkts := []*capture.Packet{
		tcpPacket(cl, srv, capture.FlagSYN, ""),
		tcpPacket(srv, cl, capture.FlagSYN|capture.FlagACK, ""),
		req,
		tcpPacket(srv, cl, capture.FlagACK, ""),
		tcpPacket(srv, cl, capture.FlagACK, "more body"),
		tcpPacket(cl, srv, capture.FlagFIN|capture.FlagACK, ""),
		tcpPacket(cl, other, capture.FlagSYN, ""),
	}
	commentSegments(pkts, map[netip.AddrPort]string{srv: "stateful server"})
	block := func(side string) string {
		return ` [statelab side=` + side + ` kind=segment mode="stateful server" conn=1]`
	}
	want := []string{
		"127.0.0.1:40000 → stateful server, connection 1: SYN; the client opens a connection" + block("client"),
		"stateful server → 127.0.0.1:40000, connection 1: SYN, ACK; the server accepts the connection" + block("server"),
		"already said: request 1",
		"stateful server → 127.0.0.1:40000, connection 1: ACK; acknowledges what it received, no data" + block("server"),
		"stateful server → 127.0.0.1:40000, connection 1: ACK; 9 more bytes of the HTTP message commented on its first segment" + block("server"),
		"127.0.0.1:40000 → stateful server, connection 1: FIN, ACK; the client has nothing more to send" + block("client"),
		"",
	}
	for i, p := range pkts {
		if got := strings.Join(p.Comments, " | "); got != want[i] {
			t.Errorf("packet %d: %q, want %q", i+1, got, want[i])
		}
	}
}

// tcpPacket builds one loopback TCP segment with the given flags.
func tcpPacket(from, to netip.AddrPort, flags uint8, payload string) *capture.Packet {
	eth := &layers.Ethernet{EthernetType: layers.EthernetTypeIPv4, SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6)}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(from.Port()), DstPort: layers.TCPPort(to.Port()), Window: 512,
		FIN: flags&capture.FlagFIN != 0, SYN: flags&capture.FlagSYN != 0, RST: flags&capture.FlagRST != 0,
		PSH: flags&capture.FlagPSH != 0, ACK: flags&capture.FlagACK != 0}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	_ = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp, gopacket.Payload(payload))
	return &capture.Packet{Data: buf.Bytes()}
}
