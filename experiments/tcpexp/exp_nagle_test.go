package tcpexp

import (
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/nagle-delayed-ack passes, its metrics show the stall with Nagle and
// not without, and its capture comments say which round each segment is
// and why the body waited.
func TestNagleDelayedACK(t *testing.T) {
	e, ok := experiment("tcp/nagle-delayed-ack")
	if !ok {
		t.Fatal("tcp/nagle-delayed-ack is not in Experiments()")
	}
	r := labtest.RunExperiment(t, e, 3)
	m := r.Metrics
	if m["lab_quick_ack_rounds_count"] != nagleQuickRounds {
		t.Errorf("lab quick-ACK rounds %v, want %d", m["lab_quick_ack_rounds_count"], nagleQuickRounds)
	}
	if m["lab_delayed_ack_median_ms"] < msf(nagleDelayedACK) {
		t.Errorf("lab delayed ACK median %v ms, want at least the timer's %v", m["lab_delayed_ack_median_ms"], nagleDelayedACK)
	}
	for _, f := range []string{featureNagle, featureDelayedACK, featureQuickACK} {
		if m[featureMetric+f] != 1 {
			t.Errorf("metric %s%s = %v, want 1", featureMetric, f, m[featureMetric+f])
		}
	}
	if len(r.Ladders) != 4 {
		t.Errorf("%d ladders, want one per connection (4)", len(r.Ladders))
	}
	f, err := capture.ReadFile(r.Captures[0])
	if err != nil {
		t.Fatal(err)
	}
	held, delayed := 0, 0
	for _, p := range f.Packets {
		all := strings.Join(p.Comments, " | ")
		if strings.Contains(all, "Nagle held it until the header was acknowledged") {
			held++
		}
		if strings.Contains(all, "its delayed-ACK timer") {
			delayed++
		}
	}
	if held < nagleRoundCount || delayed < nagleRoundCount/2 {
		t.Errorf("%d bodies commented as held by Nagle (want ≥ %d), %d ACKs as delayed (want ≥ %d)", held, nagleRoundCount, delayed, nagleRoundCount/2)
	}
}

// nrec builds a record of connection 1 for nagleRounds' tests: sent by the
// lab or received, at ms milliseconds.
func nrec(sent bool, ms int, seq, ack tcpstate.Seq, n int) rawtcp.Record {
	return rawtcp.Record{Conn: 1, Sent: sent, At: time.Duration(ms) * time.Millisecond,
		Seg: rawtcp.RecSeg{Seq: seq, Ack: ack, Flags: tcpstate.ACK, Len: n}}
}

func TestNagleRoundsReadsEachRoundFromTheRecords(t *testing.T) {
	const lab, kernel = true, false
	// The lab is the client; its requests start at 1001 (header 12, body
	// 8), the kernel's responses at 5001.
	tests := []struct {
		name      string
		recs      []rawtcp.Record
		want      nagleRound
		afterACK  bool
		ackDelay  time.Duration
		bodyDelay time.Duration
	}{
		{"Nagle: the body after the kernel's delayed ACK",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 12), nrec(kernel, 40, 5001, 1013, 0), nrec(lab, 40, 1013, 5001, 8), nrec(kernel, 41, 5001, 1021, 16)},
			nagleRound{found: true, hdrRec: 0, ackRec: 1, bodyRec: 2, respRec: 3, pureACK: true}, true, 40 * time.Millisecond, 40 * time.Millisecond},
		{"NoDelay: the body before any ACK, the ACK on the response",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 12), nrec(lab, 0, 1013, 5001, 8), nrec(kernel, 1, 5001, 1021, 16)},
			nagleRound{found: true, hdrRec: 0, ackRec: 2, bodyRec: 1, respRec: 2}, false, time.Millisecond, 0},
		{"header and body in one segment",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 20), nrec(kernel, 1, 5001, 1021, 16)},
			nagleRound{found: true, hdrRec: 0, ackRec: 1, bodyRec: 0, respRec: 1}, false, time.Millisecond, 0},
		{"an ACK short of the header's end is not its ACK; a record the link dropped is not sent",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 12), nrec(kernel, 1, 5001, 1005, 0),
				{Conn: 1, Sent: true, Note: "dropped by the link", Seg: rawtcp.RecSeg{Seq: 1013, Len: 8}}},
			nagleRound{hdrRec: 0, ackRec: -1, bodyRec: -1, respRec: -1}, false, 0, 0},
		// Seen in a race soak beside a two-hog lab soak (round 9 of the
		// TCP_NODELAY case): the lab's answer was late, the kernel's loss
		// probe re-sent the body, the lab acknowledged the duplicate.
		{"NoDelay: the body sent again before any ACK, the receiver's pure ACK of the duplicate",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 12), nrec(lab, 0, 1013, 5001, 8), nrec(lab, 30, 1013, 5001, 8), nrec(kernel, 31, 5001, 1021, 0), nrec(kernel, 32, 5001, 1021, 16)},
			nagleRound{found: true, hdrRec: 0, ackRec: 3, bodyRec: 1, respRec: 4, pureACK: true, bodyResent: true}, false, 31 * time.Millisecond, 0},
		{"another connection's records do not count",
			[]rawtcp.Record{nrec(lab, 0, 1001, 5001, 12), {Conn: 2, Seg: rawtcp.RecSeg{Ack: 1013, Flags: tcpstate.ACK}}},
			nagleRound{hdrRec: 0, ackRec: -1, bodyRec: -1, respRec: -1}, false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nagleRounds(tt.recs, 1, true, 1001, 1, 12, 8)[0]
			w := tt.want
			if got.found != w.found || got.hdrRec != w.hdrRec || got.ackRec != w.ackRec || got.bodyRec != w.bodyRec || got.respRec != w.respRec || got.pureACK != w.pureACK || got.bodyResent != w.bodyResent {
				t.Fatalf("got %+v, want %+v", got, w)
			}
			if got.bodyReprobed() != (w.bodyResent && w.pureACK) {
				t.Fatalf("got %+v, want %+v", got, w)
			}
			if got.bodyAfterACK() != tt.afterACK || (got.found && (got.ackDelay() != tt.ackDelay || got.bodyWait() != tt.bodyDelay)) {
				t.Errorf("bodyAfterACK %v ackDelay %v bodyWait %v, want %v %v %v", got.bodyAfterACK(), got.ackDelay(), got.bodyWait(), tt.afterACK, tt.ackDelay, tt.bodyDelay)
			}
		})
	}
}

func TestNagleRoundsWithTheKernelAsClient(t *testing.T) {
	const lab, kernel = true, false
	// The kernel is the client: its request segments are the ones the lab
	// received; the second round starts 20 octets on.
	recs := []rawtcp.Record{
		nrec(kernel, 0, 2001, 7001, 12), nrec(lab, 0, 7001, 2013, 0), nrec(kernel, 0, 2013, 7001, 8), nrec(lab, 1, 7001, 2021, 16),
		nrec(kernel, 2, 2021, 7017, 12), nrec(lab, 42, 7017, 2033, 0), nrec(kernel, 42, 2033, 7017, 8), nrec(lab, 43, 7017, 2041, 16),
	}
	got := nagleRounds(recs, 1, false, 2001, 2, 12, 8)
	if !got[0].found || got[0].ackDelay() != 0 || !got[0].pureACK {
		t.Errorf("round 1 %+v: want a quick pure ACK", got[0])
	}
	if !got[1].found || got[1].ackDelay() != 40*time.Millisecond || !got[1].bodyAfterACK() || got[1].hdrRec != 4 || got[1].respRec != 7 {
		t.Errorf("round 2 %+v: want the body after a 40 ms ACK", got[1])
	}
	notes := roundNotes(got, "kernel", "lab", true)
	if s := strings.Join(notes[5], ""); !strings.Contains(s, "round 2: the lab's ACK of the lone header, 40 ms after it: its delayed-ACK timer") {
		t.Errorf("the delayed ACK's comment: %q", s)
	}
	if s := strings.Join(notes[6], ""); !strings.Contains(s, "the kernel's Nagle held it") {
		t.Errorf("the held body's comment: %q", s)
	}
	if s := strings.Join(notes[1], ""); !strings.Contains(s, "a quick ACK") {
		t.Errorf("the quick ACK's comment: %q", s)
	}
	if rn := rungNotes(got, true); rn[5] != "delayed ACK, +40 ms" || rn[6] != "round 2 body, +40 ms, held by Nagle" {
		t.Errorf("ladder notes %q, %q", rn[5], rn[6])
	}
}

func TestMedianDur(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{5 * ms}, 5 * ms},
		{[]time.Duration{40 * ms, 1 * ms, 3 * ms}, 3 * ms},
		{[]time.Duration{40 * ms, 1 * ms, 3 * ms, 41 * ms}, 21500 * time.Microsecond},
	}
	for _, tt := range tests {
		if got := medianDur(tt.in); got != tt.want {
			t.Errorf("medianDur(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRecordFeaturesFromTheDriversRecords(t *testing.T) {
	syn := func(sent, ws bool) rawtcp.Record {
		return rawtcp.Record{Conn: 1, Sent: sent, Seg: rawtcp.RecSeg{Flags: tcpstate.SYN, HasWScale: ws}}
	}
	tests := []struct {
		name string
		recs []rawtcp.Record
		want string
	}{
		{"window scale when both SYNs offer it", []rawtcp.Record{syn(true, true), syn(false, true)}, "window-scale"},
		{"not when one side does not", []rawtcp.Record{syn(true, true), syn(false, false)}, ""},
		{"an ACK delayed after data", []rawtcp.Record{{Conn: 1, Seg: rawtcp.RecSeg{Len: 10}, TCB: tcpstate.TCB{ACKDelayed: true}}}, "delayed-ack"},
		{"Nagle and SWS holds", []rawtcp.Record{{Conn: 1, TCB: tcpstate.TCB{Held: tcpstate.HoldNagle}}, {Conn: 1, TCB: tcpstate.TCB{Held: tcpstate.HoldSWS}}}, "nagle,sender-sws"},
		{"a zero-window probe, not a dropped one", []rawtcp.Record{{Conn: 1, Sent: true, Seg: rawtcp.RecSeg{Len: 1}}, {Conn: 1, Sent: true, Seg: rawtcp.RecSeg{Len: 1}, Note: "dropped by the link"}},
			"zero-window-probe"},
		{"the CLOSED responder's records are no connection's", []rawtcp.Record{{Conn: 0, TCB: tcpstate.TCB{Held: tcpstate.HoldNagle}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(recordFeatures(tt.recs), ","); got != tt.want {
				t.Errorf("recordFeatures = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFeaturesTableListsKnownThenDeclaredFeatures(t *testing.T) {
	reports := []*lab.Report{
		{Experiment: "tcp/a", Metrics: map[string]float64{"feature.nagle": 1, "feature.zz-new": 1, "reached.CLOSED": 1}},
		{Experiment: "tcp/b", Metrics: map[string]float64{"feature.nagle": 1, "feature.delayed-ack": 1, "feature.sack": 0}},
	}
	tb := featuresAcrossCatalogue(reports)
	cell := map[string]string{}
	for _, row := range tb.Rows[1:] {
		cell[row[0]] = row[2]
	}
	for name, want := range map[string]string{"nagle": "tcp/a, tcp/b", "delayed-ack": "tcp/b", "sack": "—", "zz-new": "tcp/a"} {
		if cell[name] != want {
			t.Errorf("feature %s exercised in %q, want %q", name, cell[name], want)
		}
	}
	if last := tb.Rows[len(tb.Rows)-1][0]; last != "zz-new" || len(tb.Rows) != len(knownFeatures)+2 {
		t.Errorf("%d rows, last %q: want the %d known features, then zz-new", len(tb.Rows)-1, last, len(knownFeatures))
	}
}

func TestTCPSummaryHasTheStatesThenTheFeatures(t *testing.T) {
	reports := []*lab.Report{{Experiment: "tcp/a", Metrics: map[string]float64{"reached.CLOSED": 1, "feature.nagle": 1}}}
	tables, checks := tcpAcrossCatalogue(reports, false)
	if len(tables) != 2 || len(checks) != 0 || !strings.HasPrefix(tables[1].Title, "TCP features") {
		t.Fatalf("tables %v, checks %v: want the states, then the features, no check for part of the group", tables, checks)
	}
}

// With Nagle on, a body that leaves before the header's ACK is a Nagle
// failure, unless the ACK was so late that the sender's tail-loss probe
// fired first (Linux: 2·SRTT + 200 ms with one segment unacknowledged), as
// it does when the lab's process is starved past its delayed-ACK timer.
func TestKernelBodyBeforeACKIsAProbeOnlyAfterTheProbeFloor(t *testing.T) {
	round := func(bodyRec, ackRec int) nagleRound {
		return nagleRound{found: true, hdrRec: 0, ackRec: ackRec, bodyRec: bodyRec, respRec: 3, pureACK: true}
	}
	tests := []struct {
		name   string
		rd     nagleRound
		gap    time.Duration // header to body on the wire
		probed bool
	}{
		{"the body after the ACK is Nagle, not a probe", round(2, 1), 41 * time.Millisecond, false},
		{"the body 216 ms after the header, before a late ACK, is the probe", round(1, 2), 216 * time.Millisecond, true},
		{"the body at once before the ACK is Nagle failing", round(1, 2), time.Millisecond, false},
		{"the body before the ACK inside the probe floor is Nagle failing", round(1, 2), 150 * time.Millisecond, false},
		{"header and body in one segment is no probe", nagleRound{found: true, hdrRec: 0, ackRec: 1, bodyRec: 0, respRec: 1}, 0, false},
		{"a round not found is no probe", nagleRound{hdrRec: 0, ackRec: -1, bodyRec: -1, respRec: -1}, 300 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := tt.rd
			rd.wireGap, rd.wired = tt.gap, true
			if got := rd.probed(); got != tt.probed {
				t.Errorf("probed(%v) = %v, want %v", tt.gap, got, tt.probed)
			}
		})
	}
}

// With TCP_NODELAY the sender holds nothing, so a body that crossed the
// wire after the receiver's delayed ACK is a late writer (a starved
// process), not an ACK that failed to ride on the response — but only when
// the wire shows the body at least the delayed-ACK timer after the header.
func TestNoDelayBodyAfterThePureACKIsALateWriterOnlyPastTheTimer(t *testing.T) {
	round := func(bodyRec, ackRec int, pure bool) nagleRound {
		return nagleRound{found: true, hdrRec: 0, ackRec: ackRec, bodyRec: bodyRec, respRec: 3, pureACK: pure}
	}
	tests := []struct {
		name  string
		rd    nagleRound
		gap   time.Duration // header to body on the wire
		wired bool
		late  bool
	}{
		{"the body 48 ms after the header, after the lab's delayed ACK", round(2, 1, true), 48 * time.Millisecond, true, true},
		{"the body at once, after a pure ACK: the ACK was early", round(2, 1, true), time.Millisecond, true, false},
		{"the body before the ACK: the ACK rode or will", round(1, 2, false), 48 * time.Millisecond, true, false},
		{"an ACK that carried data is no delayed ACK", round(2, 1, false), 48 * time.Millisecond, true, false},
		{"not on the wire: the records alone do not say", round(2, 1, true), 48 * time.Millisecond, false, false},
		{"header and body in one segment", nagleRound{found: true, hdrRec: 0, ackRec: 1, bodyRec: 0, respRec: 1, pureACK: true}, 48 * time.Millisecond, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd := tt.rd
			rd.wireGap, rd.wired = tt.gap, tt.wired
			if got := rd.writerLate(); got != tt.late {
				t.Errorf("writerLate() = %v, want %v", got, tt.late)
			}
		})
	}
}
