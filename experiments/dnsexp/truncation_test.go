package dnsexp

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// tcpPkt is a captured TCP segment at time ms (flags as capture's).
func tcpPkt(src, dst netip.AddrPort, flags uint8, payload []byte, ms int) *capture.Packet {
	h := binary.BigEndian.AppendUint16(nil, src.Port())
	h = binary.BigEndian.AppendUint16(h, dst.Port())
	h = append(h, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0)
	p := frame(ipv4(src.Addr(), dst.Addr(), capture.ProtoTCP, append(h, payload...)))
	p.Time = time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond)
	return p
}

// framed is m packed with TCP's two-byte length.
func framed(t *testing.T, m *dns.Msg) []byte {
	b := pack(t, m)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// dns/truncation's reading: the UDP exchanges measured, TC seen, every
// TCP segment named with the state of each side, the server's hold
// measured from its SYN-ACK to its FIN.
func TestReadTruncation(t *testing.T) {
	tcpCli := netip.MustParseAddrPort("127.0.0.1:41000")
	big := new(dns.Msg)
	big.SetQuestion(udpdns.BigName, dns.TypeTXT)
	big.SetEdns0(1232, false)
	whole := udpdns.BuiltinZone().Answer(big)
	cut := whole.Copy()
	cut.Truncate(1232)
	const S, SA, A, F, FA, PA = capture.FlagSYN, capture.FlagSYN | capture.FlagACK, capture.FlagACK, capture.FlagFIN | capture.FlagACK, capture.FlagFIN | capture.FlagACK, capture.FlagPSH | capture.FlagACK
	full := []*capture.Packet{
		udpPkt(cliAP, srvAP, pack(t, big)), udpPkt(srvAP, cliAP, pack(t, cut)),
		tcpPkt(tcpCli, srvAP, S, nil, 1), tcpPkt(srvAP, tcpCli, SA, nil, 2), tcpPkt(tcpCli, srvAP, A, nil, 3),
		tcpPkt(tcpCli, srvAP, PA, framed(t, big), 4), tcpPkt(srvAP, tcpCli, A, nil, 5), tcpPkt(srvAP, tcpCli, PA, framed(t, whole), 6),
		tcpPkt(tcpCli, srvAP, A, nil, 7), tcpPkt(tcpCli, srvAP, F, nil, 8), tcpPkt(srvAP, tcpCli, FA, nil, 9), tcpPkt(tcpCli, srvAP, A, nil, 10),
	}
	tests := []struct {
		name     string
		pkts     []*capture.Packet
		complete bool
		records  int
		held     time.Duration
		trips    int
		comment  string
	}{
		{"the whole fallback", full, true, udpdns.BigTXTRecords, 7 * time.Millisecond, 3, "the client's last ACK: the server's end is CLOSED"},
		{"no server FIN captured", full[:10], false, udpdns.BigTXTRecords, 0, 3, "FIN from the client"},
		{"UDP only", full[:2], false, 0, 0, 1, "answer over UDP with TC set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range tt.pkts {
				p.Comments = nil
			}
			w := readTruncation(tt.pkts, srvAP, 1232)
			_, trips := w.roundTrips()
			if w.complete() != tt.complete || w.tcpRecords != tt.records || w.serverHeld != tt.held || trips != tt.trips || !w.bigTC {
				t.Errorf("complete %v, %d records over TCP, held %v, %d round trips, TC %v; want %v, %d, %v, %d, true",
					w.complete(), w.tcpRecords, w.serverHeld, trips, w.bigTC, tt.complete, tt.records, tt.held, tt.trips)
			}
			if w.bigUDP.packets != 2 || w.tcp.packets != len(tt.pkts)-2 {
				t.Errorf("%d UDP and %d TCP packets measured", w.bigUDP.packets, w.tcp.packets)
			}
			allCommented(t, tt.pkts)
			if c := comments(tt.pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
}
