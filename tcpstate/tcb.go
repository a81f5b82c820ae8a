package tcpstate

import (
	"strconv"
	"time"
)

// TCB is the transmission control block of RFC 9293 §3.3.1 plus the
// congestion and RTT state of RFC 5681/6298. Endpoint.TCB returns a copy, so
// a driver can print it beside each packet.
//
//	     1         2          3          4
//	----------|----------|----------|----------
//	       SND.UNA    SND.NXT    SND.UNA
//	                            +SND.WND
//	1 - old sequence numbers that have been acknowledged
//	2 - sequence numbers of unacknowledged data
//	3 - sequence numbers allowed for new data transmission
//	4 - future sequence numbers that are not yet allowed
type TCB struct {
	State      State
	LocalPort  uint16
	RemotePort uint16

	ISS    Seq    // initial send sequence number
	SndUna Seq    // oldest unacknowledged sequence number
	SndNxt Seq    // next new sequence number to send (highest sent + 1)
	SndWnd uint32 // send window in octets, already scaled
	SndWL1 Seq    // segment sequence number used for the last window update
	SndWL2 Seq    // segment acknowledgment number used for the last window update

	IRS    Seq    // initial receive sequence number
	RcvNxt Seq    // next sequence number expected
	RcvWnd uint32 // receive window in octets (free receive buffer)

	SndMSS    uint16 // effective send MSS (peer's option, default 536)
	SndWScale uint8  // shift applied to the peer's window field
	RcvWScale uint8  // shift applied to the window field we send

	Cwnd     uint32 // congestion window in octets (RFC 5681)
	Ssthresh uint32 // slow start threshold in octets

	SRTT   time.Duration // smoothed RTT, 0 before the first sample
	RTTVar time.Duration // RTT variation
	RTO    time.Duration // current retransmission timeout (with backoff)

	SACKOK bool // both SYNs carried SACK-permitted (RFC 2018)
	TSOK   bool // both SYNs carried timestamps (RFC 7323)
	// TSRecent is TS.Recent, the peer's TSval echoed in TSecr (RFC 7323 §4.3).
	TSRecent uint32
	// SACKed is how many octets above SND.UNA the peer has SACKed: the
	// RFC 6675 scoreboard.
	SACKed uint32
	// InSACKRecovery is set during RFC 6675 loss recovery.
	InSACKRecovery bool
	// PAWSRejected counts segments refused by PAWS (RFC 7323 §5.3 R1).
	PAWSRejected uint32
	// TSRTTSamples counts the RTT samples taken from TSecr (RFC 7323 §4).
	TSRTTSamples uint32
	ACKDelayed   bool       // the ACK of received data is being delayed (delack.go)
	Held         HoldReason // queued data waits for Nagle or SWS avoidance (sendpolicy.go)
}

// String returns a one-line summary such as
// "ESTABLISHED snd.una=1001 snd.nxt=2461 snd.wnd=65535 rcv.nxt=301 rcv.wnd=262144 cwnd=4380 ssthresh=1073741824".
func (t *TCB) String() string {
	var buf [200]byte
	return string(t.AppendText(buf[:0]))
}

// AppendText appends String's text to b without allocating.
func (t *TCB) AppendText(b []byte) []byte {
	u := func(b []byte, name string, v uint64) []byte {
		b = append(b, ' ')
		b = append(b, name...)
		b = append(b, '=')
		return strconv.AppendUint(b, v, 10)
	}
	b = append(b, t.State.String()...)
	if t.State == Closed || t.State == Listen {
		return b
	}
	b = u(b, "snd.una", uint64(t.SndUna))
	b = u(b, "snd.nxt", uint64(t.SndNxt))
	b = u(b, "snd.wnd", uint64(t.SndWnd))
	b = u(b, "rcv.nxt", uint64(t.RcvNxt))
	b = u(b, "rcv.wnd", uint64(t.RcvWnd))
	b = u(b, "cwnd", uint64(t.Cwnd))
	b = u(b, "ssthresh", uint64(t.Ssthresh))
	if t.SACKed > 0 {
		b = u(b, "sacked", uint64(t.SACKed))
	}
	if t.InSACKRecovery {
		b = append(b, " sack-recovery"...)
	}
	if t.TSOK {
		b = u(b, "ts.recent", uint64(t.TSRecent))
	}
	if t.ACKDelayed {
		b = append(b, " ack-delayed"...)
	}
	if t.Held != HoldNone {
		b = append(b, " held="...)
		b = append(b, t.Held.String()...)
	}
	return b
}
