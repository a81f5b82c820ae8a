package dnsexp

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// keepPorts keeps UDP datagrams to or from any of ports, and every ICMP
// message (the lab's namespace has no other traffic).
func keepPorts(ports ...uint16) func(*capture.Packet) bool {
	return func(p *capture.Packet) bool {
		m, ok := p.Decode()
		if !ok {
			return false
		}
		if m.Proto == capture.ProtoICMP || m.Proto == capture.ProtoICMPv6 {
			return true
		}
		for _, port := range ports {
			if m.Involves(port) {
				return true
			}
		}
		return false
	}
}

// kernelICMPSent reads how many ICMP messages the kernel of the lab's
// namespace has sent (Icmp OutMsgs in /proc/net/snmp): the source count
// for the ICMP errors a capture should hold.
func kernelICMPSent() (uint64, error) { return kernelSNMP("Icmp:", "OutMsgs") }

// kernelTCPSent reads how many TCP segments the kernel of the lab's
// namespace has sent (Tcp OutSegs): both ends of a loopback connection
// are this kernel's, so it counts every segment a capture should hold.
func kernelTCPSent() (uint64, error) { return kernelSNMP("Tcp:", "OutSegs") }

// kernelSNMP reads one counter of /proc/net/snmp.
func kernelSNMP(section, field string) (uint64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() { // ends: the file is a few lines
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != section {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == field && i < len(fields) {
				return strconv.ParseUint(fields[i], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s %s in /proc/net/snmp", section, field)
}

// wireWant is what a DNS capture must hold, counted at the sources (never
// from the capture): datagrams to the server, datagrams to the client, and
// the ICMP messages the kernel sent.
type wireWant struct {
	server, client netip.AddrPort
	// queries: datagrams to the server, as the client counted its queries
	// sent (Stats.Sent − SendFailed).
	queries int
	// replies: datagrams to the client socket, as repliesBy counted them
	// (the server's datagrams written, the forger's).
	replies   int
	repliesBy string
	// icmpBase is the kernel's ICMP count before the experiment's traffic;
	// icmpAtLeast the ICMP messages the experiment's design implies (one
	// per datagram to a port nobody listens on), only to know how long to
	// wait: the count checked is the kernel's.
	icmpBase    uint64
	icmpAtLeast int
	// repliesFromServer counts every UDP datagram from the server as a
	// reply, whoever it goes to (probes from other sockets too).
	repliesFromServer bool
	// tcp: the capture must also hold every TCP segment the kernel sent
	// since tcpBase (Tcp OutSegs).
	tcp     bool
	tcpBase uint64
}

// startWant records the kernel's ICMP count before the traffic.
func startWant() (wireWant, error) {
	n, err := kernelICMPSent()
	if err != nil {
		return wireWant{}, fmt.Errorf("reading the kernel's ICMP count: %w", err)
	}
	return wireWant{icmpBase: n}, nil
}

// icmpSent is how many ICMP messages the kernel sent since startWant.
func (x *wireWant) icmpSent() int {
	n, err := kernelICMPSent()
	if err != nil || n < x.icmpBase {
		return 0
	}
	return int(n - x.icmpBase)
}

// tcpSent is how many TCP segments the kernel sent since tcpBase (0
// unless tcp).
func (x *wireWant) tcpSent() int {
	if !x.tcp {
		return 0
	}
	n, err := kernelTCPSent()
	if err != nil || n < x.tcpBase {
		return 0
	}
	return int(n - x.tcpBase)
}

// wireGot is what a capture holds, in wireWant's categories.
type wireGot struct{ queries, replies, icmp, tcp int }

// add counts one captured packet in its category.
func (x *wireWant) add(p *capture.Packet, g *wireGot) {
	m, ok := p.Decode()
	switch {
	case !ok:
	case m.Proto == capture.ProtoICMP:
		g.icmp++
	case m.Proto == capture.ProtoTCP:
		g.tcp++
	case m.Proto != capture.ProtoUDP:
	case m.Dst == x.server:
		g.queries++
	case m.Dst == x.client, x.repliesFromServer && m.Src == x.server:
		g.replies++
	}
}

// count counts a whole capture.
func (x *wireWant) count(pkts []*capture.Packet) wireGot {
	var g wireGot
	for _, p := range pkts {
		x.add(p, &g)
	}
	return g
}

// holds reports whether a capture holding g has everything counted, icmp
// being the kernel's ICMP count.
func (x *wireWant) holds(g wireGot, icmp int) bool {
	return g.queries >= x.queries && g.replies >= x.replies && g.icmp >= max(x.icmpAtLeast, icmp)
}

// stopComplete stops the capture once it holds everything the sources
// counted (or Options.MaxDrain passes), then records the check "capture
// complete" before anything is judged from the packets. Call it after the
// client and server are done, so their counters are final.
func stopComplete(env *lab.Env, c *capture.Capture, x wireWant) ([]*capture.Packet, error) {
	var g wireGot
	seen := 0
	pkts, err := c.StopWhen(func(ps []*capture.Packet) bool {
		for _, p := range ps[seen:] {
			x.add(p, &g)
		}
		seen = len(ps)
		if g.queries < x.queries || g.replies < x.replies || g.icmp < x.icmpAtLeast {
			return false // not yet: spare the kernel's count a read
		}
		return x.holds(g, x.icmpSent()) && g.tcp >= x.tcpSent()
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	icmp, tcp := x.icmpSent(), x.tcpSent()
	g = x.count(pkts)
	got := min(g.queries, x.queries) + min(g.replies, x.replies) + min(g.icmp, icmp) + min(g.tcp, tcp)
	source := fmt.Sprintf("the client (%d queries sent), %s, the kernel (%d ICMP messages sent, /proc/net/snmp); captured %d + %d + %d",
		x.queries, x.repliesBy, icmp, g.queries, g.replies, g.icmp)
	if x.tcp {
		source = fmt.Sprintf("the client (%d queries sent), %s, the kernel (%d ICMP messages, %d TCP segments sent, /proc/net/snmp); captured %d + %d + %d + %d",
			x.queries, x.repliesBy, icmp, tcp, g.queries, g.replies, g.icmp, g.tcp)
	}
	if !env.CaptureComplete(c, got, x.queries+x.replies+icmp+tcp, "packets", source) {
		env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\"), and a ladder presented as the exchange holds only captured packets.")
	}
	return pkts, nil
}

// capturedLadder is env.Ladder for a ladder "as captured": once the
// capture was found short, the ladder returned (which the caller fills
// all the same) is in no report.
func capturedLadder(env *lab.Env, title, left, right string) *lab.Ladder {
	if env.CaptureShort() {
		return &lab.Ladder{Title: title, Left: left, Right: right}
	}
	return env.Ladder(title, left, right)
}
