package dnsexp

import (
	"fmt"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/udpdns"
)

// timeline records the client's events with the time it saw them, for
// the report's pictures: the queries in flight over time and what became
// of each reply the client read (matched, late, duplicate, rejected by
// reason). It is fed by the client's trace, from any goroutine.
type timeline struct {
	start time.Time

	mu     sync.Mutex
	open   map[string]bool // attempts in flight, by ID and QNAME
	flight []lab.Point     // attempts in flight after each change
	fates  map[string][]lab.Point
	lanes  []string // fate lanes in the order first seen
}

// maxEvents bounds a fate lane: a flood of forgeries draws its first
// maxEvents and says how many there were.
const maxEvents = 3000

func newTimeline() *timeline {
	return &timeline{start: time.Now(), open: map[string]bool{}, fates: map[string][]lab.Point{}}
}

// trace is for udpdns.Config.Trace.
func (t *timeline) trace(e udpdns.Event) {
	at := lab.MS(time.Since(t.start))
	k := verdictKey(e.ID, e.Name)
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	switch e.Kind {
	case udpdns.EventSent, udpdns.EventTCPSent:
		changed = !t.open[k]
		t.open[k] = true
	case udpdns.EventMatched, udpdns.EventTimedOut, udpdns.EventCancelled, udpdns.EventTCPAnswered:
		changed = t.open[k]
		delete(t.open, k)
	}
	if changed {
		t.flight = append(t.flight, lab.Point{X: at, Y: float64(len(t.open))})
	}
	lane, fate := "", lab.Fate("")
	switch e.Kind {
	case udpdns.EventMatched:
		lane = "matched"
	case udpdns.EventLate:
		lane, fate = "late", lab.FateLate
	case udpdns.EventDuplicate:
		lane, fate = "duplicate", lab.FateDuplicate
	case udpdns.EventRejected:
		lane, fate = "rejected: "+e.Reason.String(), lab.FateRejected
	case udpdns.EventTimedOut:
		lane = "attempt timed out"
	default:
		return
	}
	if _, ok := t.fates[lane]; !ok {
		t.lanes = append(t.lanes, lane)
	}
	t.fates[lane] = append(t.fates[lane], lab.Point{X: at, Label: fmt.Sprintf("id=%#04x %s from %s", e.ID, e.Name, e.Peer), Fate: fate,
		Detail: describe(e)})
}

// emit adds the two plots to the report.
func (t *timeline) emit(env *lab.Env) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.flight) > 0 {
		p := env.Plot("queries in flight on the client (attempts sent and not yet answered, timed out or cancelled)", lab.PlotXY,
			"time (ms, from the client's start)", "attempts in flight")
		p.Add("in flight", lab.SeriesStep).Points = append([]lab.Point{{X: t.flight[0].X, Y: 0}}, t.flight...)
	}
	if len(t.lanes) > 0 {
		p := env.Plot("each reply's fate as the client judged it, and the attempts that timed out", lab.PlotTimeline,
			"time (ms, from the client's start)", "")
		for _, lane := range t.lanes {
			pts := t.fates[lane]
			name := fmt.Sprintf("%s (%d)", lane, len(pts))
			if len(pts) > maxEvents {
				name = fmt.Sprintf("%s (%d, the first %d drawn)", lane, len(pts), maxEvents)
				pts = pts[:maxEvents]
			}
			p.Add(name, lab.SeriesEvents).Points = pts
		}
	}
}
