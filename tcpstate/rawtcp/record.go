package rawtcp

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// RecSeg is the part of a segment a record keeps (no payload bytes).
type RecSeg struct {
	SrcPort, DstPort uint16
	Seq, Ack         tcpstate.Seq
	Flags            tcpstate.Flags
	Window           uint16
	Len              int // payload length
	// MSS and WScale are the segment's MSS and window-scale options (a
	// SYN's), MSS 0 and HasWScale false when absent.
	MSS       uint16
	WScale    uint8
	HasWScale bool
	// SACKPermitted, the SACK blocks (the first NumSACK of SACK) and the
	// timestamps (HasTS, TSVal, TSEcr) are the segment's RFC 2018 and
	// RFC 7323 options.
	SACKPermitted bool
	NumSACK       uint8
	SACK          [tcpstate.MaxSACKBlocks]tcpstate.SACKBlock
	HasTS         bool
	TSVal, TSEcr  uint32
}

// SACKBlocks returns the segment's SACK blocks.
func (s *RecSeg) SACKBlocks() []tcpstate.SACKBlock {
	return s.SACK[:min(int(s.NumSACK), tcpstate.MaxSACKBlocks)]
}

func recSeg(s *tcpstate.Segment) RecSeg {
	o := &s.Options
	return RecSeg{SrcPort: s.SrcPort, DstPort: s.DstPort, Seq: s.Seq, Ack: s.Ack, Flags: s.Flags, Window: s.Window, Len: len(s.Payload),
		MSS: o.MSS, WScale: o.WScale, HasWScale: o.HasWScale,
		SACKPermitted: o.SACKPermitted, NumSACK: o.NumSACK, SACK: o.SACK, HasTS: o.HasTimestamps, TSVal: o.TSVal, TSEcr: o.TSEcr}
}

// Record is one segment the stack sent or received, with the lab's state:
// for a received segment the state before and the TCB after processing it,
// for a sent one the TCB when it was emitted. Records are how experiments
// comment every captured packet with the lab's state.
type Record struct {
	At     time.Duration
	Conn   int  // the connection's ID; 0 for the stack's CLOSED responder
	Sent   bool // lab → peer
	Seg    RecSeg
	Before tcpstate.State
	State  tcpstate.State
	TCB    tcpstate.TCB
	Note   string // "dropped by the link", "held by the link", "injected", "no TCB"
	// PeerAddr is the peer's address (its port is in Seg).
	PeerAddr netip.Addr
	// PeerState is the peer's state beside the segment when
	// StackConfig.PeerState is set (the kernel's, from sock_diag).
	PeerState string
}

// Comment renders the record as a packet comment, e.g.
// "lab ESTABLISHED snd.una=… snd.nxt=… rcv.nxt=… wnd=…  (rcvd in SYN-SENT)".
func (r *Record) Comment() string {
	b := make([]byte, 0, 200)
	b = append(b, "lab "...)
	t := r.TCB
	t.State = r.State
	if r.Conn == 0 {
		t = tcpstate.TCB{State: tcpstate.Closed}
	}
	b = t.AppendText(b)
	if t.State != tcpstate.Closed && t.State != tcpstate.Listen {
		b = append(b, " wnd="...)
		b = strconv.AppendUint(b, uint64(t.RcvWnd), 10)
	}
	if !r.Sent && r.Before != r.State {
		b = append(b, " (was "...)
		b = append(b, r.Before.String()...)
		b = append(b, ')')
	}
	if r.Note != "" {
		b = append(b, " ["...)
		b = append(b, r.Note...)
		b = append(b, ']')
	}
	return string(b)
}

// Label is a short ladder label: "SYN|ACK seq=… ack=… len=… win=…".
func (r *Record) Label() string {
	b := make([]byte, 0, 64)
	b = append(b, r.Seg.Flags.String()...)
	b = append(b, " seq="...)
	b = strconv.AppendUint(b, uint64(r.Seg.Seq), 10)
	if r.Seg.Flags&tcpstate.ACK != 0 {
		b = append(b, " ack="...)
		b = strconv.AppendUint(b, uint64(r.Seg.Ack), 10)
	}
	if r.Seg.Len > 0 {
		b = append(b, " len="...)
		b = strconv.AppendUint(b, uint64(r.Seg.Len), 10)
	}
	b = append(b, " win="...)
	b = strconv.AppendUint(b, uint64(r.Seg.Window), 10)
	return string(b)
}
