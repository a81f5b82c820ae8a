package httpexp

import (
	"fmt"
	"net/netip"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// commentSegments gives every packet the experiment's analysis left
// without a comment (handshakes, bare ACKs, FINs, the segments after the
// first of a long message) one that says what it is: which connection to
// which server, which way, and what the segment does. names maps the
// servers' addresses to the names the report uses.
func commentSegments(pkts []*capture.Packet, names map[netip.AddrPort]string) {
	conns := map[[2]netip.AddrPort]int{} // client, server → connection number at that server
	perServer := map[netip.AddrPort]int{}
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		client, server, toServer := m.Src, m.Dst, true
		if _, ok := names[server]; !ok {
			client, server, toServer = m.Dst, m.Src, false
		}
		name, ok := names[server]
		if !ok || len(p.Comments) > 0 {
			continue
		}
		key := [2]netip.AddrPort{client, server}
		n, seen := conns[key]
		if !seen {
			perServer[server]++
			n = perServer[server]
			conns[key] = n
		}
		dir := fmt.Sprintf("%s → %s", client, name)
		if !toServer {
			dir = fmt.Sprintf("%s → %s", name, client)
		}
		side := "server"
		if toServer {
			side = "client"
		}
		p.Comment(annotate.Append(fmt.Sprintf("%s, connection %d: %s; %s", dir, n, tcpFlags(m.Flags), segmentRole(m.Flags, len(m.Payload), toServer)),
			annotate.Block{}.Str(annotate.Side, side).Str(annotate.Kind, "segment").Str(annotate.Mode, name).Uint(annotate.Conn, uint64(n))))
	}
}

// segmentRole says what a segment does in its connection.
func segmentRole(flags uint8, n int, toServer bool) string {
	switch {
	case flags&capture.FlagRST != 0:
		return "the connection is reset"
	case flags&capture.FlagSYN != 0 && flags&capture.FlagACK != 0:
		return "the server accepts the connection"
	case flags&capture.FlagSYN != 0:
		return "the client opens a connection"
	case flags&capture.FlagFIN != 0 && toServer:
		return "the client has nothing more to send"
	case flags&capture.FlagFIN != 0:
		return "the server has nothing more to send"
	case n > 0:
		return fmt.Sprintf("%d more bytes of the HTTP message commented on its first segment", n)
	}
	return "acknowledges what it received, no data"
}
