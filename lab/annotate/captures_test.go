package annotate

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// The committed reference captures (scripts/regenerate-captures): every
// packet carries a block with its side and no block breaks the grammar;
// with tshark and the plugin, one capture of each group filters by its
// fields. Exact frames are not checked, so regenerated captures pass.
func TestReferenceCapturesCarryTheFields(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(root, "captures", "*", "*.pcapng"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no reference captures: %v", err)
	}
	for _, path := range paths {
		f, err := capture.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range f.Packets {
			sides := 0
			for _, c := range p.Comments {
				_, b, err := Parse(c)
				if err != nil && !errors.Is(err, ErrNoBlock) {
					t.Errorf("%s frame %d: %v", path, i+1, err)
				}
				if _, ok := b.Get(Side); ok {
					sides++
				}
			}
			if sides != 1 {
				t.Errorf("%s frame %d: %d blocks with a side, want 1: %q", path, i+1, sides, p.Comments)
			}
		}
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	for _, tt := range []struct{ capture, filter string }{
		{"tcp/simultaneous", `statelab.lab_state == "CLOSING" && statelab.cwnd > 0`},
		{"dns/spoofing", `statelab.verdict == "rejected" && statelab.reason == "wrong question" && statelab.query_id == dns.id`},
		{"quic/rebind-port", `statelab.event == "PATH_CHALLENGE" && statelab.side == "server" && statelab.dcid`},
		{"http/calculator", `statelab.mode == "stateful" && statelab.session contains "last_result" && statelab.step >= 2`},
	} {
		path := filepath.Join(root, "captures", tt.capture+".pcapng")
		if n := len(tsharkFields(t, path, "!statelab.side || statelab.error")); n != 0 {
			t.Errorf("%s: %d frames without statelab.side or with statelab.error", tt.capture, n)
		}
		if len(tsharkFields(t, path, tt.filter)) == 0 {
			t.Errorf("%s: no frame matches %s", tt.capture, tt.filter)
		}
	}
}
