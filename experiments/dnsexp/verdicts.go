package dnsexp

import (
	"fmt"
	"strings"
	"sync"

	"github.com/statelab/statelab/udpdns"
)

// verdicts records what the client made of each datagram it read, per ID
// and QNAME in the order it read them, so that the capture's comments say
// what the client did with each reply (matched, late, duplicate,
// rejected), not what the lab guesses.
type verdicts struct {
	mu sync.Mutex
	m  map[string][]udpdns.Event
}

func verdictKey(id uint16, name string) string {
	return fmt.Sprintf("%04x %s", id, strings.ToLower(name))
}

// trace is for udpdns.Config.Trace.
func (v *verdicts) trace(e udpdns.Event) {
	switch e.Kind {
	case udpdns.EventMatched, udpdns.EventLate, udpdns.EventDuplicate, udpdns.EventRejected:
	default:
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = map[string][]udpdns.Event{}
	}
	k := verdictKey(e.ID, e.Name)
	v.m[k] = append(v.m[k], e)
}

// nextWhere returns the client's verdict on the next datagram it read with
// w's ID and QNAME that fits (false when the client read none: it had
// closed). Where datagrams of one ID and QNAME differ in kind (a forgery
// and the genuine answer), a datagram the kernel delivered out of capture
// order still gets its own.
func (v *verdicts) nextWhere(w wirePkt, fits func(udpdns.Event) bool) (udpdns.Event, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := verdictKey(w.head.ID, w.head.Name())
	q := v.m[k]
	for i, e := range q {
		if fits(e) {
			v.m[k] = append(q[:i:i], q[i+1:]...)
			return e, true
		}
	}
	return udpdns.Event{}, false
}

// said is the client's verdict on w in full and in brief, or "not read".
func (v *verdicts) said(w wirePkt) (full, short string) {
	return v.saidWhere(w, func(udpdns.Event) bool { return true })
}

// saidWhere is said for the first verdict that fits.
func (v *verdicts) saidWhere(w wirePkt, fits func(udpdns.Event) bool) (full, short string) {
	if e, ok := v.nextWhere(w, fits); ok {
		return describe(e), brief(e)
	}
	return "not read by the client", "not read"
}

// describe says what the client made of a reply, for its comment.
func describe(e udpdns.Event) string {
	switch e.Kind {
	case udpdns.EventMatched:
		return "matched: completes its query"
	case udpdns.EventLate:
		return "LATE: its attempt had timed out; counted late, completes nothing"
	case udpdns.EventDuplicate:
		return "DUPLICATE of an answer already matched; counted, completes nothing"
	case udpdns.EventRejected:
		return "rejected by the client (" + e.Reason.String() + ")"
	}
	return e.Kind.String()
}

// brief is describe in a few words, for a ladder's state column.
func brief(e udpdns.Event) string {
	switch e.Kind {
	case udpdns.EventMatched:
		return "matched"
	case udpdns.EventLate:
		return "late: completes nothing"
	case udpdns.EventDuplicate:
		return "duplicate: completes nothing"
	case udpdns.EventRejected:
		return "rejected: " + e.Reason.String()
	}
	return e.Kind.String()
}
