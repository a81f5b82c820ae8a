package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/htmlreport/browsertest"
	"github.com/statelab/statelab/lab/labtest"
)

// TestRunHTMLInABrowser runs an experiment of each group with --html and
// opens the page in headless Chromium: no script or console error,
// nothing fetched, and every experiment's pictures present, laid out with
// a size and holding marks — each group's own kinds among them.
func TestRunHTMLInABrowser(t *testing.T) {
	chromium := labtest.NeedTool(t, "chromium")
	dir := t.TempDir()
	page := filepath.Join(dir, "html")
	exps := []string{"tcp/retransmit", "dns/spoofing", "quic/rebind-port", "http/load-balancing"}
	code, out, errOut := run(append([]string{"run", "--json", "--seed", "7", "--out", filepath.Join(dir, "caps"), "--html", page}, exps...)...)
	if code != 0 {
		t.Fatalf("run --html: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, filepath.Join(page, "index.html")) {
		t.Errorf("run --html does not say where the page is: %q", errOut)
	}
	// --json carries the pictures' data too.
	plots := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r lab.Report
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("--json line: %v", err)
		}
		plots += len(r.Plots)
	}
	if plots == 0 {
		t.Error("--json carries no plots")
	}
	res, err := browsertest.Probe(context.Background(), chromium, filepath.Join(page, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range res.Errors {
		t.Errorf("the page logged an error: %s", e)
	}
	for _, f := range res.Fetched {
		t.Errorf("the page fetched %s; it must be self-contained", f)
	}
	// Each group's pictures, by the classes the renderer gives them.
	want := map[string][]string{
		"tcp/retransmit":      {"ladder", "plot xy", "plot timeline", "statediagram"},
		"dns/spoofing":        {"ladder", "plot xy", "plot timeline"},
		"quic/rebind-port":    {"ladder", "plot timeline", "plot bars"},
		"http/load-balancing": {"ladder", "plot timeline"},
	}
	seen := map[string]bool{}
	for _, s := range res.Sections {
		seen[s.Experiment] = true
		classes := map[string]bool{}
		for i, p := range s.Pictures {
			classes[p.Class] = true
			if p.Width <= 0 || p.Height <= 0 || p.Marks == 0 {
				t.Errorf("%s: picture %d (%s) is empty: %.0f×%.0f px, %d marks", s.Experiment, i+1, p.Class, p.Width, p.Height, p.Marks)
			}
			if p.Class == "statediagram" && p.Used == 0 {
				t.Errorf("%s: the state diagram highlights nothing", s.Experiment)
			}
		}
		for _, c := range want[s.Experiment] {
			if !classes[c] {
				t.Errorf("%s: no %q picture (has %v)", s.Experiment, c, classes)
			}
		}
	}
	for _, e := range exps {
		if !seen[e] {
			t.Errorf("the page has no section for %s", e)
		}
	}
	// The capture links resolve from the page's directory.
	b, err := os.ReadFile(filepath.Join(page, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, href := range []string{"../caps/tcp/retransmit.pcapng", "../caps/quic/rebind-port-client-"} {
		if !strings.Contains(string(b), `href="`+href) {
			t.Errorf("the page does not link %s", href)
		}
	}
	if _, err := os.Stat(filepath.Join(page, "../caps/tcp/retransmit.pcapng")); err != nil {
		t.Errorf("the capture the page links is not there: %v", err)
	}
}

func TestRunHTMLWhereNothingCanBeWrittenIsAUsageError(t *testing.T) {
	code, _, errOut := run("run", "--out", t.TempDir(), "--html", "/proc/nope", "http/calculator")
	if code != 2 || !strings.Contains(errOut, "--html") {
		t.Fatalf("exit %d, stderr %q; want 2 and a message about --html", code, errOut)
	}
}
