package tcpstate_test

import (
	"bytes"
	"testing"

	. "github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Borrowed payloads (Output.BorrowPayloads): a segment's text is the send
// buffer's own octets, not a copy, wherever the buffer holds it in one
// piece.

func TestBorrowedPayloadsAreTheSendBuffersOctetsWhereTheyLieInOnePiece(t *testing.T) {
	const sndBuf = 3000
	text := make([]byte, testMSS)
	for i := range text {
		text[i] = byte(i*13 + 1)
	}
	cases := []struct {
		name      string
		borrow    bool
		acked     int  // octets sent and acknowledged first: where the ring's head is
		wantAlias bool // the payload lies in the send buffer
	}{
		{"a borrowed payload is the send buffer's octets", true, 0, true},
		{"without borrowing the payload is a copy", false, 0, false},
		{"a borrowed payload the buffer holds in two pieces is joined in a copy", true, sndBuf - 500, false},
		{"a borrowed payload that ends at the buffer's end is its octets", true, sndBuf - testMSS, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.SendBufferSize, cfg.NoDelay = sndBuf, true
			h := tcptest.New(t, cfg).Reach(Established)
			iss := h.TCB().ISS
			if c.acked > 0 {
				h.Write(string(make([]byte, c.acked)))
				h.Discard()
				h.Send(ACK, tcptest.PeerISS+1, iss+1+Seq(c.acked))
				if got := h.TCB().SndUna; got != iss+1+Seq(c.acked) {
					t.Fatalf("SND.UNA %d after the ACK, want %d", got, iss+1+Seq(c.acked))
				}
			}
			out := Output{BorrowPayloads: c.borrow}
			e := h.Endpoint()
			if n, err := e.Send(h.Now(), text, &out); n != len(text) || err != nil {
				t.Fatalf("Send = %d, %v; want %d, nil", n, err, len(text))
			}
			if len(out.Segments) != 1 {
				t.Fatalf("Send emitted %d segments, want 1: %v", len(out.Segments), out.Segments)
			}
			p := out.Segments[0].Payload
			if !bytes.Equal(p, text) {
				t.Fatalf("payload is not the text written (%d octets)", len(p))
			}
			if got := SendBufferHolds(e, p); got != c.wantAlias {
				t.Errorf("payload lies in the send buffer: %v, want %v", got, c.wantAlias)
			}
			if cap(p) != len(p) {
				t.Errorf("payload has capacity %d beyond its %d octets: an append would write into the buffer", cap(p), len(p))
			}
		})
	}
}
