package tcpstate

import (
	"fmt"
	"strings"
)

// DiagramDOT renders the state table as a Graphviz digraph, generated from
// the same rows the engine checks its transitions against, so the picture
// cannot drift from the code. (`statelab diagram tcp` prints it.)
//
// Every row is drawn. Rows between the same two states share one edge with
// one "cause / action" line per row. The rows that tear a connection down
// from anywhere (rcv RST, ABORT, retransmissions exhausted) would cross the
// whole figure back to CLOSED, so they are drawn dashed to a second CLOSED
// node at the bottom, as RFC 9293's figure leaves them out for the same
// reason; the ordinary ways into CLOSED keep the top one.
func DiagramDOT() string {
	var b strings.Builder
	b.WriteString("digraph tcp {\n")
	b.WriteString("\tlabel=\"TCP connection states (RFC 9293), from tcpstate's transition table\";\n")
	b.WriteString("\tlabelloc=t; rankdir=TB; nodesep=0.6; ranksep=0.55;\n")
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n")
	for s := range numStates {
		st := State(s)
		fmt.Fprintf(&b, "\t%q", st.String())
		if st == Established {
			b.WriteString(" [style=\"rounded,bold\"]")
		}
		b.WriteString(";\n")
	}
	fmt.Fprintf(&b, "\t%q [", TornDown)
	b.WriteString("style=\"rounded,dashed\", color=gray40, fontcolor=gray30];\n")
	for _, rank := range [][]State{{Listen, SynSent}, {FinWait1, CloseWait}, {FinWait2, Closing, LastAck}} {
		b.WriteString("\t{rank=same;")
		for _, s := range rank {
			fmt.Fprintf(&b, " %q;", s.String())
		}
		b.WriteString("}\n")
	}

	for _, e := range DiagramEdges() {
		attrs := fmt.Sprintf("label=%q", strings.Join(e.Labels, "\n"))
		if e.Teardown {
			attrs += ", style=dashed, color=gray50, fontcolor=gray35"
		}
		fmt.Fprintf(&b, "\t%q -> %q [%s];\n", e.From, e.To, attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

// TornDown is the diagram's second CLOSED node, where the rows that tear a
// connection down from anywhere end.
const TornDown = "CLOSED (torn down)"

// DiagramEdge is one arrow of the state diagram: every table row from From
// to To, one "cause / action" label each.
type DiagramEdge struct {
	From, To string
	Labels   []string
	Teardown bool // rcv RST, ABORT or a timeout (retransmit, user, keep-alive), to TornDown
}

// DiagramEdges groups the transition table into the diagram's arrows, in
// table order.
func DiagramEdges() []DiagramEdge {
	type key struct{ from, to string }
	var out []DiagramEdge
	index := map[key]int{}
	for _, t := range transitions {
		e := DiagramEdge{From: t.From.String(), To: t.To.String()}
		if t.To == Closed && t.From != Listen && t.Cause.tearsDown() {
			e.To, e.Teardown = TornDown, true
		}
		label := t.Cause.String()
		if t.Action != "" {
			label += " / " + t.Action
		}
		k := key{e.From, e.To}
		i, seen := index[k]
		if !seen {
			i = len(out)
			index[k] = i
			out = append(out, e)
		}
		out[i].Labels = append(out[i].Labels, label)
	}
	return out
}

// tearsDown reports whether a move to CLOSED on this cause is a teardown
// (drawn to TornDown): a RST, ABORT or one of the timeouts.
func (c Cause) tearsDown() bool {
	switch c {
	case CauseRcvRST, CauseAbort, CauseRetransmitTimeout, CauseUserTimeout, CauseKeepAliveTimeout:
		return true
	}
	return false
}
