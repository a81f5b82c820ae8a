package dnsexp

import (
	"strings"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// The machine-readable part of the DNS comments (lab/annotate): who sent
// a datagram, what it is, its ID, the query and attempt it is, and what
// the client made of it.

// dnsBlock starts a datagram's block: its sender (client, server, forger,
// prober or kernel), what it is and its DNS ID.
func dnsBlock(side, kind string, id uint16) annotate.Block {
	return annotate.Block{}.Str(annotate.Side, side).Str(annotate.Kind, kind).Uint(annotate.QueryID, uint64(id))
}

// queryBlock is the block of the client's query n (from 0), attempt a
// (from 1).
func queryBlock(d wirePkt, n, a int) annotate.Block {
	return dnsBlock("client", "query", d.head.ID).Uint(annotate.Query, uint64(n)).Uint(annotate.Attempt, uint64(a))
}

// judged adds the client's verdict on a reply, told in describe's words
// (or said's "not read by the client"), as verdict and reason.
func judged(b annotate.Block, verdict string) annotate.Block {
	const rejected = "rejected by the client ("
	switch {
	case strings.HasPrefix(verdict, "matched"):
		return b.Str(annotate.Verdict, "matched")
	case strings.HasPrefix(verdict, "LATE"):
		return b.Str(annotate.Verdict, "late")
	case strings.HasPrefix(verdict, "DUPLICATE"):
		return b.Str(annotate.Verdict, "duplicate")
	case strings.HasPrefix(verdict, "not read"):
		return b.Str(annotate.Verdict, "not read")
	case strings.HasPrefix(verdict, rejected):
		reason, _, _ := strings.Cut(strings.TrimPrefix(verdict, rejected), ")")
		return b.Str(annotate.Verdict, "rejected").Str(annotate.Reason, reason)
	}
	v, _, _ := strings.Cut(verdict, ";")
	return b.Str(annotate.Verdict, v)
}

// restBlock is the block of a packet the experiment did not draw (see
// describePacket): an ICMP error from the kernel, a query from a client,
// a reply from a server, or something else.
func restBlock(p *capture.Packet) annotate.Block {
	if u, ok := icmpUnreachable(p); ok {
		return dnsBlock("kernel", "icmp", u.quoted.ID)
	}
	w, ok := dnsPacket(p)
	switch {
	case !ok:
		return annotate.Block{}.Str(annotate.Side, "other")
	case w.head.Response():
		return dnsBlock("server", "answer", w.head.ID)
	}
	return dnsBlock("client", "query", w.head.ID)
}
