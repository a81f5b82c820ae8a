package tcpstate_test

import (
	"bytes"
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
		// The same with SACK and timestamps negotiated: each segment
		// has one more byte, its options (here: timestamps, then an old
		// TSval, then SACK blocks).
		f.Add([]byte{4, byte(st),
			0, 0x50, 0, 0, 1, 0, 200, 20, 0x01,
			9, 50,
			0, 0x50, 0, 0, 1, 0, 200, 20, 0x11,
			0, 0x50, 0, 0, 1, 0, 200, 0, 0xe3,
			14,
			0, 0x51, 0, 0, 1, 0, 0, 0, 0x01,
			12, 15, 3, 14, 14})
		// A few plain segments at RCV.NXT acknowledging SND.NXT, some data,
		// a close and timers, from each starting state.
		f.Add([]byte{0, byte(st),
			0, 0x50, 0, 0, 1, 0, 200, 20, // ACK seq=RCV.NXT ack=SND.NXT, 20 octets
			9, 50, // send 400 octets
			14,                        // fire a timer
			0, 0x51, 0, 0, 1, 0, 0, 0, // FIN,ACK
			12, 15, 3, 14, 14})
		// The same with a read waiting, its buffer posted (bit 32), read
		// between segments, one out of order.
		f.Add([]byte{32, byte(st),
			11, 4,
			0, 0x50, 0, 0, 1, 0, 200, 20,
			11, 2,
			0, 0x50, 0, 40, 1, 0, 200, 20, // 40 octets beyond RCV.NXT
			0, 0x50, 0, 0, 1, 0, 200, 60,
			11, 200,
			0, 0x51, 0, 0, 1, 0, 0, 0,
			11, 50, 14})
	}
	for mode := byte(4); mode < 8; mode++ {
		// The core features' configurations (keep-alive, user timeout,
		// switches off) from ESTABLISHED: data, a zero window, silence.
		f.Add([]byte{mode, byte(Established),
			9, 50, // send 400 octets
			0, 0x50, 0, 0, 1, 0, 0, 0, // ACK ack=SND.UNA win=0
			14, 14, 15, 200, 15, 200, 14,
			0, 0x70, 0, 0, 0, 0, 200, 9, // URG data
			11, 4, 15, 255, 15, 255, 14, 14, 14})
	}
	for _, mode := range []byte{64 | 1, 64 | 8 | 1, 64 | 32 | 1} {
		// Payloads borrowed from the send buffer (bit 64) with its
		// 3,000 octets (1): 1,200 sent and acknowledged move the ring's
		// head off a segment boundary, so of the next 2,000 octets the
		// second segment wraps (joined in a copy); then a duplicate ACK
		// and timeouts retransmit from the ring.
		f.Add([]byte{mode, byte(Established),
			9, 150, // send 1,200 octets: 1,000 go, Nagle holds 200
			0, 0x50, 0, 0, 0, 0, 200, 0, // ACK ack=SND.NXT: the 200 go
			0, 0x50, 0, 0, 0, 0, 200, 0, // ACK ack=SND.NXT: all acknowledged
			9, 250, // send 2,000 octets, across the ring's end
			0, 0x50, 0, 0, 1, 0, 200, 0, // ACK ack=SND.UNA: a duplicate
			14, 14, 15, 100, 14,
			0, 0x50, 0, 0, 0, 0, 200, 0,
			9, 250, 14, 14})
	}
	f.Fuzz(runEngineFuzz)
}

// Inputs that once broke an invariant, kept as named cases.
var engineRegressions = map[string][]byte{
	// Fuzz finding (the checker's, not the engine's): a full segment
	// carries SND.MSS less its options, here timestamps' 12 octets, so 988
	// of 1,064 octets and then 76 is one full segment and its tail, not a
	// short segment followed by more.
	"a full segment with timestamps is not short": {0x17, byte(Established),
		9, 0x85}, // send 1,064 octets
	// Fuzz finding: CLOSE in SYN-RECEIVED, 29 octets taken by a read, and
	// the SYN,ACK sent again from FIN-WAIT-1 offered the whole buffer,
	// moving the right edge by 29 (receiver SWS). Found with a posted read
	// (bit 32), which takes the octets as they land; a RECEIVE does the same.
	"a retransmitted SYN,ACK holds the right edge after a read":        []byte("\x10$,+0000\xed0\xa200+0\xcfx0000000"),
	"a retransmitted SYN,ACK holds the right edge after a posted read": []byte("0$,+0000\xed0\xa200\xcfx0000000"),
	// Review finding: with a read posted, a segment longer than the free
	// buffer was placed in part and the rest trimmed to the whole free
	// buffer again, so RCV.NXT passed the window's right edge by what was
	// placed (2,200 octets taken into a 2,000-octet window).
	"a posted read does not widen the window": {1 | 32, byte(Established),
		11, 100, // RECEIVE, then a read waits with 200 octets posted
		0, 0x50, 0, 0, 1, 0, 200, 0xff, // 2,032 octets at RCV.NXT
		14},
	// The same with a SACK block as well: 976 octets are a full segment.
	"a full segment with timestamps and a SACK block is not short": {0x17, byte(Established),
		0x30, 0x30, 0x30, 0x32, 0xe1, 0x30, 0xf4, 0x30, 0x30, 0x30, 0x39, // data out of order, SACKed
		0xda, 0x30}, // send 1,744 octets
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
	// Fuzz finding: data beyond the peer's FIN is held out of order, the
	// FIN is consumed and RCV.NXT reaches that data's first octet: it
	// must not be reported in a SACK block (a block at RCV.NXT).
	"no SACK block at RCV.NXT": []byte("70000\x010\xc800001"),
	// The fuzzer, against the send policy's invariant: data Nagle held is
	// sent by the retransmission at SND.UNA after a timeout, twice in one
	// step (two RTOs); retransmissions are not the send policy's, and the
	// hold ends once nothing is unsent.
	"two RTOs in one step resend held data": []byte("0090900000000000000000+0+0\xafA0"),
	// A second reading's finding (the checker's, not the engine's): SYN-
	// RECEIVED back to LISTEN on a RST empties the send buffer, and the
	// next connection starts again from the same ISS; the text SEND took
	// must be forgotten there, as on a new OPEN.
	"back to LISTEN forgets the text sent": {64, 3, 9, 1, 0, 0x04, 0, 0, 0, 0, 200, 0, 0, 0x02, 3, 0, 0, 0, 200, 0, 0, 0x10, 0, 0, 0, 0, 200, 0, 9, 10},
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

	right     Seq  // the right edge of the window last advertised
	haveRight bool // right is known (reset when the connection restarts)
	edge      Seq  // the farthest right edge advertised, SYN,ACKs included
	haveEdge  bool
	progress  time.Duration // SND.UNA last advanced, or data left with none outstanding
	lastRecv  time.Duration // the peer last sent a segment
	options   bool          // SACK and timestamps negotiated; segments carry them
	posting   bool          // every RECEIVE leaves a read waiting, its buffer posted
	lent      []byte        // that buffer
	sent      []byte        // the text SEND took since the connection was opened
	textAt    int           // where in fuzzText the next SEND takes its text
}

func (f *engineFuzzer) next() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

// fuzzText is what SEND takes, each call where the last left off: 64 KiB
// of a pseudo-random sequence, so text read from a wrong place in the send
// buffer does not match by accident.
var fuzzText = func() []byte {
	p := make([]byte, 1<<16)
	x := uint32(2463534242)
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}()

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
	switch data[0] % 8 {
	case 1: // small buffers: zero windows both ways
		cfg.RecvBufferSize, cfg.SendBufferSize = 2000, 3000
	case 2: // large receive buffer: window scaling
		cfg.RecvBufferSize = 1 << 20
	case 3:
		cfg.DisableWindowScale, cfg.InitialWindow = true, 1
	case 4: // keep-alive
		cfg.KeepAlive, cfg.KeepAliveIdle, cfg.KeepAliveInterval, cfg.KeepAliveCount = true, 3*time.Second, 500*time.Millisecond, 3
	case 5: // user timeout, small buffers
		cfg.UserTimeout, cfg.RecvBufferSize, cfg.SendBufferSize = 4*time.Second, 2000, 3000
	case 6: // keep-alive ended by the user timeout
		cfg.KeepAlive, cfg.KeepAliveIdle, cfg.KeepAliveInterval, cfg.KeepAliveCount = true, 2*time.Second, 700*time.Millisecond, 50
		cfg.UserTimeout = 5 * time.Second
	case 7: // the switches off
		cfg.DisableReceiverSWS, cfg.DisableSlowStartAfterIdle, cfg.UnthrottledUnsentACKs, cfg.SlowButSteady = true, true, true, true
		cfg.RecvBufferSize = 3000
	}
	// Bits of the first byte beyond the buffer choice switch the send and
	// ACK policies: Nagle off, delayed ACK off, quick-ACK mode off.
	cfg.NoDelay = data[0]&4 != 0
	cfg.DisableDelayedACK = data[0]&8 != 0
	if data[0]&16 != 0 {
		cfg.QuickACKs = -1
	}
	start := State(data[1] % byte(NumStates))
	f := &engineFuzzer{t: t, cfg: WithDefaults(cfg), b: data[2:], h: tcptest.New(t, cfg), options: data[0]&4 != 0, posting: data[0]&32 != 0}
	if data[0]&64 != 0 {
		f.h.BorrowPayloads() // payloads are the send buffer's octets, as rawtcp sends them
	}
	if f.options {
		// The peer negotiates SACK and timestamps, and each segment takes
		// one more byte saying which options it carries.
		f.h.Negotiate()
	}
	f.h.Reach(start)
	if tc := f.h.TCB(); tc.State.Synchronized() {
		// Reach's handshake offered at most the free buffer.
		f.edge, f.haveEdge = tc.RcvNxt.Add(Size(tc.RcvWnd)), true
	}
	f.progress, f.lastRecv = f.h.Now(), f.h.Now()
	for steps := 0; len(f.b) > 0 && steps < 256; steps++ {
		before := f.h.TCB()
		beforeNxt := before.SndNxt
		evStart := len(f.h.Events())
		f.h.Discard()
		f.step()
		f.check(before, beforeNxt, evStart)
		f.checkText()
		for _, ev := range f.h.Events()[evStart:] {
			if ev.Kind == EventStateChanged && (ev.To == Listen || ev.To == Closed) {
				// The send buffer is emptied (after this step's segments,
				// which the connection sent before it ended), and the
				// next connection starts from its ISS.
				f.sent = nil
			}
		}
		f.checkCore(before, evStart)
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
			if f.textAt+n > len(fuzzText) {
				f.textAt = 0
			}
			text := fuzzText[f.textAt : f.textAt+n]
			k, err := e.Send(now, text, out)
			f.sent, f.textAt = append(f.sent, text[:k]...), f.textAt+k
			return err
		})
	case op == 11:
		var buf [512]byte
		n := int(f.next()) * 2
		if f.posting {
			// The read that waited wakes: what landed in its buffer,
			// then the ring, as rawtcp's Conn reads.
			h.Call("RECEIVE wakes", func(e *Endpoint, now time.Duration, out *Output) error {
				e.TakePosted() // the window invariant in checkCore judges what it took
				return nil
			})
		}
		h.Call("RECEIVE", func(e *Endpoint, now time.Duration, out *Output) error {
			_, err := e.Receive(now, buf[:n], out)
			return err
		})
		if f.posting {
			f.lent = make([]byte, n)
			h.Call("RECEIVE waits", func(e *Endpoint, now time.Duration, out *Output) error {
				e.PostRead(f.lent)
				return nil
			})
		}
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
			f.sent = nil // a new connection, from the same ISS
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
	} else if flags&URG != 0 {
		s.Urgent = uint16(wb) << 3
	}
	if s.DstPort == localPort {
		f.lastRecv = h.Now()
	}
	if f.options {
		f.segmentOptions(&s, tc)
	}
	h.SendSegment(s)
}

// checkText verifies the text of what the endpoint sent: every octet is
// the one SEND took at that sequence number, first transmission or
// retransmission, whether the payload was copied or borrowed from the
// send buffer (as the step's last call left it, before the next could
// reuse the buffer).
func (f *engineFuzzer) checkText() {
	t := f.t
	t.Helper()
	for i := range f.h.Pending() {
		s := &f.h.Pending()[i]
		if len(s.Payload) == 0 {
			continue
		}
		off := int(uint32(s.Seq - (f.h.TCB().ISS + 1)))
		if off+len(s.Payload) > len(f.sent) {
			t.Fatalf("%v: text at offset %d..%d, beyond the %d octets SEND took", s, off, off+len(s.Payload), len(f.sent))
		}
		if want := f.sent[off : off+len(s.Payload)]; !bytes.Equal(s.Payload, want) {
			t.Fatalf("%v: text at offset %d is not what SEND took there", s, off)
		}
	}
}

// segmentOptions adds what the next fuzz byte says: timestamps (current,
// or older than the last for PAWS), SACK-permitted on a SYN, and 1–4 SACK
// blocks at a spacing from SND.UNA (some valid, some beyond SND.NXT).
func (f *engineFuzzer) segmentOptions(s *Segment, tc TCB) {
	ob := f.next()
	o := &s.Options
	if ob&1 != 0 {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, f.h.PeerTSVal(), f.h.EndpointTSVal()
		if ob&0x10 != 0 {
			o.TSVal -= 1000 * uint32(1+ob>>1&7) // an old duplicate
		}
	}
	if s.Flags&SYN != 0 {
		o.SACKPermitted = ob&2 != 0
		return
	}
	if ob&0x20 != 0 {
		step := Size(1 + int(ob>>1&7)*300)
		for i := range int(ob>>6) + 1 {
			left := tc.SndUna.Add(step * Size(2*i+1))
			o.AddSACK(SACKBlock{Left: left, Right: left.Add(step)})
		}
	}
}

// checkOptions verifies the options of what the endpoint sent: they fit
// the header; timestamps on every segment but a RST once negotiated, never
// otherwise (but on a SYN); SACK blocks only once negotiated, above
// RCV.NXT, within the receive buffer and disjoint; data plus options
// within the MSS; the scoreboard within the flight.
func (f *engineFuzzer) checkOptions(tc TCB) {
	t := f.t
	t.Helper()
	for i := range f.h.Pending() {
		s := &f.h.Pending()[i]
		o := &s.Options
		if s.HeaderLen() > HeaderMaxLen {
			t.Fatalf("%v: header of %d octets", s, s.HeaderLen())
		}
		if s.Flags&SYN != 0 {
			continue
		}
		if s.Flags&RST == 0 && tc.TSOK != o.HasTimestamps && tc.State != Closed && tc.State != Listen {
			t.Fatalf("%v: timestamps %v, negotiated %v", s, o.HasTimestamps, tc.TSOK)
		}
		if o.NumSACK > 0 && !tc.SACKOK {
			t.Fatalf("%v: SACK blocks without SACK-permitted", s)
		}
		blocks := o.SACKBlocks()
		for j, b := range blocks {
			if !s.Ack.LessThan(b.Left) || !b.Left.LessThan(b.Right) || s.Ack.Add(Size(f.cfg.RecvBufferSize)).LessThan(b.Right) {
				t.Fatalf("%v: SACK block %d..%d outside (ACK, ACK+buffer]", s, b.Left, b.Right)
			}
			for _, c := range blocks[:j] {
				if b.Left.LessThan(c.Right) && c.Left.LessThan(b.Right) {
					t.Fatalf("%v: SACK blocks overlap", s)
				}
			}
		}
		if len(s.Payload) > 0 && tc.SndMSS > 64 && len(s.Payload)+s.HeaderLen()-HeaderMinLen > int(tc.SndMSS) {
			t.Fatalf("%v: %d octets of data and %d of options exceed the MSS %d", s, len(s.Payload), s.HeaderLen()-HeaderMinLen, tc.SndMSS)
		}
	}
	if tc.State != Closed && tc.State != Listen && tc.SACKed > uint32(tc.SndUna.Size(tc.SndNxt)) {
		t.Fatalf("scoreboard holds %d octets, %d in flight", tc.SACKed, tc.SndUna.Size(tc.SndNxt))
	}
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
	f.checkOptions(tc)
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
		// A full segment: SND.MSS less the options it carries (RFC 9293
		// §3.7.1: timestamps, and SACK blocks when it acknowledges data
		// out of order).
		full := int(tc.SndMSS) - (s.HeaderLen() - HeaderMinLen)
		short = len(s.Payload) < full && s.Flags&FIN == 0
	}
}

// checkCore verifies the invariants of issue 13's core features after one
// step:
//
//   - receiver SWS avoidance: the right edge of the advertised window moves
//     right by less than min(half the buffer, MSS) only when the buffer has
//     at least that much room beyond the window offered (the 16-bit field
//     caps it), or after the peer's FIN;
//   - keep-alive: probes (<SEQ=SND.UNA-1>, no text) only with KeepAlive
//     set, in ESTABLISHED or CLOSE-WAIT; a keep-alive timeout no earlier
//     than the peer's silence allows;
//   - user timeout: a connection with data in flight and an open window
//     never waits longer than UserTimeout without SND.UNA advancing;
//   - every reported transition is a table row (check) and urgent events
//     move RCV.UP forward.
func (f *engineFuzzer) checkCore(before TCB, evStart int) {
	t, h := f.t, f.h
	t.Helper()
	now := h.Now()
	tc := h.TCB()
	restarted := false
	var lastUp Seq
	haveUp := false
	for _, ev := range h.Events()[evStart:] {
		switch {
		case ev.Kind == EventStateChanged && (ev.To == Closed || ev.To == Listen || ev.To == SynSent):
			restarted = true
		case ev.Kind == EventStateChanged && ev.Cause == CauseKeepAliveTimeout:
			silent := now - f.lastRecv
			min := f.cfg.KeepAliveIdle + time.Duration(f.cfg.KeepAliveCount)*f.cfg.KeepAliveInterval
			if f.cfg.UserTimeout > 0 {
				min = max(f.cfg.KeepAliveIdle, f.cfg.UserTimeout)
			}
			if !f.cfg.KeepAlive || silent < min {
				t.Fatalf("keep-alive timeout after %v of silence, want at least %v (keep-alive %v)", silent, min, f.cfg.KeepAlive)
			}
		case ev.Kind == EventUrgent:
			if haveUp && !lastUp.LessThan(ev.Urgent) {
				t.Fatalf("urgent pointer %d after %d: not forward", ev.Urgent, lastUp)
			}
			lastUp, haveUp = ev.Urgent, true
		}
	}
	if restarted || !tc.State.Synchronized() {
		f.haveRight, f.haveEdge = false, false
		f.progress = now
		return
	}
	// Text is taken only inside a window the endpoint advertised, a read
	// posted or not: RCV.NXT never passes the farthest right edge sent,
	// but for a FIN just beyond it and the window scale's rounding down.
	if f.haveEdge && f.edge.Add(Size(1)<<tc.RcvWScale+1).LessThan(tc.RcvNxt) {
		t.Fatalf("RCV.NXT %d beyond the farthest right edge advertised, %d (%v)", tc.RcvNxt, f.edge, &tc)
	}
	for i := range h.Pending() {
		s := &h.Pending()[i]
		if s.Flags&RST == 0 && s.Flags&ACK != 0 {
			w := Size(s.Window)
			if s.Flags&SYN == 0 {
				w <<= tc.RcvWScale
			}
			if e := s.Ack.Add(w); !f.haveEdge || f.edge.LessThan(e) {
				f.edge, f.haveEdge = e, true
			}
		}
		if s.Flags&(SYN|RST) != 0 {
			continue
		}
		if s.Flags == ACK && len(s.Payload) == 0 && s.Seq == tc.SndUna-1 && tc.SndUna == tc.SndNxt {
			if !f.cfg.KeepAlive || (before.State != Established && before.State != CloseWait) {
				t.Fatalf("keep-alive probe %v (keep-alive %v, in %v)", s, f.cfg.KeepAlive, before.State)
			}
		}
		wnd := uint32(s.Window) << tc.RcvWScale
		right := s.Ack.Add(Size(wnd))
		if f.haveRight && f.right.LessThan(right) && !f.cfg.DisableReceiverSWS && !tc.State.ReceiveClosed() {
			thr := min(f.cfg.RecvBufferSize/2, f.cfg.MSS)
			d := int(f.right.Size(right))
			if d < thr && d >= 1<<tc.RcvWScale && int(tc.RcvWnd)-int(wnd) < thr {
				t.Fatalf("right edge moved by %d < %d with %d free and a %d-octet window (SWS)", d, thr, tc.RcvWnd, wnd)
			}
		}
		f.right, f.haveRight = right, true
	}
	if tc.SndUna != before.SndUna || before.SndUna == before.SndNxt {
		f.progress = now
	}
	if ut := f.cfg.UserTimeout; ut > 0 && tc.SndUna != tc.SndNxt && tc.SndWnd > 0 && tc.SndUna != tc.ISS {
		if now-f.progress > ut {
			t.Fatalf("data unacknowledged for %v, user timeout %v (%v)", now-f.progress, ut, &tc)
		}
	}
}
