package tcpstate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/labtest"
)

func TestMain(m *testing.M) {
	// Every state change in every test is checked against the table.
	strictTransitions = true
	// The driver's tests and experiments need the lab's network namespace;
	// the engine's tests are pure and run the same inside it.
	labtest.Main(m, nil)
}

// Fixed numbers used by the ladder tests, as in the RFC 9293 examples.
const (
	localPort            = 80
	peerPort             = 4000
	localISS         Seq = 100
	peerISS          Seq = 300
	testRcvBuf           = 64000
	testMSS              = 1000
	testMinRTO           = 200 * time.Millisecond
	testInitRTO          = time.Second
	testMSL              = 2 * time.Second
	testMaxRetry         = 4
	testPeerWnd          = 64000
	testChallenge        = 3
	testChallengeDur     = time.Second
)

func testConfig() Config {
	return Config{
		MSS:                  testMSS,
		SendBufferSize:       64000,
		RecvBufferSize:       testRcvBuf,
		InitialRTO:           testInitRTO,
		MinRTO:               testMinRTO,
		MaxRTO:               8 * time.Second,
		MSL:                  testMSL,
		MaxRetries:           testMaxRetry,
		ChallengeACKLimit:    testChallenge,
		ChallengeACKInterval: testChallengeDur,
		ISS:                  func() Seq { return localISS },
	}
}

// harness is a scriptable fake peer: it feeds segments to one Endpoint and
// checks what comes back, so a test reads like a ladder diagram.
type harness struct {
	t      testing.TB
	e      *Endpoint
	now    time.Duration
	out    Output
	segs   []Segment // emitted, not yet checked
	events []Event   // every event so far
	evSeen int       // events already returned by newEvents
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	return &harness{t: t, e: NewEndpoint(cfg), now: time.Second}
}

func (h *harness) collect() {
	for _, s := range h.out.Segments {
		s.Payload = append([]byte(nil), s.Payload...)
		h.segs = append(h.segs, s)
	}
	h.events = append(h.events, h.out.Events...)
	h.out.Reset()
}

type segOpt func(*Segment)

func data(p []byte) segOpt   { return func(s *Segment) { s.Payload = p } }
func text(p string) segOpt   { return data([]byte(p)) }
func win(w uint16) segOpt    { return func(s *Segment) { s.Window = w } }
func mssOpt(m uint16) segOpt { return func(s *Segment) { s.Options.MSS = m } }
func wsOpt(shift uint8) segOpt {
	return func(s *Segment) { s.Options.HasWScale, s.Options.WScale = true, shift }
}

// send delivers a segment from the peer.
func (h *harness) send(flags Flags, seq, ack Seq, opts ...segOpt) {
	s := Segment{SrcPort: peerPort, DstPort: localPort, Flags: flags, Seq: seq, Ack: ack, Window: testPeerWnd}
	for _, o := range opts {
		o(&s)
	}
	h.e.HandleSegment(h.now, &s, &h.out)
	h.collect()
}

func fmtSeg(s *Segment) string {
	str := s.Flags.String() + fmt.Sprintf(" seq=%d", s.Seq)
	if s.Flags&ACK != 0 {
		str += fmt.Sprintf(" ack=%d", s.Ack)
	}
	return str + fmt.Sprintf(" len=%d", len(s.Payload))
}

// want pops the next emitted segment and checks flags, seq, ack and payload
// length (0 unless n is given).
func (h *harness) want(flags Flags, seq, ack Seq, n ...int) Segment {
	h.t.Helper()
	if len(h.segs) == 0 {
		h.t.Fatalf("want %v seq=%d ack=%d, got no segment (state %v)", flags, seq, ack, h.e.State())
	}
	s := h.segs[0]
	h.segs = h.segs[1:]
	l := 0
	if len(n) > 0 {
		l = n[0]
	}
	exp := Segment{Flags: flags, Seq: seq, Ack: ack, Payload: make([]byte, l)}
	if got, w := fmtSeg(&s), fmtSeg(&exp); got != w {
		h.t.Fatalf("segment:\n got  %s\n want %s", got, w)
	}
	if s.SrcPort != localPort || s.DstPort != peerPort {
		h.t.Fatalf("ports %d->%d", s.SrcPort, s.DstPort)
	}
	return s
}

// wantSegs checks all pending segments against compact strings.
func (h *harness) wantSegs(want ...string) {
	h.t.Helper()
	var got []string
	for i := range h.segs {
		got = append(got, fmtSeg(&h.segs[i]))
	}
	h.segs = h.segs[:0]
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		h.t.Fatalf("segments:\n got  %q\n want %q", got, want)
	}
}

func (h *harness) wantNone() {
	h.t.Helper()
	if len(h.segs) != 0 {
		h.t.Fatalf("want no segment, got %s", fmtSeg(&h.segs[0]))
	}
}

func (h *harness) wantState(s State) {
	h.t.Helper()
	if h.e.State() != s {
		h.t.Fatalf("state %v, want %v", h.e.State(), s)
	}
}

// newEvents returns events since the last call.
func (h *harness) newEvents() []Event {
	ev := h.events[h.evSeen:]
	h.evSeen = len(h.events)
	return ev
}

func (h *harness) hasEvent(k EventKind) bool {
	for _, e := range h.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// advance moves the clock by d, firing timers as they fall due.
func (h *harness) advance(d time.Duration) {
	end := h.now + d
	for {
		at, ok := h.e.NextTimer()
		if !ok || at > end {
			break
		}
		h.now = max(h.now, at)
		h.e.HandleTimer(h.now, &h.out)
		h.collect()
	}
	h.now = end
}

// fire jumps to the next timer deadline and fires it.
func (h *harness) fire() {
	h.t.Helper()
	at, ok := h.e.NextTimer()
	if !ok {
		h.t.Fatalf("no timer armed in %v", h.e.State())
	}
	h.now = at
	h.e.HandleTimer(h.now, &h.out)
	h.collect()
}

func (h *harness) openActive() {
	h.t.Helper()
	if err := h.e.OpenActive(h.now, localPort, peerPort, &h.out); err != nil {
		h.t.Fatal(err)
	}
	h.collect()
}

func (h *harness) openPassive() {
	h.t.Helper()
	if err := h.e.OpenPassive(h.now, localPort, &h.out); err != nil {
		h.t.Fatal(err)
	}
	h.collect()
}

func (h *harness) userSend(p string) int {
	h.t.Helper()
	n, err := h.e.Send(h.now, []byte(p), &h.out)
	if err != nil {
		h.t.Fatal(err)
	}
	h.collect()
	return n
}

func (h *harness) userClose() {
	h.t.Helper()
	if err := h.e.Close(h.now, &h.out); err != nil {
		h.t.Fatal(err)
	}
	h.collect()
}

func (h *harness) read() (string, error) {
	buf := make([]byte, 1<<20)
	n, err := h.e.Receive(h.now, buf, &h.out)
	h.collect()
	return string(buf[:n]), err
}

func (h *harness) tcb() TCB { return h.e.TCB() }

// reach drives a fresh endpoint into state s by the usual path, with the
// fixed ISS values (ours 100, the peer's 300).
func (h *harness) reach(s State) {
	h.t.Helper()
	switch s {
	case Closed:
	case Listen:
		h.openPassive()
	case SynSent:
		h.openActive()
		h.want(SYN, localISS, 0)
	case SynReceived:
		h.reach(Listen)
		h.send(SYN, peerISS, 0, mssOpt(testMSS))
		h.want(SYN|ACK, localISS, peerISS+1)
	case Established:
		h.reach(SynSent)
		h.send(SYN|ACK, peerISS, localISS+1, mssOpt(testMSS))
		h.want(ACK, localISS+1, peerISS+1)
	case FinWait1:
		h.reach(Established)
		h.userClose()
		h.want(FIN|ACK, 101, 301)
	case FinWait2:
		h.reach(FinWait1)
		h.send(ACK, 301, 102)
	case CloseWait:
		h.reach(Established)
		h.send(FIN|ACK, 301, 101)
		h.want(ACK, 101, 302)
	case Closing:
		h.reach(FinWait1)
		h.send(FIN|ACK, 301, 101)
		h.want(ACK, 102, 302)
	case LastAck:
		h.reach(CloseWait)
		h.userClose()
		h.want(FIN|ACK, 101, 302)
	case TimeWait:
		h.reach(FinWait2)
		h.send(FIN|ACK, 301, 102)
		h.want(ACK, 102, 302)
	}
	h.wantNone()
	h.wantState(s)
	h.newEvents()
}
