package tcpstate

import "strings"

// DiagramDOT renders the state table as a Graphviz digraph: one node per
// state, one edge per row labelled "cause / action". It is generated from
// the same rows the engine checks its transitions against, so the picture
// cannot drift from the code. (`statelab diagram tcp` prints it.)
func DiagramDOT() string {
	var b strings.Builder
	b.WriteString("digraph tcp {\n")
	b.WriteString("\tlabel=\"TCP connection states (RFC 9293)\";\n")
	b.WriteString("\tnode [shape=box, style=rounded];\n")
	for s := range numStates {
		st := State(s)
		b.WriteString("\t\"" + st.String() + "\"")
		if st == Established {
			b.WriteString(" [style=\"rounded,bold\"]")
		}
		b.WriteString(";\n")
	}
	for _, t := range transitions {
		label := t.Cause.String()
		if t.Action != "" {
			label += " / " + t.Action
		}
		b.WriteString("\t\"" + t.From.String() + "\" -> \"" + t.To.String() + "\" [label=\"" + label + "\"];\n")
	}
	b.WriteString("}\n")
	return b.String()
}
