package tcpexp

import (
	"strconv"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// checkFields reads a tcp/ capture with the Wireshark plugin: every
// packet's comments end in a block Parse reads, every packet yields
// statelab.side, and each experiment's own states filter as fields — in
// tcp/simultaneous, statelab.lab_state == "CLOSING" matches, and cwnd is
// a number a filter compares.
func checkFields(t *testing.T, short, path string) {
	t.Helper()
	f, err := capture.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range f.Packets {
		blocks := 0
		for _, c := range p.Comments {
			if _, _, err := annotate.Parse(c); err == nil {
				blocks++
			} else if !strings.Contains(err.Error(), "no [statelab") {
				t.Errorf("%s frame %d: %v in %q", short, i+1, err, c)
			}
		}
		if blocks != 1 {
			t.Errorf("%s frame %d: %d [statelab …] blocks in %q, want 1", short, i+1, blocks, p.Comments)
		}
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	rows := labtest.StatelabFields(t, path, "", "statelab.side", "statelab.lab_state", "statelab.kernel_state")
	if len(rows) != len(f.Packets) {
		t.Fatalf("%s: tshark shows %d frames, the file holds %d", short, len(rows), len(f.Packets))
	}
	for _, r := range rows {
		if r[1] != "lab" && r[1] != "kernel" && r[1] != "other" {
			t.Errorf("%s frame %s: statelab.side %q, want lab, kernel or other", short, r[0], r[1])
		}
		if r[1] != "other" && r[3] == "" {
			t.Errorf("%s frame %s: no statelab.kernel_state", short, r[0])
		}
	}
	switch short {
	case "simultaneous":
		closing := labtest.StatelabFields(t, path, `statelab.lab_state == "CLOSING"`, "statelab.side", "statelab.cwnd", "statelab.snd_nxt")
		if len(closing) == 0 {
			t.Fatalf("no frame matches statelab.lab_state == \"CLOSING\"")
		}
		for _, r := range closing {
			if _, err := strconv.ParseUint(r[2], 10, 32); err != nil {
				t.Errorf("frame %s in CLOSING: statelab.cwnd %q is not a number", r[0], r[2])
			}
		}
		if n := len(labtest.StatelabFields(t, path, "statelab.cwnd > 0 && statelab.snd_nxt >= 1")); n == 0 {
			t.Errorf("no frame matches statelab.cwnd > 0 && statelab.snd_nxt >= 1: numeric fields do not compare")
		}
		if n := len(labtest.StatelabFields(t, path, `statelab.kernel_state == "CLOSING"`)); n == 0 {
			t.Errorf("no frame matches statelab.kernel_state == \"CLOSING\"")
		}
	}
}
