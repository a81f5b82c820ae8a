package dnsexp

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// The server's plan in dns/loss, query by query: the first attempt of a
// dropped name dropped, the late name's first answer held until its retry
// came, which is answered only after the held one.
func TestLossPlanDecide(t *testing.T) {
	names := synthNames("l", loss.queries)
	p := newLossPlan(names)
	dropped, late := names[loss.dropped[0]], names[loss.late]
	ask := func(name string, id uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(strings.ToUpper(name), dns.TypeA) // 0x20 case is the same name
		m.Id = id
		return m
	}
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	held := p.decide(nil, ask(late, 0x51))
	steps := []struct {
		name string
		got  func() bool
	}{
		{"a dropped name's first attempt is dropped", func() bool { return p.decide(nil, ask(dropped, 1)).Drop }},
		{"its retry is answered at once", func() bool { a := p.decide(nil, ask(dropped, 2)); return !a.Drop && a.Hold == nil }},
		{"another name is answered at once", func() bool { a := p.decide(nil, ask(names[0], 3)); return !a.Drop && a.Hold == nil }},
		{"the late name's first answer is held until the retry", func() bool { return held.Hold != nil && !closed(held.Hold) && held.Sent != nil }},
		{"the retry releases it and waits for it to be sent", func() bool {
			retry := p.decide(nil, ask(late, 0x52))
			if !closed(held.Hold) || retry.Hold == nil || closed(retry.Hold) {
				return false
			}
			held.Sent(nil)
			return closed(retry.Hold)
		}},
		{"a third attempt is answered at once", func() bool { return p.decide(nil, ask(late, 0x53)).Hold == nil }},
		{"the held answer's ID is the first attempt's", func() bool { id, matched := p.held(); return id == 0x51 && !matched }},
	}
	for _, s := range steps {
		if !s.got() {
			t.Errorf("%s: no", s.name)
		}
	}
}

// dns/loss's reading of its capture: the dropped queries, the late name's
// attempts and answers, and whether the retry's ID was fresh.
func TestReadLoss(t *testing.T) {
	names := synthNames("l", 3)
	late := names[1]
	const held = 2
	tests := []struct {
		name    string
		pkts    func() []*capture.Packet
		dropped int
		fresh   bool
		comment string
	}{
		{"held answer, then the retry's", func() []*capture.Packet {
			return []*capture.Packet{q(t, 1, names[0]), a(t, 1, names[0]), q(t, held, late), q(t, 3, names[2]),
				q(t, 4, late), a(t, held, late), a(t, 4, late), q(t, 5, names[2]), a(t, 5, names[2])}
		}, 1, true, "held answer to the first attempt, released once the retry arrived: answer to query 1 id=0x0002 l1.synth.lab. A"},
		{"the retry's answer first", func() []*capture.Packet {
			return []*capture.Packet{q(t, held, late), q(t, 4, late), a(t, 4, late), a(t, held, late)}
		}, 0, false, "answer to the retry: answer to query 1 id=0x0004"},
		{"the retry with the same ID", func() []*capture.Packet {
			return []*capture.Packet{q(t, held, late), q(t, held, late), a(t, held, late), a(t, held, late)}
		}, 0, false, "query 1 (attempt 2): id=0x0002 l1.synth.lab. A"},
		{"no retry", func() []*capture.Packet {
			return []*capture.Packet{q(t, held, late), a(t, held, late)}
		}, 0, false, "query 1 (attempt 1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := tt.pkts()
			said := saidOf(udpdns.Event{Kind: udpdns.EventLate, ID: held, Name: late})
			w := readLoss(pkts, srvAP, names, late, held, said)
			if len(w.dropIDs) != tt.dropped || w.freshIDs(held) != tt.fresh {
				t.Errorf("%d dropped, fresh IDs %v; want %d, %v", len(w.dropIDs), w.freshIDs(held), tt.dropped, tt.fresh)
			}
			allCommented(t, pkts)
			if c := comments(pkts); !strings.Contains(c, tt.comment) {
				t.Errorf("comments lack %q:\n%s", tt.comment, c)
			}
		})
	}
}

// The late name's ladder: held, retried, the held answer late, the retry's
// answer matched.
func TestLossLadder(t *testing.T) {
	late := synthName("l", 1)
	pkts := []*capture.Packet{q(t, 2, late), q(t, 4, late), a(t, 2, late), a(t, 4, late)}
	said := saidOf(udpdns.Event{Kind: udpdns.EventLate, ID: 2, Name: late}, udpdns.Event{Kind: udpdns.EventMatched, ID: 4, Name: late})
	w := readLoss(pkts, srvAP, []string{synthName("l", 0), late}, late, 2, said)
	var got []string
	for _, r := range w.ladder {
		got = append(got, r.LeftState+" / "+r.RightState)
	}
	want := "in flight / holds the answer|id 0x0002 timed out: quarantined; retry in flight / answers|late: completes nothing / |matched / "
	if strings.Join(got, "|") != want {
		t.Errorf("ladder\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
}
