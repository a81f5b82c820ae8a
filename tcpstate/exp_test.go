package tcpstate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statelab/statelab/internal/lab"
	"github.com/statelab/statelab/internal/labtest"
)

// TestExperiments runs every tcp/ experiment against the kernel and checks
// its capture with tshark when tshark is available.
func TestExperiments(t *testing.T) {
	for _, e := range lab.All() {
		if e.Group() != "tcp" {
			continue
		}
		t.Run(strings.ReplaceAll(e.Name, "/", "_"), func(t *testing.T) {
			out := t.TempDir()
			r := lab.RunOne(context.Background(), e, lab.Options{OutDir: out, Seed: 1})
			if !r.Passed {
				var b strings.Builder
				_ = r.WriteText(&b)
				t.Fatalf("%s failed: %s %v\n%s", e.Name, r.Error, r.Failed(), b.String())
			}
			if testing.Verbose() {
				var b strings.Builder
				_ = r.WriteText(&b)
				t.Log(b.String())
			}
			for _, c := range r.Captures {
				checkCapture(t, e.Short(), c)
			}
		})
	}
}

// intendedFlags lists the tcp.analysis flags each experiment sets out to
// produce; any other flag in its capture fails the test.
var intendedFlags = map[string][]string{
	"retransmit": {"retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order", "lost_segment", "ack_lost_segment"},
	"window":     {"zero_window", "zero_window_probe", "zero_window_probe_ack", "window_full"},
}

var analysisFlags = []string{"retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack",
	"out_of_order", "lost_segment", "ack_lost_segment", "zero_window", "zero_window_probe", "zero_window_probe_ack",
	"window_full", "keep_alive", "reused_ports"}

func checkCapture(t *testing.T, short, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if st.Size() > 1<<20 {
		t.Errorf("capture %s is %d bytes, want < 1 MiB", filepath.Base(path), st.Size())
	}
	if labtest.LookTool(t, "tshark") == "" {
		return // the experiment's own checks stand; the capture is not opened
	}
	allowed := map[string]bool{}
	for _, f := range intendedFlags[short] {
		allowed[f] = true
	}
	// Outside tcp/retransmit and tcp/window no flag is intended, with one
	// exception: in a simultaneous open each side sends SYN, then SYN,ACK
	// with the same sequence number, and Wireshark calls the SYN,ACK a
	// retransmission. Those frames, and only those, may carry that flag,
	// and the experiment comments them with why.
	exempt := short == "simultaneous"
	var filter []string
	for _, f := range analysisFlags {
		if !allowed[f] && !(exempt && f == "retransmission") {
			filter = append(filter, "tcp.analysis."+f)
		}
	}
	filter = append(filter, "_ws.malformed", "_ws.expert.severity == error")
	if s := tsharkFields(t, path, strings.Join(filter, " || ")); len(s) > 0 {
		out := labtest.Tshark(t, path, "-Y", strings.Join(filter, " || "), "-T", "fields",
			"-e", "frame.number", "-e", "frame.time_relative", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.str",
			"-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "tcp.analysis.flags", "-e", "_ws.expert.message", "-e", "frame.comment")
		t.Errorf("capture %s has unintended analysis flags or malformed packets (frames %v):\n%s", filepath.Base(path), s, out)
	}
	if exempt {
		flagged := tsharkFields(t, path, "tcp.analysis.retransmission")
		synacks := tsharkFields(t, path, "tcp.flags.syn == 1 && tcp.flags.ack == 1")
		explained := tsharkFields(t, path, "tcp.analysis.retransmission && frame.comment contains \"Wireshark\"")
		isSynAck := map[string]bool{}
		for _, f := range synacks {
			isSynAck[f] = true
		}
		for _, f := range flagged {
			if !isSynAck[f] {
				t.Errorf("capture %s: frame %s is flagged a retransmission and is not a simultaneous-open SYN,ACK", filepath.Base(path), f)
			}
		}
		if strings.Join(flagged, ",") != strings.Join(synacks, ",") {
			t.Errorf("capture %s: retransmission-flagged frames %v, want exactly the SYN,ACK frames %v", filepath.Base(path), flagged, synacks)
		}
		if len(explained) != len(flagged) {
			t.Errorf("capture %s: flagged SYN,ACK frames %v, of which %v carry the comment explaining the flag", filepath.Base(path), flagged, explained)
		}
		t.Logf("retransmission-flagged frames %v; SYN,ACK frames %v", flagged, synacks)
	}
	if labtest.TsharkCount(t, path, "frame.comment contains \"lab \"") == 0 {
		t.Errorf("capture %s: no packet carries a lab comment", filepath.Base(path))
	}
}

// tsharkFields returns the numbers of the frames of path matching filter.
func tsharkFields(t *testing.T, path, filter string) []string {
	t.Helper()
	return strings.Fields(labtest.Tshark(t, path, "-Y", filter, "-T", "fields", "-e", "frame.number"))
}
