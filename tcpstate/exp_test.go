package tcpstate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statelab/statelab/internal/lab"
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
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("STATELAB_REQUIRE_TOOLS") != "" {
			t.Fatal("tshark is required (STATELAB_REQUIRE_TOOLS is set)")
		}
		t.Logf("tshark not installed; capture not opened")
		return
	}
	allowed := map[string]bool{}
	for _, f := range intendedFlags[short] {
		allowed[f] = true
	}
	var filter []string
	for _, f := range analysisFlags {
		switch {
		case allowed[f]:
		case short == "simultaneous" && f == "retransmission":
			// In a simultaneous open each side sends SYN, then SYN,ACK
			// with the same sequence number: Wireshark calls the SYN,ACK a
			// retransmission. That is the experiment; anything else is not.
			filter = append(filter, "(tcp.analysis.retransmission && tcp.flags.syn == 0)")
		default:
			filter = append(filter, "tcp.analysis."+f)
		}
	}
	filter = append(filter, "_ws.malformed", "_ws.expert.severity == error")
	out, err := exec.Command(tshark, "-n", "-r", path, "-Y", strings.Join(filter, " || ")).Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", path, err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("capture %s has unintended analysis flags or malformed packets:\n%s", filepath.Base(path), s)
	}
	n, err := exec.Command(tshark, "-n", "-r", path, "-Y", "frame.comment contains \"lab \"", "-T", "fields", "-e", "frame.number").Output()
	if err != nil || len(strings.Fields(string(n))) == 0 {
		t.Errorf("capture %s: no packet carries a lab comment (%v)", filepath.Base(path), err)
	}
}
