package dnsexp

import (
	"errors"
	"testing"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/udpdns"
)

func TestJudgedReadsEveryVerdictTheCommentsTell(t *testing.T) {
	tests := []struct {
		name            string
		said            string
		verdict, reason string
	}{
		{"matched", describe(udpdns.Event{Kind: udpdns.EventMatched}), "matched", ""},
		{"late", describe(udpdns.Event{Kind: udpdns.EventLate}), "late", ""},
		{"duplicate", describe(udpdns.Event{Kind: udpdns.EventDuplicate}), "duplicate", ""},
		{"rejected with its reason", describe(udpdns.Event{Kind: udpdns.EventRejected, Reason: udpdns.WrongID}), "rejected", udpdns.WrongID.String()},
		{"rejected, with more said after", describe(udpdns.Event{Kind: udpdns.EventRejected, Reason: udpdns.WrongQuestion}) + "; an ID-only matcher would accept it", "rejected", udpdns.WrongQuestion.String()},
		{"not read", "not read by the client", "not read", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := judged(annotate.Block{}, tt.said)
			v, _ := b.Get(annotate.Verdict)
			r, _ := b.Get(annotate.Reason)
			if v != tt.verdict || r != tt.reason {
				t.Errorf("judged(%q) = verdict %q reason %q, want %q %q", tt.said, v, r, tt.verdict, tt.reason)
			}
			if _, _, err := annotate.Parse(annotate.Append("x", b)); err != nil {
				t.Errorf("the block does not parse: %v", err)
			}
		})
	}
}

// checkFields reads a dns/ capture's blocks: every packet's comments end
// in one block with a side, and with tshark and the plugin each
// experiment's verdicts and reasons filter as fields.
func checkFields(t *testing.T, name, path string, f capture.File) {
	t.Helper()
	for i, p := range f.Packets {
		sides := 0
		for _, c := range p.Comments {
			_, b, err := annotate.Parse(c)
			if err != nil && !errors.Is(err, annotate.ErrNoBlock) {
				t.Errorf("%s frame %d: %v", name, i+1, err)
			}
			if _, ok := b.Get(annotate.Side); ok {
				sides++
			}
		}
		if sides != 1 {
			t.Errorf("%s frame %d: %d blocks with a side in %q, want 1", name, i+1, sides, p.Comments)
		}
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	if n := len(labtest.StatelabFields(t, path, "!statelab.side")); n != 0 {
		t.Errorf("%s: %d frames without statelab.side", name, n)
	}
	want := map[string]string{
		"dns/id-matching":    `statelab.kind == "answer" && statelab.query_id == dns.id && statelab.verdict == "matched" && statelab.query >= 1`,
		"dns/spoofing":       `statelab.side == "forger" && statelab.verdict == "rejected" && statelab.reason == "wrong ID"`,
		"dns/loss":           `statelab.kind == "query" && statelab.attempt == 2`,
		"dns/server-restart": `statelab.side == "kernel" && icmp`,
		"dns/client-gone":    `statelab.verdict == "not read"`,
		"dns/cookies":        `statelab.side == "prober"`,
		"dns/truncation":     `statelab.verdict == "truncated"`,
	}[name]
	if want != "" && len(labtest.StatelabFields(t, path, want)) == 0 {
		t.Errorf("%s: no frame matches %s", name, want)
	}
}
