package quicexp

import (
	"net/netip"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/quicconn/nat"
)

// QUIC's stall is the longest gap between the STREAM data the server
// received; what it sent, and packets without data, do not count.
func TestQuicStall(t *testing.T) {
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	data := func(ms int) PacketEvent { return PacketEvent{Time: at(ms), Stream: 1000} }
	for _, tc := range []struct {
		name string
		ev   []PacketEvent
		want time.Duration
	}{
		{"steady", []PacketEvent{data(0), data(1), data(2)}, time.Millisecond},
		{"a gap at the rebinding", []PacketEvent{data(0), data(1), {Time: at(20)}, data(31), data(32)}, 30 * time.Millisecond},
		{"sent data does not count", []PacketEvent{data(0), {Sent: true, Time: at(5), Stream: 10}, data(2)}, 2 * time.Millisecond},
		{"nothing", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := quicStall(tc.ev); got != tc.want {
				t.Errorf("stall %v, want %v", got, tc.want)
			}
		})
	}
}

// The TCP rebinding as captured: the crafted segment from the new port,
// the server's RST back to it, and the client's ECONNRESET.
func TestReadTCPReset(t *testing.T) {
	outside, sink, newPort := netip.MustParseAddrPort("127.0.0.1:50010"), netip.MustParseAddrPort("127.0.0.1:5001"), netip.MustParseAddrPort("127.0.0.1:50020")
	rebound := t0.Add(time.Second)
	rb := nat.TCPRebinding{Old: outside, New: newPort, At: rebound}
	seg := func(src, dst netip.AddrPort, flags uint8, ms int) *capture.Packet {
		p := tcpPacket(src, dst, 1, 1, flags, nil)
		p.Time = rebound.Add(time.Duration(ms) * time.Millisecond)
		return p
	}
	for _, tc := range []struct {
		name     string
		pkts     []*capture.Packet
		err      error
		found    bool
		rstAfter time.Duration
		reset    bool
	}{
		{"crafted segment, RST, ECONNRESET", []*capture.Packet{
			seg(outside, sink, capture.FlagACK, 0),
			seg(newPort, sink, capture.FlagACK|capture.FlagPSH, 1),
			seg(sink, newPort, capture.FlagRST, 3),
		}, syscall.ECONNRESET, true, 2 * time.Millisecond, true},
		{"an RST before the crafted segment is not its answer", []*capture.Packet{
			seg(sink, newPort, capture.FlagRST, 0),
			seg(newPort, sink, capture.FlagACK|capture.FlagPSH, 1),
		}, syscall.EPIPE, false, 0, false},
		{"the server ACKs instead", []*capture.Packet{
			seg(newPort, sink, capture.FlagACK|capture.FlagPSH, 1),
			seg(sink, newPort, capture.FlagACK, 2),
		}, nil, false, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			segs := commentTCP(tc.pkts, outside, sink, rb)
			r := tcpRun{tcpResult: tcpResult{err: tc.err, at: rebound.Add(5 * time.Millisecond)}, rb: rb}
			o := readTCPReset(segs, r, sink)
			if (o.seg != nil && o.rst != nil) != tc.found || o.rstAfter != tc.rstAfter || o.reset != tc.reset {
				t.Errorf("segment and RST found %t, RST after %v, reset %t; want %t, %v, %t", o.seg != nil && o.rst != nil, o.rstAfter, o.reset, tc.found, tc.rstAfter, tc.reset)
			}
			if o.reset && o.resetAfter != 5*time.Millisecond {
				t.Errorf("client reset %v after the rebinding, want 5ms", o.resetAfter)
			}
		})
	}
}

// The TCP counts the contrast's capture is checked against are final:
// read once the server has every byte the NAT relayed and the last ACK
// is out, so the capture holds exactly what they say, not more (a count
// read while the NAT's socket still had bytes queued would be met by a
// capture missing the rest).
func TestTCPContrastCountsAreFinal(t *testing.T) {
	count := regexp.MustCompile(`(\d+) of (\d+) (TCP [^,(]+)`)
	for i := range 3 {
		r := labtest.RunExperiment(t, experiment("quic/tcp-contrast"), uint64(i+1))
		var detail string
		for _, c := range r.Checks {
			if c.Name == "capture complete" {
				detail = c.Detail
			}
		}
		ms := count.FindAllStringSubmatch(detail, -1)
		if len(ms) != 5 {
			t.Fatalf("run %d: %d TCP counts in %q, want 5", i+1, len(ms), detail)
		}
		for _, m := range ms {
			if m[1] != m[2] {
				t.Errorf("run %d: captured %s of %s %s: the count was read before the socket was done", i+1, m[1], m[2], strings.TrimSpace(m[3]))
			}
		}
	}
}
