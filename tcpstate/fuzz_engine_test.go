package tcpstate_test

import (
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// FuzzEngine feeds an endpoint, started in any of the 11 states, a sequence
// of inputs decoded from the fuzz bytes: segments (flags, SEQ and ACK as
// offsets from the current TCB, window, payload length, options), user calls
// and timer expiries with advancing time. After every step it checks that
// the engine did not panic and that its invariants hold (see
// engineFuzzer.check).
func FuzzEngine(f *testing.F) {
	for _, b := range engineRegressions {
		f.Add(b)
	}
	for st := range NumStates {
		// A few plain segments at RCV.NXT acknowledging SND.NXT, some data,
		// a close and timers, from each starting state.
		f.Add([]byte{0, byte(st),
			0, 0x50, 0, 0, 1, 0, 200, 20, // ACK seq=RCV.NXT ack=SND.NXT, 20 octets
			9, 50, // send 400 octets
			14,                        // fire a timer
			0, 0x51, 0, 0, 1, 0, 0, 0, // FIN,ACK
			12, 15, 3, 14, 14})
	}
	f.Fuzz(runEngineFuzz)
}

// Inputs that once broke an invariant, kept as named cases.
var engineRegressions = map[string][]byte{
	// Review finding: the peer shuts its window, each zero-window probe is
	// refused with <ACK=SND.UNA><WND=0>; the third refusal must not count
	// as a third duplicate ACK (fast retransmit beyond the window).
	"refused zero-window probes": {1, 4,
		0, 0x50, 0, 0, 1, 0, 0, 0, // ACK ack=SND.UNA win=0
		9, 200, // send 1600 octets
		14, 0, 0x50, 0, 0, 1, 0, 0, 0, // probe, refused
		14, 0, 0x50, 0, 0, 1, 0, 0, 0,
		14, 0, 0x50, 0, 0, 1, 0, 0, 0,
		14, 0, 0x50, 0, 0, 1, 0, 0, 0},
	// The fuzzer, against the send policy's invariant: data Nagle held is
	// sent by the retransmission at SND.UNA after a timeout, twice in one
	// step (two RTOs); retransmissions are not the send policy's, and the
	// hold ends once nothing is unsent.
	"two RTOs in one step resend held data": []byte("0090900000000000000000+0+0\xafA0"),
}

func TestEngineFuzzRegressions(t *testing.T) {
	for name, b := range engineRegressions {
		t.Run(name, func(t *testing.T) { runEngineFuzz(t, b) })
	}
}

type engineFuzzer struct {
	t   *testing.T
	h   *tcptest.Peer
	cfg Config
	b   []byte
}

func (f *engineFuzzer) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

var fuzzPayload = func() []byte {
	p := make([]byte, 4096)
	for i := range p {
		p[i] = byte(i * 7)
	}
	return p
}()

func runEngineFuzz(t *testing.T, data []byte) {
	if len(data) < 2 {
		return
	}
	cfg := testConfig()
	switch data[0] % 4 {
	case 1: // small buffers: zero windows both ways
		cfg.RecvBufferSize, cfg.SendBufferSize = 2000, 3000
	case 2: // large receive buffer: window scaling
		cfg.RecvBufferSize = 1 << 20
	case 3:
		cfg.DisableWindowScale, cfg.InitialWindow = true, 1
	}
	// Bits of the first byte beyond the buffer choice switch the send and
	// ACK policies: Nagle off, delayed ACK off, quick-ACK mode off.
	cfg.NoDelay = data[0]&4 != 0
	cfg.DisableDelayedACK = data[0]&8 != 0
	if data[0]&16 != 0 {
		cfg.QuickACKs = -1
	}
	start := State(data[1] % byte(NumStates))
	f := &engineFuzzer{t: t, cfg: WithDefaults(cfg), b: data[2:], h: tcptest.New(t, cfg)}
	f.h.Reach(start)
	for steps := 0; len(f.b) > 0 && steps < 256; steps++ {
		before := f.h.TCB()
		beforeNxt := before.SndNxt
		evStart := len(f.h.Events())
		f.h.Discard()
		f.step()
		f.check(before, beforeNxt, evStart)
	}
}

var fuzzScales = [4]int64{1, 97, 10007, 1 << 28}

func (f *engineFuzzer) step() {
	h := f.h
	op := f.next() % 16
	switch {
	case op <= 8:
		f.segment()
	case op <= 10:
		n := int(f.next()) * 8
		h.Call("SEND", func(e *Endpoint, now time.Duration, out *Output) error {
			_, err := e.Send(now, fuzzPayload[:n], out)
			return err
		})
	case op == 11:
		var buf [512]byte
		n := int(f.next()) * 2
		h.Call("RECEIVE", func(e *Endpoint, now time.Duration, out *Output) error {
			_, err := e.Receive(now, buf[:n], out)
			return err
		})
	case op == 12:
		h.Call("CLOSE", func(e *Endpoint, now time.Duration, out *Output) error { return e.Close(now, out) })
	case op == 13:
		if f.next()&3 == 0 {
			h.Call("ABORT", func(e *Endpoint, now time.Duration, out *Output) error { return e.Abort(now, out) })
		}
	case op == 14:
		if _, ok := h.Endpoint().NextTimer(); ok {
			h.Fire()
		}
	case op == 15:
		d := f.next()
		if h.State() == Closed && d&0x80 != 0 {
			if d&1 == 0 {
				h.Call("OPEN (active)", func(e *Endpoint, now time.Duration, out *Output) error {
					return e.OpenActive(now, localPort, peerPort, out)
				})
			} else {
				h.Call("OPEN (passive)", func(e *Endpoint, now time.Duration, out *Output) error {
					return e.OpenPassive(now, localPort, out)
				})
			}
			break
		}
		h.Advance(time.Duration(d) * 10 * time.Millisecond)
	}
}

func (f *engineFuzzer) segment() {
	h := f.h
	tc := h.TCB()
	fb, sb, so, ab, ao, wb, pb := f.next(), f.next(), int8(f.next()), f.next(), int8(f.next()), f.next(), f.next()
	flags := Flags(fb) & (FIN | SYN | RST | PSH | ACK | URG)
	if fb&0xc0 != 0 {
		flags |= ACK
	}
	var seq Seq
	switch sb & 3 {
	case 0:
		seq = tc.RcvNxt
	case 1:
		seq = tc.IRS
	case 2:
		seq = tc.RcvNxt.Add(Size(tc.RcvWnd))
	case 3:
		seq = peerISS
	}
	seq = Seq(int64(seq) + int64(so)*fuzzScales[sb>>2&3])
	var ack Seq
	switch ab & 3 {
	case 0:
		ack = tc.SndNxt
	case 1:
		ack = tc.SndUna
	case 2:
		ack = tc.ISS
	case 3:
		ack = localISS + 1
	}
	ack = Seq(int64(ack) + int64(ao)*fuzzScales[ab>>2&3])
	var w uint16
	if wb >= 32 {
		w = uint16(wb)<<8 | uint16(wb)
	}
	n := int(pb)
	if pb&0x80 != 0 {
		n = int(pb&0x7f) * 16
	}
	s := Segment{SrcPort: peerPort, DstPort: localPort, Flags: flags, Seq: seq, Ack: ack, Window: w, Payload: fuzzPayload[:n]}
	if flags&SYN != 0 {
		if ab&0x80 != 0 {
			s.Options.HasWScale, s.Options.WScale = true, (ab>>4)&15
		}
		if m := uint16(sb&0xf0) * 8; m != 0 {
			s.Options.MSS = max(m, 64)
		}
	}
	if fb&0x20 != 0 && so == -128 {
		s.DstPort++ // another connection's segment
	}
	h.SendSegment(s)
}

// check verifies the invariants after one step: the state is one of the 11;
// every transition reported is a row of the table and they chain from the
// state before to the state after; SND.UNA =< SND.NXT; within one
// connection (no pass through CLOSED or LISTEN) RCV.NXT and SND.UNA never
// move back; buffers stay within their bounds; new data (other than a
// one-octet window probe) stays within the peer's window; a delayed ACK
// waits at most Config.DelayedACK (never over 500 ms); data the send policy
// holds with nothing in flight has a timer to send it; a step sends at most
// one short segment of new data without FIN, and none after it (Nagle and
// sender SWS avoidance: a short segment only ends a burst).
func (f *engineFuzzer) check(before TCB, beforeNxt Seq, evStart int) {
	t, h := f.t, f.h
	t.Helper()
	st := h.Endpoint().State()
	if int(st) >= NumStates {
		t.Fatalf("state %d is not one of the 11", st)
	}
	cur, restarted := before.State, false
	for _, ev := range h.Events()[evStart:] {
		if ev.Kind != EventStateChanged {
			continue
		}
		if ev.From != cur || !Allowed(ev.From, ev.To, ev.Cause) {
			t.Fatalf("transition %v -> %v on %v (from %v) is not a table row", ev.From, ev.To, ev.Cause, cur)
		}
		cur = ev.To
		if cur == Closed || cur == Listen || cur == SynSent {
			restarted = true
		}
	}
	if cur != st {
		t.Fatalf("transitions end in %v, state is %v", cur, st)
	}
	tc := h.TCB()
	if st == Closed || st == Listen {
		return
	}
	if tc.SndNxt.LessThan(tc.SndUna) {
		t.Fatalf("SND.NXT %d before SND.UNA %d (%v)", tc.SndNxt, tc.SndUna, &tc)
	}
	if fl := int(tc.SndUna.Size(tc.SndNxt)); fl > f.cfg.SendBufferSize+2 {
		t.Fatalf("%d octets in flight, send buffer %d", fl, f.cfg.SendBufferSize)
	}
	if h.Endpoint().Readable() > f.cfg.RecvBufferSize || h.Endpoint().Unacked() > f.cfg.SendBufferSize {
		t.Fatalf("buffers: readable %d unacked %d", h.Endpoint().Readable(), h.Endpoint().Unacked())
	}
	if int(tc.RcvWnd) != RecvFree(h.Endpoint()) {
		t.Fatalf("RCV.WND %d, free buffer %d", tc.RcvWnd, RecvFree(h.Endpoint()))
	}
	if !restarted && before.State != Closed && before.State != Listen && before.State != SynSent {
		if tc.RcvNxt.LessThan(before.RcvNxt) {
			t.Fatalf("RCV.NXT moved back from %d to %d", before.RcvNxt, tc.RcvNxt)
		}
		if tc.SndUna.LessThan(before.SndUna) {
			t.Fatalf("SND.UNA moved back from %d to %d", before.SndUna, tc.SndUna)
		}
	}
	if tc.ACKDelayed {
		at, ok := h.Endpoint().TimerDeadline(TimerDelayedACK)
		if !ok || at > h.Now()+f.cfg.DelayedACK || f.cfg.DelayedACK > MaxDelayedACK {
			t.Fatalf("ACK delayed with the timer at %v (armed %v), now %v, delay %v", at, ok, h.Now(), f.cfg.DelayedACK)
		}
	}
	if tc.Held != HoldNone && tc.SndNxt == tc.SndUna {
		_, sws := h.Endpoint().TimerDeadline(TimerSWSOverride)
		_, persist := h.Endpoint().TimerDeadline(TimerPersist)
		if !sws && !persist {
			t.Fatalf("data held (%v) with nothing in flight and no timer to send it (%v)", tc.Held, &tc)
		}
	}
	edge := tc.SndUna.Add(Size(tc.SndWnd))
	short := false
	for i := range h.Pending() {
		s := &h.Pending()[i]
		end := s.Seq.Add(Size(len(s.Payload)))
		if s.Flags&(SYN|RST) != 0 || len(s.Payload) <= 1 || !beforeNxt.LessThan(end) {
			continue
		}
		if edge.LessThan(end) {
			t.Fatalf("new data %d..%d beyond the window edge %d (%v)", s.Seq, end, edge, &tc)
		}
		if s.Seq.LessThan(beforeNxt) {
			continue // a retransmission, perhaps with new data after it: not the send policy's
		}
		if short {
			t.Fatalf("new data %d..%d after a short segment in the same step (%v)", s.Seq, end, &tc)
		}
		short = len(s.Payload) < int(tc.SndMSS) && s.Flags&FIN == 0
	}
}
