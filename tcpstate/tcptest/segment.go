package tcptest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/statelab/statelab/tcpstate"
)

// Opt adds to a segment the peer sends (Send) or to what a Want checks.
type Opt func(*spec)

// spec is a segment and which of its fields were given.
type spec struct {
	seg tcpstate.Segment
	n   int // payload length (Len, or the length of Text/Data)
	set fields
}

type fields uint16

const (
	setPayload fields = 1 << iota
	setLen
	setWindow
	setMSS
	setWScale
	setPorts
	setSACKOK
	setTS
	setSACK
)

// Text is the segment's payload.
func Text(s string) Opt { return Data([]byte(s)) }

// Data is the segment's payload.
func Data(b []byte) Opt {
	return func(s *spec) { s.seg.Payload, s.n, s.set = b, len(b), s.set|setPayload|setLen }
}

// Len is the payload's length: n zero octets when the peer sends, any n
// octets when a Want checks.
func Len(n int) Opt { return func(s *spec) { s.n, s.set = n, s.set|setLen } }

// Win is the window field.
func Win(w uint16) Opt { return func(s *spec) { s.seg.Window, s.set = w, s.set|setWindow } }

// MSS is the MSS option.
func MSS(m uint16) Opt { return func(s *spec) { s.seg.Options.MSS, s.set = m, s.set|setMSS } }

// WScale is the window scale option with shift count shift.
func WScale(shift uint8) Opt {
	return func(s *spec) {
		s.seg.Options.HasWScale, s.seg.Options.WScale, s.set = true, shift, s.set|setWScale
	}
}

// SACKOK is the SACK-permitted option (RFC 2018).
func SACKOK() Opt {
	return func(s *spec) { s.seg.Options.SACKPermitted, s.set = true, s.set|setSACKOK }
}

// TS is the timestamps option (RFC 7323) with TSval val and TSecr ecr.
func TS(val, ecr uint32) Opt {
	return func(s *spec) {
		o := &s.seg.Options
		o.HasTimestamps, o.TSVal, o.TSEcr, s.set = true, val, ecr, s.set|setTS
	}
}

// SACK is a SACK option with the blocks given as left, right pairs, the
// first block first. A Want with SACK() and no pairs checks that the
// segment carries no SACK option.
func SACK(edges ...tcpstate.Seq) Opt {
	return func(s *spec) {
		s.set |= setSACK
		for i := 0; i+1 < len(edges); i += 2 {
			s.seg.Options.AddSACK(tcpstate.SACKBlock{Left: edges[i], Right: edges[i+1]})
		}
	}
}

// Ports are the segment's source and destination ports, as its sender
// writes them (for a segment that belongs to another connection).
func Ports(src, dst uint16) Opt {
	return func(s *spec) { s.seg.SrcPort, s.seg.DstPort, s.set = src, dst, s.set|setPorts }
}

func newSpec(flags tcpstate.Flags, seq, ack tcpstate.Seq, opts []Opt) spec {
	s := spec{seg: tcpstate.Segment{Flags: flags, Seq: seq, Ack: ack}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// String is the expectation in the form Segment.String prints, with only
// the fields it checks: "ACK seq=101 ack=302 len=0".
func (s spec) String() string {
	var b strings.Builder
	b.WriteString(s.seg.Flags.String())
	fmt.Fprintf(&b, " seq=%d", s.seg.Seq)
	if s.seg.Flags&tcpstate.ACK != 0 {
		fmt.Fprintf(&b, " ack=%d", s.seg.Ack)
	}
	if s.set&setWindow != 0 {
		fmt.Fprintf(&b, " win=%d", s.seg.Window)
	}
	fmt.Fprintf(&b, " len=%d", s.n)
	if s.set&setPayload != 0 {
		b.WriteString(" text=" + strconv.Quote(string(s.seg.Payload)))
	}
	if s.set&setMSS != 0 {
		fmt.Fprintf(&b, " mss=%d", s.seg.Options.MSS)
	}
	if s.set&setWScale != 0 {
		fmt.Fprintf(&b, " ws=%d", s.seg.Options.WScale)
	}
	if s.set&setSACKOK != 0 {
		b.WriteString(" sackok")
	}
	if s.set&setSACK != 0 {
		b.WriteString(" sack=")
		for i, k := range s.seg.Options.SACKBlocks() {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", k.Left, k.Right)
		}
		if s.seg.Options.NumSACK == 0 {
			b.WriteString("none")
		}
	}
	if s.set&setTS != 0 {
		fmt.Fprintf(&b, " ts=%d/%d", s.seg.Options.TSVal, s.seg.Options.TSEcr)
	}
	if s.set&setPorts != 0 {
		fmt.Fprintf(&b, " ports %d->%d", s.seg.SrcPort, s.seg.DstPort)
	}
	return b.String()
}

// diff names the first field of got that the expectation rejects, or "".
func (s spec) diff(got *tcpstate.Segment) string {
	w := &s.seg
	src, dst := LocalPort, PeerPort
	if s.set&setPorts != 0 {
		src, dst = w.SrcPort, w.DstPort
	}
	switch {
	case got.Flags != w.Flags:
		return "flags"
	case got.Seq != w.Seq:
		return "seq"
	case w.Flags&tcpstate.ACK != 0 && got.Ack != w.Ack:
		return "ack"
	case len(got.Payload) != s.n:
		return "payload length"
	case s.set&setPayload != 0 && !bytes.Equal(got.Payload, w.Payload):
		return "payload"
	case s.set&setWindow != 0 && got.Window != w.Window:
		return "window"
	case s.set&setMSS != 0 && got.Options.MSS != w.Options.MSS:
		return "MSS option"
	case s.set&setWScale != 0 && (!got.Options.HasWScale || got.Options.WScale != w.Options.WScale):
		return "window scale option"
	case s.set&setSACKOK != 0 && !got.Options.SACKPermitted:
		return "SACK-permitted option"
	case s.set&setTS != 0 && (!got.Options.HasTimestamps || got.Options.TSVal != w.Options.TSVal || got.Options.TSEcr != w.Options.TSEcr):
		return "timestamps option"
	case s.set&setSACK != 0 && !sameSACK(got.Options.SACKBlocks(), w.Options.SACKBlocks()):
		return "SACK blocks"
	case got.SrcPort != src || got.DstPort != dst:
		return fmt.Sprintf("ports %d->%d", got.SrcPort, got.DstPort)
	}
	return ""
}

func sameSACK(a, b []tcpstate.SACKBlock) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// exactDiff names the first field in which got differs from want, or "".
func exactDiff(want, got *tcpstate.Segment) string {
	wo, gotO := want.Options, got.Options
	switch {
	case got.SrcPort != want.SrcPort || got.DstPort != want.DstPort:
		return fmt.Sprintf("ports %d->%d", got.SrcPort, got.DstPort)
	case got.Flags != want.Flags:
		return "flags"
	case got.Seq != want.Seq:
		return "seq"
	case got.Ack != want.Ack:
		return fmt.Sprintf("ack %d", got.Ack)
	case got.Window != want.Window:
		return "window"
	case got.Urgent != want.Urgent:
		return fmt.Sprintf("urgent pointer %d", got.Urgent)
	case gotO.MSS != wo.MSS || gotO.HasWScale != wo.HasWScale || gotO.WScale != wo.WScale ||
		gotO.SACKPermitted != wo.SACKPermitted || gotO.HasTimestamps != wo.HasTimestamps ||
		gotO.TSVal != wo.TSVal || gotO.TSEcr != wo.TSEcr || !sameSACK(gotO.SACKBlocks(), wo.SACKBlocks()) || !bytes.Equal(gotO.Extra, wo.Extra):
		return fmt.Sprintf("options %+v", gotO)
	case !bytes.Equal(got.Payload, want.Payload):
		return fmt.Sprintf("payload %q", got.Payload)
	}
	return ""
}
