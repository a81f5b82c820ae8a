package dnsexp

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// What the kernel chooses (ephemeral ports, process IDs) and how long
// things took may differ between two runs with one seed; nothing else.
var kernelChosen = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\b(\d{1,3}(?:\.\d{1,3}){3}):\d+`), "$1:PORT"},
	{regexp.MustCompile(`\bport \d+`), "port PORT"},
	{regexp.MustCompile(`\bpid \d+`), "pid PID"},
	{regexp.MustCompile(`\b\d+(?:\.\d+)?(?:ns|µs|ms|s|m|h)\b`), "DURATION"},
}

func maskKernelChosen(s string) string {
	for _, k := range kernelChosen {
		s = k.re.ReplaceAllString(s, k.with)
	}
	return s
}

// reportText renders a report with its timings, capture paths and
// kernel-chosen values masked.
func reportText(t *testing.T, r *lab.Report) []string {
	t.Helper()
	c := *r
	c.DurationMS = 0
	c.Captures = nil
	c.Metrics = map[string]float64{}
	for k, v := range r.Metrics {
		if strings.HasSuffix(k, "_ms") {
			v = 0
		}
		c.Metrics[k] = v
	}
	var b strings.Builder
	if err := c.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return strings.Split(maskKernelChosen(b.String()), "\n")
}

// captureText lists, for every DNS datagram of a capture, its direction,
// ID and question, and every packet's comments, masked and sorted: the
// order in which concurrent queries' retries and answers interleave is
// timing, but which IDs went out and what each packet is are not.
func captureText(t *testing.T, path string) []string {
	t.Helper()
	f, err := capture.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range dnsPackets(f.Packets) {
		dir := "query"
		if w.head.Response() {
			dir = "reply"
		}
		out = append(out, fmt.Sprintf("%s %s", dir, w.question()))
	}
	for _, p := range f.Packets {
		for _, c := range p.Comments {
			out = append(out, "comment: "+maskKernelChosen(c))
		}
	}
	slices.Sort(out)
	return out
}

// firstDiff describes where two line lists first differ.
func firstDiff(a, b []string) string {
	for i := range max(len(a), len(b)) {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n  first:  %q\n  second: %q", i+1, x, y)
		}
	}
	return ""
}

// Two runs with one seed make the same choices: DNS IDs, query order,
// the server's draws, forged replies; so the reports (ladders, checks,
// tables) and the captures' IDs are the same but for kernel-chosen values
// and timings.
func TestSameSeedSameRun(t *testing.T) {
	for _, name := range []string{"dns/loss", "dns/spoofing", "dns/client-gone"} {
		t.Run(name, func(t *testing.T) {
			const seed = 42
			r1 := labtest.RunExperiment(t, experiment(t, name), seed)
			r2 := labtest.RunExperiment(t, experiment(t, name), seed)
			if d := firstDiff(reportText(t, r1), reportText(t, r2)); d != "" {
				t.Errorf("two runs with seed %d report differently at %s", seed, d)
			}
			if len(r1.Captures) != len(r2.Captures) {
				t.Fatalf("captures %v and %v", r1.Captures, r2.Captures)
			}
			for i := range r1.Captures {
				if d := firstDiff(captureText(t, r1.Captures[i]), captureText(t, r2.Captures[i])); d != "" {
					t.Errorf("two runs with seed %d captured differently (sorted) at %s", seed, d)
				}
			}
		})
	}
}
