package tcpstate

import (
	"testing"
	"time"
)

// The ends of the benchmarks' connection.
const (
	localPort     = 80
	peerPort      = 4000
	localISS  Seq = 100
	peerISS   Seq = 300
)

// benchEstablished returns an endpoint in ESTABLISHED with MSS 1460 and
// large buffers, handshaked with a peer whose ISS is peerISS. The peer's
// SYN,ACK carries no SACK-permitted or timestamps: both are off.
func benchEstablished(b *testing.B) (*Endpoint, *Output) { return benchEstablishedOpts(b, false) }

// benchEstablishedOpts is benchEstablished with SACK and timestamps
// negotiated when opts is set.
func benchEstablishedOpts(b *testing.B, opts bool) (*Endpoint, *Output) {
	cfg := Config{ISS: func() Seq { return localISS }, SendBufferSize: 4 << 20, RecvBufferSize: 4 << 20}
	e := NewEndpoint(cfg)
	var out Output
	if err := e.OpenActive(0, localPort, peerPort, &out); err != nil {
		b.Fatal(err)
	}
	synack := Segment{SrcPort: peerPort, DstPort: localPort, Flags: SYN | ACK,
		Seq: peerISS, Ack: localISS + 1, Window: 65535,
		Options: Options{MSS: 1460, HasWScale: true, WScale: 7}}
	if opts {
		synack.Options.SACKPermitted = true
		synack.Options.HasTimestamps, synack.Options.TSVal, synack.Options.TSEcr = true, 1, out.Segments[0].Options.TSVal
	}
	e.HandleSegment(0, &synack, &out)
	if e.State() != Established || e.tcb.SACKOK != opts || e.tcb.TSOK != opts {
		b.Fatal(e.State(), e.tcb.SACKOK, e.tcb.TSOK)
	}
	// The SYN,ACK's window is never scaled (RFC 7323 §2.2); a window update
	// brings SND.WND to its scaled size now, so no data goes out inside the
	// timed loop when the first ACK arrives.
	e.HandleSegment(0, &Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK,
		Seq: peerISS + 1, Ack: localISS + 1, Window: 65535}, &out)
	if e.tcb.SndWnd != 65535<<7 {
		b.Fatalf("snd.wnd=%d after the window update", e.tcb.SndWnd)
	}
	out.Reset()
	return e, &out
}

// BenchmarkEstablishedInOrder: one full-size in-order data segment arrives in
// ESTABLISHED; every second one draws an ACK (delayed ACK, after the quick
// ACKs of the start). The receive buffer is drained outside the timed
// region every batch.
func BenchmarkEstablishedInOrder(b *testing.B) { benchInOrder(b, false) }

// BenchmarkEstablishedInOrderSACKTS is BenchmarkEstablishedInOrder with
// SACK and timestamps negotiated: every segment carries TSval/TSecr, PAWS
// checks it, TS.Recent moves, and the ACKs carry timestamps.
func BenchmarkEstablishedInOrderSACKTS(b *testing.B) { benchInOrder(b, true) }

func benchInOrder(b *testing.B, opts bool) {
	e, out := benchEstablishedOpts(b, opts)
	payload := make([]byte, 1460)
	seg := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK | PSH,
		Seq: peerISS + 1, Ack: localISS + 1, Window: 65535, Payload: payload}
	if opts {
		payload = payload[:1448] // the MSS less the timestamps option
		seg.Payload = payload
		seg.Options.HasTimestamps, seg.Options.TSVal, seg.Options.TSEcr = true, 2, e.tsNow()
	}
	drain := make([]byte, 4<<20)
	const batch = 1024
	acks := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == batch-1 {
			b.StopTimer()
			e.Receive(0, drain, out)
			out.Reset()
			b.StartTimer()
		}
		e.HandleSegment(time.Duration(i), &seg, out)
		seg.Seq += Seq(len(payload))
		if len(out.Segments) > 1 || (len(out.Segments) == 1 && (out.Segments[0].Ack != seg.Seq || out.Segments[0].Options.HasTimestamps != opts)) {
			b.Fatalf("not one ACK of everything: %v", out.Segments)
		}
		acks += len(out.Segments)
		if opts {
			seg.Options.TSVal++
		}
		out.Reset()
	}
	if b.N > 1 && acks < b.N/2 {
		b.Fatalf("%d ACKs for %d full-sized segments: want one for every second one at least", acks, b.N)
	}
}

// BenchmarkEstablishedAck: an ACK covering one full-size sent segment
// arrives in ESTABLISHED. Data is queued and sent outside the timed region.
func BenchmarkEstablishedAck(b *testing.B) {
	e, out := benchEstablished(b)
	chunk := make([]byte, 1460*1024)
	ack := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK,
		Seq: peerISS + 1, Ack: localISS + 1, Window: 65535}
	b.ReportAllocs()
	b.ResetTimer()
	pending := 0
	for i := 0; i < b.N; i++ {
		if pending == 0 {
			b.StopTimer()
			// Open the congestion window wide so the whole chunk goes out.
			e.tcb.Cwnd = maxWindow
			if _, err := e.Send(0, chunk, out); err != nil {
				b.Fatal(err)
			}
			pending = int(e.tcb.SndUna.Size(e.tcb.SndNxt)) / 1460
			out.Reset()
			b.StartTimer()
		}
		ack.Ack += 1460
		e.HandleSegment(time.Duration(i), &ack, out)
		pending--
		out.Reset()
	}
	b.StopTimer()
	if e.tcb.SndUna != ack.Ack {
		b.Fatalf("snd.una=%d want %d", e.tcb.SndUna, ack.Ack)
	}
}

// TestSteadyStateDoesNotAllocate guards the zero-allocation property the
// benchmarks report.
func TestSteadyStateDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	b := &testing.B{}
	e, out := benchEstablished(b)
	payload := make([]byte, 1460)
	seg := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK, Seq: peerISS + 1, Ack: localISS + 1, Window: 65535, Payload: payload}
	drain := make([]byte, 1460)
	allocs := testing.AllocsPerRun(1000, func() {
		e.HandleSegment(0, &seg, out)
		seg.Seq += 1460
		e.Receive(0, drain, out)
		out.Reset()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per in-order segment", allocs)
	}
	e.tcb.Cwnd = maxWindow
	e.Send(0, make([]byte, 1460*2000), out)
	out.Reset()
	ack := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK, Seq: seg.Seq, Ack: localISS + 1, Window: 65535}
	allocs = testing.AllocsPerRun(1000, func() {
		ack.Ack += 1460
		e.HandleSegment(0, &ack, out)
		out.Reset()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ACK", allocs)
	}
}

// BenchmarkReceiveIntoRead: a 64 KiB in-order segment arrives while a Read
// of 1 MiB waits, and the Read takes it, as rawtcp's bench kernel→lab does.
// "ring": through the receive ring (HandleSegment, then Receive: two
// copies); "posted": the Read's buffer lent (PostRead, HandleSegment,
// TakePosted: one). The payload is 64 KiB though the MSS is 1460: the
// receiver does not police the peer's segment size, as on lo with TSO.
func BenchmarkReceiveIntoRead(b *testing.B) {
	for _, posted := range []bool{false, true} {
		name := "ring"
		if posted {
			name = "posted"
		}
		b.Run(name, func(b *testing.B) {
			e, out := benchEstablished(b)
			payload := make([]byte, 64<<10)
			seg := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK | PSH,
				Seq: peerISS + 1, Ack: localISS + 1, Window: 65535, Payload: payload}
			read := make([]byte, 1<<20)
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for i := 0; b.Loop(); i++ {
				if posted {
					e.PostRead(read)
				}
				e.HandleSegment(time.Duration(i), &seg, out)
				n := 0
				if posted {
					n = e.TakePosted()
				} else {
					n, _ = e.Receive(time.Duration(i), read, out)
				}
				if n != len(payload) {
					b.Fatalf("read %d of %d", n, len(payload))
				}
				seg.Seq += Seq(len(payload))
				out.Reset()
			}
		})
	}
}

// BenchmarkSendMiB: a Send of about 1 MiB (718 full segments: Nagle would
// hold a partial last one) with the windows open, every segment
// it emits, and the ACK that frees the buffer again, as rawtcp's bench
// lab→kernel writes. "copied": each payload is copied into the Output's
// arena (two copies of the text: into the send buffer, then out);
// "borrowed": Output.BorrowPayloads, each payload is the send buffer's own
// octets (one copy).
func BenchmarkSendMiB(b *testing.B) {
	for _, borrow := range []bool{false, true} {
		name := "copied"
		if borrow {
			name = "borrowed"
		}
		b.Run(name, func(b *testing.B) {
			e, out := benchEstablished(b)
			out.BorrowPayloads = borrow
			chunk := make([]byte, 718*1460)
			ack := Segment{SrcPort: peerPort, DstPort: localPort, Flags: ACK,
				Seq: peerISS + 1, Ack: localISS + 1, Window: 65535}
			b.ReportAllocs()
			b.SetBytes(int64(len(chunk)))
			for i := 0; b.Loop(); i++ {
				e.tcb.Cwnd = maxWindow
				if n, err := e.Send(time.Duration(i), chunk, out); n != len(chunk) || err != nil {
					b.Fatalf("Send = %d, %v", n, err)
				}
				if e.tcb.SndNxt != ack.Ack+Seq(len(chunk)) {
					b.Fatalf("SND.NXT %d: not all of the MiB went out", e.tcb.SndNxt)
				}
				out.Reset()
				ack.Ack += Seq(len(chunk))
				e.HandleSegment(time.Duration(i), &ack, out)
				out.Reset()
			}
		})
	}
}
