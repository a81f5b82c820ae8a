package labtest

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab"
)

// WantShortCaptureVerdict fails t unless r is what a run with a short
// capture must report: the check "capture complete" (or one named
// "capture complete: …") failed and no other did, every check after it
// was left unjudged, and no ladder was drawn. With wantNote, the report
// must also say why no ladder is drawn.
func WantShortCaptureVerdict(t testing.TB, r *lab.Report, wantNote bool) {
	t.Helper()
	if r.Passed || r.Error != "" || len(r.Checks) == 0 {
		t.Fatalf("passed %t, error %q, %d checks; want a failed capture check", r.Passed, r.Error, len(r.Checks))
	}
	isCapture := func(c lab.Check) bool { return strings.HasPrefix(c.Name, "capture complete") }
	if failed := r.Failed(); len(failed) != 1 || !isCapture(failed[0]) {
		t.Errorf("failed checks %+v, want only \"capture complete\"", failed)
	}
	judged := true
	for _, c := range r.Checks {
		if isCapture(c) {
			judged = false
			continue
		}
		if !judged && c.NotJudged == "" {
			t.Errorf("check %q judged on a short capture", c.Name)
		}
	}
	for _, l := range r.Ladders {
		t.Errorf("ladder %q drawn from a short capture (%d rows)", l.Title, len(l.Rows))
	}
	if wantNote && !strings.Contains(strings.Join(r.Notes, "\n"), "No ladder is drawn: the capture is incomplete") {
		t.Errorf("no note says why no ladder is drawn: %q", r.Notes)
	}
}
