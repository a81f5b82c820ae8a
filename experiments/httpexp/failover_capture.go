package httpexp

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// The Redis legs of http/store-failover's capture: every packet to or from
// port 6379 (a server) or 26379 (a Sentinel) is commented with the case,
// both ends by name and the role each had at that packet's moment, and
// what the packet carries (the first RESP message of its payload).

// commentRedis comments every Redis and Sentinel packet not yet
// commented.
func commentRedis(pkts []*capture.Packet, cases []*failoverCase) {
	byNet := map[byte]*failoverCase{}
	for _, c := range cases {
		if c.g != nil {
			byNet[byte(c.g.k)] = c
		}
	}
	for _, p := range pkts {
		if len(p.Comments) > 0 {
			continue
		}
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		if !redisPort(m.Src.Port()) && !redisPort(m.Dst.Port()) {
			continue
		}
		c := byNet[groupOf(m.Src.Addr())]
		if c == nil {
			c = byNet[groupOf(m.Dst.Addr())]
		}
		if c == nil {
			p.Comment(annotate.Append(fmt.Sprintf("%s → %s: %s; no group of this run", m.Src, m.Dst, tcpFlags(m.Flags)),
				annotate.Block{}.Str(annotate.Side, "other").Str(annotate.Kind, "redis")))
			continue
		}
		what := tcpFlags(m.Flags)
		if len(m.Payload) > 0 {
			what = "RESP " + respSummary(m.Payload)
		}
		p.Comment(annotate.Append(fmt.Sprintf("%s: %s → %s: %s; %s", c.name, c.g.endpoint(m.Src, p), c.g.endpoint(m.Dst, p), what, c.g.leg(m.Src, m.Dst)),
			annotate.Block{}.Str(annotate.Side, c.g.sideOf(m.Src, p)).Str(annotate.Kind, "redis").Str(annotate.Mode, c.name)))
	}
}

func redisPort(p uint16) bool { return p == 6379 || p == 26379 }

// groupOf is the K of a group address 127.0.K.x; 0 for others.
func groupOf(a netip.Addr) byte {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	if b[0] != 127 || b[1] != 0 {
		return 0
	}
	return b[2]
}

// endpoint names one end of a packet with its role at the packet's time.
func (g *redisGroup) endpoint(a netip.AddrPort, p *capture.Packet) string {
	if groupOf(a.Addr()) == byte(g.k) {
		return fmt.Sprintf("%s %s (%s)", g.name(a.Addr()), a, g.roleAt(a.Addr(), p.Time))
	}
	if g.isObserver(a.Port()) {
		return fmt.Sprintf("the lab's observer %s", a)
	}
	return fmt.Sprintf("a backend %s", a)
}

// sideOf is who sent a packet from a, for its [statelab …] block: a
// server by its role at that moment (primary, replica, …), a Sentinel,
// the lab's observer, or a backend.
func (g *redisGroup) sideOf(a netip.AddrPort, p *capture.Packet) string {
	switch {
	case g.node(a.Addr()) != nil:
		return g.roleAt(a.Addr(), p.Time)
	case slices.Contains(g.sentHosts, a.Addr()):
		return "sentinel"
	case g.isObserver(a.Port()):
		return "observer"
	}
	return "backend"
}

// leg says what kind of connection a packet is on, by what its two ends
// are: servers (127.0.K.2-4), Sentinels (127.0.K.5-7; every node's own
// connections leave from its address), or the backends and the lab's
// observer on 127.0.0.1.
func (g *redisGroup) leg(src, dst netip.AddrPort) string {
	kind := func(a netip.AddrPort) string {
		switch {
		case g.node(a.Addr()) != nil:
			return "server"
		case slices.Contains(g.sentHosts, a.Addr()):
			return "sentinel"
		case g.isObserver(a.Port()):
			return "observer"
		}
		return "backend"
	}
	a, b := kind(src), kind(dst)
	if a > b {
		a, b = b, a
	}
	switch a + "/" + b {
	case "sentinel/server":
		return "a Sentinel watching a server (PING, INFO, hello messages, failover commands)"
	case "sentinel/sentinel":
		return "Sentinel ↔ Sentinel (PING, votes for a leader)"
	case "server/server":
		return "a replication link (the replica's connection to its primary)"
	case "backend/sentinel":
		return "a backend's failover client asking the Sentinel for the primary, or hearing +switch-master"
	case "observer/sentinel":
		return "the lab's observer: Sentinel events, SENTINEL queries"
	case "observer/server":
		return "the lab's observer reading a server (INFO, GET, CONFIG SET)"
	}
	return "a backend's session read or write (compare-and-set)"
}

// respSummary words the first RESP message of a payload: a command or
// array as its first words, a status, an error, an integer, a bulk
// string's length; "+N more" when more messages follow in the payload;
// a payload that does not start a RESP message is a continuation.
func respSummary(b []byte) string {
	s, n := respOne(b, 0)
	if n <= 0 {
		return fmt.Sprintf("continuation (%d bytes)", len(b))
	}
	more := 0
	for off := n; off < len(b) && more < 1000; more++ {
		_, k := respOne(b[off:], 0)
		if k <= 0 {
			more++ // a partial message at the end
			break
		}
		off += k
	}
	if more > 0 {
		s += fmt.Sprintf(" (+%d more)", more)
	}
	return s
}

// respOne parses one RESP value at the start of b and returns its
// summary and length; n ≤ 0 when b does not hold one whole.
func respOne(b []byte, depth int) (string, int) {
	if len(b) < 3 || depth > 2 {
		return "", 0
	}
	end := bytes.Index(b, []byte("\r\n"))
	if end < 1 {
		return "", 0
	}
	line := string(b[1:end])
	switch b[0] {
	case '+':
		return "+" + trimString(line, 40), end + 2
	case '-':
		return "error " + trimString(line, 60), end + 2
	case ':':
		if _, err := strconv.ParseInt(line, 10, 64); err != nil {
			return "", 0
		}
		return "integer " + line, end + 2
	case '$':
		k, err := strconv.Atoi(line)
		if err != nil || k < -1 {
			return "", 0
		}
		if k == -1 {
			return "nil", end + 2
		}
		if len(b)-end-2 < k+2 {
			// A bulk string longer than the segment: an RDB snapshot, or
			// a value cut by segmentation.
			return fmt.Sprintf("bulk string of %d bytes (continues in later segments)", k), len(b)
		}
		return bulkWord(b[end+2 : end+2+k]), end + 2 + k + 2
	case '*':
		k, err := strconv.Atoi(line)
		if err != nil || k < -1 || k > 1<<20 {
			return "", 0
		}
		if k <= 0 {
			return "empty array", end + 2
		}
		off := end + 2
		var words []string
		for i := range k {
			w, n := respOne(b[off:], depth+1)
			if n <= 0 {
				if i == 0 {
					return "", 0
				}
				return "[" + strings.Join(words, " ") + " …] (continues)", len(b)
			}
			if i < 4 {
				words = append(words, w)
			}
			off += n
		}
		if k > 4 {
			words = append(words, fmt.Sprintf("… %d elements", k))
		}
		return "[" + strings.Join(words, " ") + "]", off
	}
	return "", 0
}

// bulkWord shows a bulk string: text as it is (shortened), anything else
// by its length.
func bulkWord(v []byte) string {
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("(%d bytes)", len(v))
		}
	}
	return trimString(string(v), 28)
}
