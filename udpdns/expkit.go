package udpdns

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// labServerAddr is where the experiments' DNS server listens: port 53 of
// the lab's own namespace (root there, so no privilege is needed), so that
// Wireshark dissects the captures as DNS with no "Decode As".
const labServerAddr = "127.0.0.1:53"

// wirePkt is a DNS datagram read back from a capture.
type wirePkt struct {
	p    *capture.Packet
	meta capture.Meta
	head Head
	msg  *dns.Msg // nil when it does not unpack
}

// dnsPackets returns the UDP datagrams of pkts that carry at least a DNS
// header, in capture order.
func dnsPackets(pkts []*capture.Packet) []wirePkt {
	var out []wirePkt
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoUDP || len(m.Payload) < headerLen {
			continue
		}
		h, _ := ParseHead(m.Payload)
		w := wirePkt{p: p, meta: m, head: h}
		msg := new(dns.Msg)
		if msg.Unpack(m.Payload) == nil {
			w.msg = msg
		}
		out = append(out, w)
	}
	return out
}

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

// question renders "id=0x3a2f q1.synth.lab. A".
func (w wirePkt) question() string {
	name := "?"
	if w.head.HasQuestion {
		name = wireName(w.head.QName)
	}
	return fmt.Sprintf("id=%#04x %s %s", w.head.ID, name, dns.TypeToString[w.head.QType])
}

// answer renders the answer section briefly: "A 127.129.2.3" or the rcode.
func (w wirePkt) answer() string {
	if w.msg == nil {
		return "(malformed)"
	}
	var parts []string
	for _, rr := range w.msg.Answer {
		switch v := rr.(type) {
		case *dns.A:
			parts = append(parts, "A "+v.A.String())
		case *dns.AAAA:
			parts = append(parts, "AAAA "+v.AAAA.String())
		default:
			parts = append(parts, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if len(parts) == 0 {
		return dns.RcodeToString[w.msg.Rcode]
	}
	return strings.Join(parts, ", ")
}

// icmpUnreachable decodes an ICMPv4 destination-unreachable message: its
// code and the UDP datagram it quotes (addresses, ports and whatever of the
// payload was quoted).
func icmpUnreachable(p *capture.Packet) (code uint8, src, dst netip.AddrPort, quoted []byte, ok bool) {
	m, ok := p.Decode()
	if !ok || m.Proto != capture.ProtoICMP || len(m.Payload) < 8+20+8 || m.Payload[0] != 3 {
		return 0, src, dst, nil, false
	}
	code = m.Payload[1]
	ip := m.Payload[8:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || len(ip) < ihl+8 || ip[9] != capture.ProtoUDP {
		return 0, src, dst, nil, false
	}
	udp := ip[ihl:]
	src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(udp[0:2]))
	dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(udp[2:4]))
	return code, src, dst, udp[8:], true
}

// percentile of sorted durations in ms.
func percentileMS(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

// answerA returns the first A record of a reply, or the zero Addr.
func answerA(m *dns.Msg) netip.Addr {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A.To4())
			return ip
		}
	}
	return netip.Addr{}
}

// kernelICMPSent reads how many ICMP messages the kernel of the lab's
// namespace has sent (Icmp OutMsgs in /proc/net/snmp): the source count
// for the ICMP errors a capture should hold.
func kernelICMPSent() (uint64, error) {
	f, err := os.Open("/proc/net/snmp")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() { // ends: the file is a few lines
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, n := range names {
			if n == "OutMsgs" && i < len(fields) {
				return strconv.ParseUint(fields[i], 10, 64)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no Icmp OutMsgs in /proc/net/snmp")
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

// wireGot is what a capture holds, in wireWant's categories.
type wireGot struct{ queries, replies, icmp int }

func (x *wireWant) add(p *capture.Packet, g *wireGot) {
	m, ok := p.Decode()
	switch {
	case !ok:
	case m.Proto == capture.ProtoICMP:
		g.icmp++
	case m.Proto != capture.ProtoUDP:
	case m.Dst == x.server:
		g.queries++
	case m.Dst == x.client:
		g.replies++
	}
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
			return false
		}
		return g.icmp >= x.icmpSent()
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	icmp := x.icmpSent()
	g = wireGot{}
	for _, p := range pkts {
		x.add(p, &g)
	}
	got := min(g.queries, x.queries) + min(g.replies, x.replies) + min(g.icmp, icmp)
	env.CaptureComplete(c, got, x.queries+x.replies+icmp, "packets",
		fmt.Sprintf("the client (%d queries sent), %s, the kernel (%d ICMP messages sent, /proc/net/snmp); captured %d + %d + %d",
			x.queries, x.repliesBy, icmp, g.queries, g.replies, g.icmp))
	return pkts, nil
}

// verdicts records what the client made of each datagram it read, per ID
// and QNAME in the order it read them, so that the capture's comments say
// what the client did with each reply (matched, late, duplicate,
// rejected), not what the lab guesses.
type verdicts struct {
	mu sync.Mutex
	m  map[string][]Event
}

func verdictKey(id uint16, name string) string {
	return fmt.Sprintf("%04x %s", id, strings.ToLower(name))
}

// trace is for Config.Trace.
func (v *verdicts) trace(e Event) {
	switch e.Kind {
	case EventMatched, EventLate, EventDuplicate, EventRejected:
	default:
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string][]Event{}
	}
	k := verdictKey(e.ID, e.Name)
	v.m[k] = append(v.m[k], e)
}

// next returns the client's verdict on the next datagram it read with w's
// ID and QNAME; false when the client read none (it had closed).
func (v *verdicts) next(w wirePkt) (Event, bool) {
	return v.nextWhere(w, func(Event) bool { return true })
}

// nextWhere is next for the first such verdict that fits: where datagrams
// of one ID and QNAME differ in kind (a forgery and the genuine answer), a
// datagram the kernel delivered out of capture order still gets its own.
func (v *verdicts) nextWhere(w wirePkt, fits func(Event) bool) (Event, bool) {
	name := ""
	if w.head.HasQuestion {
		name = wireName(w.head.QName)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	k := verdictKey(w.head.ID, name)
	q := v.m[k]
	for i, e := range q {
		if fits(e) {
			v.m[k] = append(q[:i:i], q[i+1:]...)
			return e, true
		}
	}
	return Event{}, false
}

// describe says what the client made of a reply, for its comment.
func (e Event) describe() string {
	switch e.Kind {
	case EventMatched:
		return "matched: completes its query"
	case EventLate:
		return "LATE: its attempt had timed out; counted late, completes nothing"
	case EventDuplicate:
		return "DUPLICATE of an answer already matched; counted, completes nothing"
	case EventRejected:
		return "rejected by the client (" + e.Reason.String() + ")"
	}
	return e.Kind.String()
}

// brief is describe in a few words, for a ladder's state column.
func (e Event) brief() string {
	switch e.Kind {
	case EventMatched:
		return "matched"
	case EventLate:
		return "late: completes nothing"
	case EventDuplicate:
		return "duplicate: completes nothing"
	case EventRejected:
		return "rejected: " + e.Reason.String()
	}
	return e.Kind.String()
}

// firstSends lets queries run concurrently while their first attempts go
// out in a fixed order: see inOrder.
type firstSends chan struct{}

func newFirstSends() firstSends { return make(firstSends, 1) }

// trace is for Config.Trace: it notes a first attempt on the wire.
func (f firstSends) trace(e Event) {
	if e.Kind == EventSent && e.Attempt == 0 {
		select {
		case f <- struct{}{}:
		default:
		}
	}
}

// inOrder runs query(i) for i in [0, n), each in a goroutine of its own so
// that they are in flight together, but starts query i+1 only once query
// i's first attempt is on the wire (or query i returned without sending):
// the capture shows the queries in index order, whatever the scheduler
// does. It returns when every query has returned.
func (f firstSends) inOrder(ctx context.Context, n int, query func(i int)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			query(i)
		}()
		select {
		case <-f:
		case <-done: // returned: its first send, if any, was traced before
			select {
			case <-f:
			default:
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// queryRand is the random source of the lab's query called name: the same
// for one seed, whichever other queries run and in what order.
func queryRand(env *lab.Env, name string) io.Reader {
	return env.Bytes("query " + strings.ToLower(name))
}

// commentRest comments every packet that has none yet, so that every
// packet of a DNS capture says what it is.
func commentRest(pkts []*capture.Packet) {
	for _, p := range pkts {
		if len(p.Comments) > 0 {
			continue
		}
		if code, src, dst, quoted, ok := icmpUnreachable(p); ok {
			h, _ := ParseHead(quoted)
			p.Comment(fmt.Sprintf("ICMP destination unreachable (code %d) from the kernel: nothing listens on %v; quotes the datagram %v → %v id=%#04x", code, dst, src, dst, h.ID))
			continue
		}
		m, ok := p.Decode()
		if !ok {
			p.Comment("not decoded")
			continue
		}
		if (m.Proto == capture.ProtoICMP || m.Proto == capture.ProtoICMPv6) && len(m.Payload) > 0 {
			p.Comment(fmt.Sprintf("ICMP type %d from %v to %v", m.Payload[0], m.Src.Addr(), m.Dst.Addr()))
			continue
		}
		ws := dnsPackets([]*capture.Packet{p})
		if len(ws) == 0 {
			p.Comment(fmt.Sprintf("%v → %v: not DNS", m.Src, m.Dst))
			continue
		}
		w := ws[0]
		kind := "query"
		if w.head.Response() {
			kind = "reply"
		}
		p.Comment(fmt.Sprintf("%s %s from %v to %v (not part of the exchange the experiment drew)", kind, w.question(), m.Src, m.Dst))
	}
}
