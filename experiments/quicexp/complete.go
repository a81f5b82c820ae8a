package quicexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn/nat"
)

// What a capture must hold, counted at the source: the experiment stops
// its capture once it holds that, and says whether it does in the check
// "capture complete".

// expect is one kind of packet a capture must hold: want of them, counted
// at the source, and a tally of the captured ones.
type expect struct {
	what   string // "QUIC datagrams", "TCP segments"
	want   int
	source string                 // who counted want
	units  func(capture.Meta) int // how many of want a captured packet is
}

// completeness tallies captured packets against expectations, packet by
// packet as they arrive (a StopWhen test: called with a growing slice,
// never concurrently).
type completeness struct {
	exp  []expect
	got  []int
	seen int
}

func newCompleteness(exp ...expect) *completeness {
	return &completeness{exp: exp, got: make([]int, len(exp))}
}

// add tallies the packets not seen yet and reports whether every
// expectation is met.
func (c *completeness) add(pkts []*capture.Packet) bool {
	for _, p := range pkts[min(c.seen, len(pkts)):] {
		m, ok := p.Decode()
		if !ok {
			continue
		}
		for i, e := range c.exp {
			c.got[i] += e.units(m)
		}
	}
	c.seen = max(c.seen, len(pkts))
	return c.complete()
}

func (c *completeness) complete() bool {
	for i, e := range c.exp {
		if c.got[i] < e.want {
			return false
		}
	}
	return true
}

// totals are what CaptureComplete is told. With one kind: the packets
// of that kind captured and wanted. With several (which may be counted
// in different units, packets or bytes): how many of the counts the
// capture meets, each spelled out in the unit, so that an extra packet of
// one kind never hides a missing one of another.
func (c *completeness) totals() (got, want int, unit, source string) {
	var units, sources []string
	for i, e := range c.exp {
		if c.got[i] >= e.want {
			got++
		}
		units = append(units, fmt.Sprintf("%d of %d %s", c.got[i], e.want, e.what))
		if e.source != "" {
			sources = append(sources, e.source)
		}
	}
	if len(c.exp) == 1 {
		return min(c.got[0], c.exp[0].want), c.exp[0].want, c.exp[0].what, strings.Join(sources, "; ")
	}
	return got, len(c.exp), "counts met: " + strings.Join(units, ", "), strings.Join(sources, "; ")
}

// udpTo counts one unit per UDP datagram to or from port.
func udpTo(port uint16) func(capture.Meta) int {
	return func(m capture.Meta) int {
		if m.Proto == capture.ProtoUDP && m.Involves(port) && len(m.Payload) > 0 {
			return 1
		}
		return 0
	}
}

// DatagramsSent counts the datagrams an endpoint's qlog says it sent:
// one per packet_sent, except that the packets quic-go coalesced into one
// datagram (consecutive events carrying the same datagram checksum) count
// once.
func DatagramsSent(events []PacketEvent) int {
	n := 0
	var last uint32
	for _, e := range events {
		if !e.Sent {
			continue
		}
		if e.Checksum == 0 || e.Checksum != last {
			n++
		}
		last = e.Checksum
	}
	return n
}

// tcpExpect is what the contrast's capture must hold of TCP, direction by
// direction, as the sockets counted it (tcp_info): the NAT's outside
// socket's segments without data and payload bytes, the same for the
// server's socket (whose SYN,ACK comes from its listening socket, which
// keeps no count, so it is added), and on the NAT's new 4-tuple the
// segment the NAT crafted and the RST its raw socket saw come back.
func tcpExpect(outside, server netip.AddrPort, out, srv nat.TCPCount, rb nat.TCPRebinding) []expect {
	crafted, rst := 0, 0
	if rb.Err == nil && rb.New.IsValid() {
		crafted = 1
	}
	if !rb.RSTAt.IsZero() {
		rst = 1
	}
	dir := func(src, dst netip.AddrPort, f func(capture.Meta) int) func(capture.Meta) int {
		return func(m capture.Meta) int {
			if m.Proto != capture.ProtoTCP || m.Src != src || m.Dst != dst {
				return 0
			}
			return f(m)
		}
	}
	control := func(m capture.Meta) int {
		if len(m.Payload) == 0 {
			return 1
		}
		return 0
	}
	payload := func(m capture.Meta) int { return len(m.Payload) }
	newTuple := func(m capture.Meta) int {
		if m.Proto == capture.ProtoTCP && m.Involves(server.Port()) && (m.Src == rb.New || m.Dst == rb.New) {
			return 1
		}
		return 0
	}
	return []expect{
		{what: "TCP segments without data NAT → server", want: int(out.Control), units: dir(outside, server, control),
			source: fmt.Sprintf("tcp_info of the NAT's outside socket: %d segments without data, %d payload bytes", out.Control, out.Bytes)},
		{what: "TCP payload bytes NAT → server", want: int(out.Bytes), units: dir(outside, server, payload)},
		{what: "TCP segments without data server → NAT", want: int(srv.Control) + 1, units: dir(server, outside, control),
			source: fmt.Sprintf("of the server's socket: %d without data (+1 SYN,ACK from its listener), %d payload bytes", srv.Control, srv.Bytes)},
		{what: "TCP payload bytes server → NAT", want: int(srv.Bytes), units: dir(server, outside, payload)},
		{what: "TCP segments on the new 4-tuple", want: crafted + rst, units: newTuple,
			source: fmt.Sprintf("the NAT: %d crafted, %d RST seen", crafted, rst)},
	}
}

// stopComplete stops c once it holds what the sources in exp counted,
// reads the ring to its end, and records the check "capture complete". It
// returns the packets and whether the capture holds them all.
func stopComplete(env *lab.Env, c *capture.Capture, exp ...expect) ([]*capture.Packet, bool, error) {
	comp := newCompleteness(exp...)
	pkts, err := c.StopWhen(comp.add)
	if err != nil {
		return nil, false, fmt.Errorf("capture: %w", err)
	}
	comp.add(pkts)
	got, want, unit, source := comp.totals()
	return pkts, env.CaptureComplete(c, got, want, unit, source), nil
}
