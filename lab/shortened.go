package lab

import (
	"fmt"
	"strings"
	"time"
)

// Shortened says, once per report, that the lab runs the timer name at
// lab instead of the RFC's value rfc (source names the RFC and section,
// such as "RFC 9293 §3.4.2"), so a student reading "2×MSL = 200ms" knows
// it is shortened for speed and what a real stack waits. Calling it again
// for the same name adds nothing.
func (e *Env) Shortened(name string, lab, rfc time.Duration, source string) {
	note := fmt.Sprintf("%s is %s here (shortened for the lab; %s: %s)", name, FormatDuration(lab), source, FormatDuration(rfc))
	prefix := name + " is "
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, n := range e.report.Notes {
		if strings.HasPrefix(n, prefix) && strings.Contains(n, "(shortened for the lab;") {
			return
		}
	}
	e.report.Notes = append(e.report.Notes, note)
}

// FormatDuration writes d as a reader would: 200ms, 1.5s, 4m, 2m30s, 1h.
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Second:
		return d.String()
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < time.Minute:
		return d.String()
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}
