package lab

import (
	"regexp"
	"sync"
)

// Term is a word a student meets first in a report, and its explanation in
// one line. A text report that uses a term explains it once, at its end.
type Term struct {
	// Term is the word as the explanation names it.
	Term string
	// Match finds the term in a report's text.
	Match *regexp.Regexp
	// Explain is the one-line explanation.
	Explain string
}

var (
	glossaryMu sync.Mutex
	glossary   = []Term{
		{
			Term:    "TCB",
			Match:   regexp.MustCompile(`\bTCBs?\b`),
			Explain: "transmission control block, the record a TCP endpoint keeps for one connection: its state, sequence numbers, windows and timers (RFC 9293 §3.3.1).",
		},
		{
			Term:    "scaled window",
			Match:   regexp.MustCompile(`\bwin=\d|\bwscale\b|\bwindow scale\b|\bscaled window\b`),
			Explain: "win=N is the 16-bit window field as sent; once both SYNs offered window scale (wscale S, RFC 7323 §2), the receiver offers N×2^S bytes.",
		},
		{
			Term:    "MSL",
			Match:   regexp.MustCompile(`\bMSL\b`),
			Explain: "maximum segment lifetime, how long a segment may survive in the network; TIME-WAIT lasts 2×MSL so old duplicates die before the connection's addresses are reused (RFC 9293 §3.4.2).",
		},
		{
			Term:    "RTO",
			Match:   regexp.MustCompile(`\bRTO\b`),
			Explain: "retransmission timeout, how long a sender waits for an ACK before sending again; it doubles after each expiry (RFC 6298).",
		},
	}
)

// AddTerm adds a term to the glossary every text report draws on; a
// package explaining a word of its own reports calls it from init.
func AddTerm(t Term) {
	glossaryMu.Lock()
	defer glossaryMu.Unlock()
	glossary = append(glossary, t)
}

// glossaryFor returns the terms text uses, in the glossary's order.
func glossaryFor(text string) []Term {
	glossaryMu.Lock()
	defer glossaryMu.Unlock()
	var out []Term
	for _, t := range glossary {
		if t.Match.MatchString(text) {
			out = append(out, t)
		}
	}
	return out
}
