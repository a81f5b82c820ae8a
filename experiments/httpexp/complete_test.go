package httpexp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/statelab/statelab/lab/capture"
)

// segment builds one loopback TCP segment from → to carrying payload at
// seq (the stream's first byte is seq 1: the SYN takes 0).
func segment(t *testing.T, from, to netip.AddrPort, seq uint32, syn bool, payload string, at int) *capture.Packet {
	t.Helper()
	eth := &layers.Ethernet{EthernetType: layers.EthernetTypeIPv4, SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6)}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(from.Port()), DstPort: layers.TCPPort(to.Port()), Seq: seq, SYN: syn, ACK: !syn, Window: 512}
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		t.Fatal(err)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return &capture.Packet{Time: time.Unix(1000, int64(at)*int64(time.Millisecond)), Data: buf.Bytes()}
}

// conversation is one client's keep-alive connection to a server: the two
// SYNs, then each request and its response as one segment each, at
// increasing times.
func conversation(t *testing.T, client, server netip.AddrPort, t0 int, reqs, resps []string) []*capture.Packet {
	pkts := []*capture.Packet{segment(t, client, server, 0, true, "", t0), segment(t, server, client, 0, true, "", t0+1)}
	cseq, sseq := uint32(1), uint32(1)
	for i := range reqs {
		pkts = append(pkts, segment(t, client, server, cseq, false, reqs[i], t0+2+2*i))
		cseq += uint32(len(reqs[i]))
		if i < len(resps) {
			pkts = append(pkts, segment(t, server, client, sseq, false, resps[i], t0+3+2*i))
			sseq += uint32(len(resps[i]))
		}
	}
	return pkts
}

const (
	req1  = "POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
	resp1 = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"result\":15}\n"
	// resp1 with its body cut short: the capture lost its last segment.
	respCut = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"res"
)

// A response whose body the capture does not hold to its end is not a
// response: counting it would call a short capture complete.
func TestExchangesCountOnlyWholeResponses(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cl := netip.MustParseAddrPort("127.0.0.1:40000")
	tests := []struct {
		name      string
		resps     []string
		wantResps int
	}{
		{"both responses whole", []string{resp1, resp1}, 2},
		{"second response cut short", []string{resp1, respCut}, 1},
		{"second response missing", []string{resp1}, 1},
		{"first response cut short hides the second", []string{respCut}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exs, err := Exchanges(conversation(t, cl, srv, 0, []string{req1, req1}, tt.resps), srv)
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, ex := range exs {
				if ex.Response != nil {
					got++
				}
			}
			if len(exs) != 2 || got != tt.wantResps {
				t.Fatalf("%d exchanges, %d with a response; want 2 and %d", len(exs), got, tt.wantResps)
			}
		})
	}
}

// The capture's count is per server, capped at what each server counted:
// an extra exchange at one server cannot hide one missing at another, and
// a stream that no longer parses still counts what came before the fault.
func TestCapturedExchangesCountedPerServer(t *testing.T) {
	a := netip.MustParseAddrPort("127.0.0.1:8080")
	b := netip.MustParseAddrPort("127.0.0.1:8081")
	ca := netip.MustParseAddrPort("127.0.0.1:40000")
	cb := netip.MustParseAddrPort("127.0.0.1:40001")
	tests := []struct {
		name      string
		pkts      []*capture.Packet
		wantA     int
		wantB     int
		got       int
		shortages int
	}{
		{"every exchange captured",
			append(conversation(t, ca, a, 0, []string{req1}, []string{resp1}), conversation(t, cb, b, 10, []string{req1}, []string{resp1})...),
			1, 1, 2, 0},
		{"an extra at a does not hide one missing at b",
			append(conversation(t, ca, a, 0, []string{req1, req1}, []string{resp1, resp1}), conversation(t, cb, b, 10, []string{req1}, nil)...),
			1, 1, 1, 1},
		{"a request cut short: what parsed before it counts",
			conversation(t, ca, a, 0, []string{req1, "POST /x HTTP/1.1\r\nContent-Le"}, []string{resp1}),
			2, 0, 1, 1},
		{"nothing captured", nil, 3, 2, 0, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWanted("test")
			w.add("a", a, tt.wantA)
			w.add("b", b, tt.wantB)
			got, short := w.captured(tt.pkts)
			if got != tt.got || len(short) != tt.shortages {
				t.Fatalf("captured %d (short at %v); want %d with %d short", got, short, tt.got, tt.shortages)
			}
		})
	}
}

// Each exchange points at the packets that carried its own request and
// response, and counts its own bytes, however long the connection: past
// the parser's 4 KiB buffer too (the features capture once commented each
// reply on the next reply's packet).
func TestExchangesPointAtTheirOwnPackets(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:8080")
	cl := netip.MustParseAddrPort("127.0.0.1:40000")
	reply := func(i, size int) string {
		body := fmt.Sprintf("{\"result\":%d,\"pad\":%q}\n", i, strings.Repeat("x", size))
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	request := func(i, size int) string {
		body := fmt.Sprintf("{\"n\":%d,\"pad\":%q}", i, strings.Repeat("y", size))
		return fmt.Sprintf("POST /calculate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	tests := []struct {
		name    string
		n       int
		reqPad  int
		respPad int
	}{
		{"short connection", 3, 10, 10},
		{"replies past 4 KiB", 8, 10, 1000},
		{"requests past 4 KiB", 8, 1000, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var reqs, resps []string
			for i := range tt.n {
				reqs, resps = append(reqs, request(i, tt.reqPad)), append(resps, reply(i, tt.respPad))
			}
			pkts := conversation(t, cl, srv, 0, reqs, resps)
			exs, err := Exchanges(pkts, srv)
			if err != nil || len(exs) != tt.n {
				t.Fatalf("%d exchanges, %v", len(exs), err)
			}
			for i, ex := range exs {
				// conversation: 2 SYNs, then request i at 2+2i, its reply at 3+2i.
				if ex.ReqPacket != pkts[2+2*i] || ex.RespPacket != pkts[3+2*i] {
					t.Errorf("exchange %d: request in packet %d, reply in packet %d; want %d and %d",
						i, index(pkts, ex.ReqPacket), index(pkts, ex.RespPacket), 2+2*i, 3+2*i)
				}
				if ex.ReqBytes != len(reqs[i]) || ex.RespBytes != len(resps[i]) {
					t.Errorf("exchange %d: %d and %d bytes; want %d and %d", i, ex.ReqBytes, ex.RespBytes, len(reqs[i]), len(resps[i]))
				}
			}
		})
	}
}

func index(pkts []*capture.Packet, p *capture.Packet) int {
	for i, q := range pkts {
		if q == p {
			return i
		}
	}
	return -1
}
