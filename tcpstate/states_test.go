package tcpstate_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Expected segments, in the compact form fmtSeg prints.
func ackSeg(seq, ack Seq) string { return fmt.Sprintf("ACK seq=%d ack=%d len=0", seq, ack) }
func rstSeg(seq Seq) string      { return fmt.Sprintf("RST seq=%d len=0", seq) }
func rstAckSeg(ack Seq) string   { return fmt.Sprintf("RST|ACK seq=0 ack=%d len=0", ack) }
func synAckSeg(ack Seq) string   { return fmt.Sprintf("SYN|ACK seq=100 ack=%d len=0", ack) }
func finSeg(seq, ack Seq) string { return fmt.Sprintf("FIN|ACK seq=%d ack=%d len=0", seq, ack) }
func pshSeg(seq, ack Seq, n int) string {
	return fmt.Sprintf("PSH|ACK seq=%d ack=%d len=%d", seq, ack, n)
}

// rn and sn are RCV.NXT and SND.NXT, or the values they will have once the
// handshake is done when the state has none yet.
func rnsn(h *tcptest.Peer) (rn, sn, una Seq) {
	t := h.TCB()
	rn, sn, una = t.RcvNxt, t.SndNxt, t.SndUna
	if rn == 0 {
		rn = peerISS + 1
	}
	if sn == 0 {
		sn = localISS + 1
	}
	return
}

// userResult is what a user call returned, for the table to check.
type userResult struct {
	n   int
	err error
}

// stateInputs are the kinds of input every state is tested with, in order.
var stateInputs = []struct {
	name string
	do   func(h *tcptest.Peer) userResult
}{
	{"rcv SYN (peer ISS)", func(h *tcptest.Peer) userResult { h.Send(SYN, peerISS, 0); return userResult{} }},
	{"rcv SYN in window", func(h *tcptest.Peer) userResult {
		rn, _, _ := rnsn(h)
		h.Send(SYN, rn, 0)
		return userResult{}
	}},
	{"rcv SYN,ACK", func(h *tcptest.Peer) userResult { h.Send(SYN|ACK, peerISS, localISS+1); return userResult{} }},
	{"rcv ACK acceptable", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(ACK, rn, sn)
		return userResult{}
	}},
	{"rcv ACK of unsent data", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(ACK, rn, sn+1000)
		return userResult{}
	}},
	{"rcv ACK too old", func(h *tcptest.Peer) userResult {
		rn, _, una := rnsn(h)
		h.Send(ACK, rn, una-100000)
		return userResult{}
	}},
	{"rcv data in window", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(PSH|ACK, rn, sn, tcptest.Text("0123456789"))
		return userResult{}
	}},
	{"rcv data out of order", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(PSH|ACK, rn+100, sn, tcptest.Text("0123456789"))
		return userResult{}
	}},
	{"rcv data old (below RCV.NXT)", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(PSH|ACK, rn-1000, sn, tcptest.Text("0123456789"))
		return userResult{}
	}},
	{"rcv data beyond window", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(PSH|ACK, rn+testRcvBuf+10, sn, tcptest.Text("0123456789"))
		return userResult{}
	}},
	{"rcv FIN", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(FIN|ACK, rn, sn)
		return userResult{}
	}},
	{"rcv RST at RCV.NXT", func(h *tcptest.Peer) userResult {
		rn, _, _ := rnsn(h)
		h.Send(RST, rn, 0)
		return userResult{}
	}},
	{"rcv RST in window", func(h *tcptest.Peer) userResult {
		rn, _, _ := rnsn(h)
		h.Send(RST, rn+100, 0)
		return userResult{}
	}},
	{"rcv RST out of window", func(h *tcptest.Peer) userResult {
		rn, _, _ := rnsn(h)
		h.Send(RST, rn+100000, 0)
		return userResult{}
	}},
	{"rcv RST,ACK", func(h *tcptest.Peer) userResult {
		rn, sn, _ := rnsn(h)
		h.Send(RST|ACK, rn, sn)
		return userResult{}
	}},
	{"user SEND", func(h *tcptest.Peer) userResult {
		var n int
		err := h.Call("SEND", func(e *Endpoint, now time.Duration, out *Output) (err error) {
			n, err = e.Send(now, []byte("hello"), out)
			return err
		})
		return userResult{n, err}
	}},
	{"user RECEIVE", func(h *tcptest.Peer) userResult {
		s, err := h.Read()
		return userResult{len(s), err}
	}},
	{"user CLOSE", func(h *tcptest.Peer) userResult {
		err := h.Call("CLOSE", func(e *Endpoint, now time.Duration, out *Output) error { return e.Close(now, out) })
		return userResult{0, err}
	}},
	{"user ABORT", func(h *tcptest.Peer) userResult {
		err := h.Call("ABORT", func(e *Endpoint, now time.Duration, out *Output) error { return e.Abort(now, out) })
		return userResult{0, err}
	}},
	{"user OPEN (active)", func(h *tcptest.Peer) userResult {
		err := h.Call("OPEN (active)", func(e *Endpoint, now time.Duration, out *Output) error {
			return e.OpenActive(now, localPort, peerPort, out)
		})
		return userResult{0, err}
	}},
	{"timer expiry", func(h *tcptest.Peer) userResult {
		if _, ok := h.Endpoint().NextTimer(); ok {
			h.Fire()
		}
		return userResult{}
	}},
}

// outcome is what a state does with one input: next state, segments sent
// (joined by "; "), and for user calls the count and error.
type outcome struct {
	next State
	segs string
	n    int
	err  error
	tcb  *tcbWant // nil when the connection ends in CLOSED
}

func o(next State, segs ...string) outcome {
	s := ""
	for i, x := range segs {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return outcome{next: next, segs: s}
}

func (x outcome) withErr(err error) outcome { x.err = err; return x }
func (x outcome) withN(n int) outcome       { x.n = n; return x }

var tooOld = Seq(0).Sub(100000)      // 0 - 100000 mod 2^32
var tooOldISS = localISS.Sub(100000) // ISS - 100000 mod 2^32

// stateTable lists, for every state, the outcome of every input kind. With
// the fixed ISS values: ours 100, the peer's 300; RCV.WND 64000.
var stateTable = map[State]map[string]outcome{
	Closed: {
		"rcv SYN (peer ISS)":           o(Closed, rstAckSeg(301)),
		"rcv SYN in window":            o(Closed, rstAckSeg(302)),
		"rcv SYN,ACK":                  o(Closed, rstSeg(101)),
		"rcv ACK acceptable":           o(Closed, rstSeg(101)),
		"rcv ACK of unsent data":       o(Closed, rstSeg(1101)),
		"rcv ACK too old":              o(Closed, rstSeg(tooOld)),
		"rcv data in window":           o(Closed, rstSeg(101)),
		"rcv data out of order":        o(Closed, rstSeg(101)),
		"rcv data old (below RCV.NXT)": o(Closed, rstSeg(101)),
		"rcv data beyond window":       o(Closed, rstSeg(101)),
		"rcv FIN":                      o(Closed, rstSeg(101)),
		"rcv RST at RCV.NXT":           o(Closed),
		"rcv RST in window":            o(Closed),
		"rcv RST out of window":        o(Closed),
		"rcv RST,ACK":                  o(Closed),
		"user SEND":                    o(Closed).withErr(ErrNotConnected),
		"user RECEIVE":                 o(Closed).withErr(ErrNotConnected),
		"user CLOSE":                   o(Closed).withErr(ErrNotConnected),
		"user ABORT":                   o(Closed).withErr(ErrNotConnected),
		"user OPEN (active)":           o(SynSent, "SYN seq=100 len=0").withTCB(100, 101, 0, 0),
		"timer expiry":                 o(Closed),
	},
	Listen: {
		"rcv SYN (peer ISS)":           o(SynReceived, synAckSeg(301)).withTCB(100, 101, 301, 64000),
		"rcv SYN in window":            o(SynReceived, synAckSeg(302)).withTCB(100, 101, 302, 64000),
		"rcv SYN,ACK":                  o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv ACK acceptable":           o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv ACK of unsent data":       o(Listen, rstSeg(1101)).withTCB(0, 0, 0, 0),
		"rcv ACK too old":              o(Listen, rstSeg(tooOld)).withTCB(0, 0, 0, 0),
		"rcv data in window":           o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv data out of order":        o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv data old (below RCV.NXT)": o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv data beyond window":       o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv FIN":                      o(Listen, rstSeg(101)).withTCB(0, 0, 0, 0),
		"rcv RST at RCV.NXT":           o(Listen).withTCB(0, 0, 0, 0),
		"rcv RST in window":            o(Listen).withTCB(0, 0, 0, 0),
		"rcv RST out of window":        o(Listen).withTCB(0, 0, 0, 0),
		"rcv RST,ACK":                  o(Listen).withTCB(0, 0, 0, 0),
		"user SEND":                    o(Listen).withErr(ErrNotConnected).withTCB(0, 0, 0, 0),
		"user RECEIVE":                 o(Listen).withTCB(0, 0, 0, 0),
		"user CLOSE":                   o(Closed),
		"user ABORT":                   o(Closed),
		"user OPEN (active)":           o(SynSent, "SYN seq=100 len=0").withTCB(100, 101, 0, 0),
		"timer expiry":                 o(Listen).withTCB(0, 0, 0, 0),
	},
	SynSent: {
		"rcv SYN (peer ISS)":           o(SynReceived, synAckSeg(301)).withTCB(100, 101, 301, 64000),
		"rcv SYN in window":            o(SynReceived, synAckSeg(302)).withTCB(100, 101, 302, 64000),
		"rcv SYN,ACK":                  o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv ACK acceptable":           o(SynSent).withTCB(100, 101, 0, 0),
		"rcv ACK of unsent data":       o(SynSent, rstSeg(1101)).withTCB(100, 101, 0, 0),
		"rcv ACK too old":              o(SynSent, rstSeg(tooOldISS)).withTCB(100, 101, 0, 0),
		"rcv data in window":           o(SynSent).withTCB(100, 101, 0, 0),
		"rcv data out of order":        o(SynSent).withTCB(100, 101, 0, 0),
		"rcv data old (below RCV.NXT)": o(SynSent).withTCB(100, 101, 0, 0),
		"rcv data beyond window":       o(SynSent).withTCB(100, 101, 0, 0),
		"rcv FIN":                      o(SynSent).withTCB(100, 101, 0, 0),
		"rcv RST at RCV.NXT":           o(SynSent).withTCB(100, 101, 0, 0),
		"rcv RST in window":            o(SynSent).withTCB(100, 101, 0, 0),
		"rcv RST out of window":        o(SynSent).withTCB(100, 101, 0, 0),
		"rcv RST,ACK":                  o(Closed).withErr(ErrConnectionRefused),
		"user SEND":                    o(SynSent).withN(5).withTCB(100, 101, 0, 0),
		"user RECEIVE":                 o(SynSent).withTCB(100, 101, 0, 0),
		"user CLOSE":                   o(Closed),
		"user ABORT":                   o(Closed),
		"user OPEN (active)":           o(SynSent).withErr(ErrConnectionExists).withTCB(100, 101, 0, 0),
		"timer expiry":                 o(SynSent, "SYN seq=100 len=0").withTCB(100, 101, 0, 0),
	},
	SynReceived: {
		"rcv SYN (peer ISS)":           o(SynReceived, synAckSeg(301)).withTCB(100, 101, 301, 64000),
		"rcv SYN in window":            o(Listen).withTCB(0, 0, 0, 0),
		"rcv SYN,ACK":                  o(Established).withTCB(101, 101, 301, 64000),
		"rcv ACK acceptable":           o(Established).withTCB(101, 101, 301, 64000),
		"rcv ACK of unsent data":       o(SynReceived, rstSeg(1101)).withTCB(100, 101, 301, 64000),
		"rcv ACK too old":              o(SynReceived, rstSeg(tooOldISS)).withTCB(100, 101, 301, 64000),
		"rcv data in window":           o(Established, ackSeg(101, 311)).withTCB(101, 101, 311, 64000),
		"rcv data out of order":        o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv data old (below RCV.NXT)": o(SynReceived, ackSeg(101, 301)).withTCB(100, 101, 301, 64000),
		"rcv data beyond window":       o(SynReceived, ackSeg(101, 301)).withTCB(100, 101, 301, 64000),
		"rcv FIN":                      o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv RST at RCV.NXT":           o(Listen).withTCB(0, 0, 0, 0),
		"rcv RST in window":            o(SynReceived, ackSeg(101, 301)).withTCB(100, 101, 301, 64000),
		"rcv RST out of window":        o(SynReceived).withTCB(100, 101, 301, 64000),
		"rcv RST,ACK":                  o(Listen).withTCB(0, 0, 0, 0),
		"user SEND":                    o(SynReceived).withN(5).withTCB(100, 101, 301, 64000),
		"user RECEIVE":                 o(SynReceived).withTCB(100, 101, 301, 64000),
		"user CLOSE":                   o(FinWait1, finSeg(101, 301)).withTCB(100, 102, 301, 64000),
		"user ABORT":                   o(Closed, rstSeg(101)),
		"user OPEN (active)":           o(SynReceived).withErr(ErrConnectionExists).withTCB(100, 101, 301, 64000),
		"timer expiry":                 o(SynReceived, synAckSeg(301)).withTCB(100, 101, 301, 64000),
	},
	Established: {
		"rcv SYN (peer ISS)":           o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv SYN in window":            o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv SYN,ACK":                  o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv ACK acceptable":           o(Established).withTCB(101, 101, 301, 64000),
		"rcv ACK of unsent data":       o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv ACK too old":              o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv data in window":           o(Established, ackSeg(101, 311)).withTCB(101, 101, 311, 64000),
		"rcv data out of order":        o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv data old (below RCV.NXT)": o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv data beyond window":       o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv FIN":                      o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed).withErr(ErrConnectionReset),
		"rcv RST in window":            o(Established, ackSeg(101, 301)).withTCB(101, 101, 301, 64000),
		"rcv RST out of window":        o(Established).withTCB(101, 101, 301, 64000),
		"rcv RST,ACK":                  o(Closed).withErr(ErrConnectionReset),
		"user SEND":                    o(Established, pshSeg(101, 301, 5)).withN(5).withTCB(101, 106, 301, 64000),
		"user RECEIVE":                 o(Established).withTCB(101, 101, 301, 64000),
		"user CLOSE":                   o(FinWait1, finSeg(101, 301)).withTCB(101, 102, 301, 64000),
		"user ABORT":                   o(Closed, rstSeg(101)),
		"user OPEN (active)":           o(Established).withErr(ErrConnectionExists).withTCB(101, 101, 301, 64000),
		"timer expiry":                 o(Established).withTCB(101, 101, 301, 64000),
	},
	FinWait1: {
		"rcv SYN (peer ISS)":           o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv SYN in window":            o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv SYN,ACK":                  o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv ACK acceptable":           o(FinWait2).withTCB(102, 102, 301, 64000),
		"rcv ACK of unsent data":       o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv ACK too old":              o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv data in window":           o(FinWait2, ackSeg(102, 311)).withTCB(102, 102, 311, 64000),
		"rcv data out of order":        o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv data old (below RCV.NXT)": o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv data beyond window":       o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv FIN":                      o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed).withErr(ErrConnectionReset),
		"rcv RST in window":            o(FinWait1, ackSeg(102, 301)).withTCB(101, 102, 301, 64000),
		"rcv RST out of window":        o(FinWait1).withTCB(101, 102, 301, 64000),
		"rcv RST,ACK":                  o(Closed).withErr(ErrConnectionReset),
		"user SEND":                    o(FinWait1).withErr(ErrClosing).withTCB(101, 102, 301, 64000),
		"user RECEIVE":                 o(FinWait1).withTCB(101, 102, 301, 64000),
		"user CLOSE":                   o(FinWait1).withErr(ErrClosing).withTCB(101, 102, 301, 64000),
		"user ABORT":                   o(Closed, rstSeg(102)),
		"user OPEN (active)":           o(FinWait1).withErr(ErrConnectionExists).withTCB(101, 102, 301, 64000),
		"timer expiry":                 o(FinWait1, finSeg(101, 301)).withTCB(101, 102, 301, 64000),
	},
	FinWait2: {
		"rcv SYN (peer ISS)":           o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv SYN in window":            o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv SYN,ACK":                  o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv ACK acceptable":           o(FinWait2).withTCB(102, 102, 301, 64000),
		"rcv ACK of unsent data":       o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv ACK too old":              o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv data in window":           o(FinWait2, ackSeg(102, 311)).withTCB(102, 102, 311, 64000),
		"rcv data out of order":        o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv data old (below RCV.NXT)": o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv data beyond window":       o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv FIN":                      o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed).withErr(ErrConnectionReset),
		"rcv RST in window":            o(FinWait2, ackSeg(102, 301)).withTCB(102, 102, 301, 64000),
		"rcv RST out of window":        o(FinWait2).withTCB(102, 102, 301, 64000),
		"rcv RST,ACK":                  o(Closed).withErr(ErrConnectionReset),
		"user SEND":                    o(FinWait2).withErr(ErrClosing).withTCB(102, 102, 301, 64000),
		"user RECEIVE":                 o(FinWait2).withTCB(102, 102, 301, 64000),
		"user CLOSE":                   o(FinWait2).withErr(ErrClosing).withTCB(102, 102, 301, 64000),
		"user ABORT":                   o(Closed, rstSeg(102)),
		"user OPEN (active)":           o(FinWait2).withErr(ErrConnectionExists).withTCB(102, 102, 301, 64000),
		"timer expiry":                 o(FinWait2).withTCB(102, 102, 301, 64000),
	},
	CloseWait: {
		"rcv SYN (peer ISS)":           o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv SYN in window":            o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv SYN,ACK":                  o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv ACK acceptable":           o(CloseWait).withTCB(101, 101, 302, 64000),
		"rcv ACK of unsent data":       o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv ACK too old":              o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv data in window":           o(CloseWait).withTCB(101, 101, 302, 64000),
		"rcv data out of order":        o(CloseWait).withTCB(101, 101, 302, 64000),
		"rcv data old (below RCV.NXT)": o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv data beyond window":       o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv FIN":                      o(CloseWait).withTCB(101, 101, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed).withErr(ErrConnectionReset),
		"rcv RST in window":            o(CloseWait, ackSeg(101, 302)).withTCB(101, 101, 302, 64000),
		"rcv RST out of window":        o(CloseWait).withTCB(101, 101, 302, 64000),
		"rcv RST,ACK":                  o(Closed).withErr(ErrConnectionReset),
		"user SEND":                    o(CloseWait, pshSeg(101, 302, 5)).withN(5).withTCB(101, 106, 302, 64000),
		"user RECEIVE":                 o(CloseWait).withErr(io.EOF).withTCB(101, 101, 302, 64000),
		"user CLOSE":                   o(LastAck, finSeg(101, 302)).withTCB(101, 102, 302, 64000),
		"user ABORT":                   o(Closed, rstSeg(101)),
		"user OPEN (active)":           o(CloseWait).withErr(ErrConnectionExists).withTCB(101, 101, 302, 64000),
		"timer expiry":                 o(CloseWait).withTCB(101, 101, 302, 64000),
	},
	Closing: {
		"rcv SYN (peer ISS)":           o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv SYN in window":            o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv SYN,ACK":                  o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv ACK acceptable":           o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv ACK of unsent data":       o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv ACK too old":              o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv data in window":           o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv data out of order":        o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv data old (below RCV.NXT)": o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv data beyond window":       o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv FIN":                      o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed),
		"rcv RST in window":            o(Closing, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv RST out of window":        o(Closing).withTCB(101, 102, 302, 64000),
		"rcv RST,ACK":                  o(Closed),
		"user SEND":                    o(Closing).withErr(ErrClosing).withTCB(101, 102, 302, 64000),
		"user RECEIVE":                 o(Closing).withErr(io.EOF).withTCB(101, 102, 302, 64000),
		"user CLOSE":                   o(Closing).withErr(ErrClosing).withTCB(101, 102, 302, 64000),
		"user ABORT":                   o(Closed),
		"user OPEN (active)":           o(Closing).withErr(ErrConnectionExists).withTCB(101, 102, 302, 64000),
		"timer expiry":                 o(Closing, finSeg(101, 302)).withTCB(101, 102, 302, 64000),
	},
	LastAck: {
		"rcv SYN (peer ISS)":           o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv SYN in window":            o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv SYN,ACK":                  o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv ACK acceptable":           o(Closed),
		"rcv ACK of unsent data":       o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv ACK too old":              o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv data in window":           o(Closed),
		"rcv data out of order":        o(Closed),
		"rcv data old (below RCV.NXT)": o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv data beyond window":       o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv FIN":                      o(Closed),
		"rcv RST at RCV.NXT":           o(Closed),
		"rcv RST in window":            o(LastAck, ackSeg(102, 302)).withTCB(101, 102, 302, 64000),
		"rcv RST out of window":        o(LastAck).withTCB(101, 102, 302, 64000),
		"rcv RST,ACK":                  o(Closed),
		"user SEND":                    o(LastAck).withErr(ErrClosing).withTCB(101, 102, 302, 64000),
		"user RECEIVE":                 o(LastAck).withErr(io.EOF).withTCB(101, 102, 302, 64000),
		"user CLOSE":                   o(LastAck).withErr(ErrClosing).withTCB(101, 102, 302, 64000),
		"user ABORT":                   o(Closed),
		"user OPEN (active)":           o(LastAck).withErr(ErrConnectionExists).withTCB(101, 102, 302, 64000),
		"timer expiry":                 o(LastAck, finSeg(101, 302)).withTCB(101, 102, 302, 64000),
	},
	TimeWait: {
		"rcv SYN (peer ISS)":           o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv SYN in window":            o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv SYN,ACK":                  o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv ACK acceptable":           o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv ACK of unsent data":       o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv ACK too old":              o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv data in window":           o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv data out of order":        o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv data old (below RCV.NXT)": o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv data beyond window":       o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv FIN":                      o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv RST at RCV.NXT":           o(Closed),
		"rcv RST in window":            o(TimeWait, ackSeg(102, 302)).withTCB(102, 102, 302, 64000),
		"rcv RST out of window":        o(TimeWait).withTCB(102, 102, 302, 64000),
		"rcv RST,ACK":                  o(Closed),
		"user SEND":                    o(TimeWait).withErr(ErrClosing).withTCB(102, 102, 302, 64000),
		"user RECEIVE":                 o(TimeWait).withErr(io.EOF).withTCB(102, 102, 302, 64000),
		"user CLOSE":                   o(TimeWait).withErr(ErrClosing).withTCB(102, 102, 302, 64000),
		"user ABORT":                   o(Closed),
		"user OPEN (active)":           o(TimeWait).withErr(ErrConnectionExists).withTCB(102, 102, 302, 64000),
		"timer expiry":                 o(Closed),
	},
}

// TestStateInputs drives every state with every kind of input and checks the
// next state, the segments sent, the call's result and TCB invariants.
func TestStateInputs(t *testing.T) { runStateInputs(t, false) }

// TestStateInputsWithSACKAndTimestamps runs the same table against a peer
// that negotiated SACK and timestamps (every segment of the peer carries
// TSval/TSecr): the options change no state, no segment and no result.
func TestStateInputsWithSACKAndTimestamps(t *testing.T) { runStateInputs(t, true) }

func runStateInputs(t *testing.T, negotiate bool) {
	for _, st := range States() {
		row, ok := stateTable[st]
		if !ok {
			t.Fatalf("no table for %v", st)
		}
		if len(row) != len(stateInputs) {
			t.Errorf("%v: %d outcomes for %d inputs", st, len(row), len(stateInputs))
		}
		for _, in := range stateInputs {
			want, ok := row[in.name]
			if !ok {
				t.Errorf("%v: no outcome for %q", st, in.name)
				continue
			}
			t.Run(st.String()+"/"+in.name, func(t *testing.T) {
				h := tcptest.New(t, testConfig())
				if negotiate {
					h.Negotiate()
				}
				h.Reach(st)
				before := h.TCB()
				if negotiate && st.Synchronized() && (!before.SACKOK || !before.TSOK) {
					t.Fatalf("SACK %v, timestamps %v after a handshake that offered both", before.SACKOK, before.TSOK)
				}
				res := in.do(h)
				wantSegs(t, h, splitSegs(want.segs)...)
				h.WantState(want.next)
				if res.n != want.n {
					t.Errorf("call returned n=%d, want %d", res.n, want.n)
				}
				// A user call returns the error; a segment that kills the
				// connection leaves it in Err.
				got := res.err
				if got == nil && want.next == Closed {
					got = h.Endpoint().Err()
					if errors.Is(got, ErrConnectionAborted) {
						got = nil
					}
				}
				if want.err == nil && got != nil && !(st == Closed) {
					t.Errorf("error %v, want none", got)
				}
				if want.err != nil && !errors.Is(got, want.err) {
					t.Errorf("error %v, want %v", got, want.err)
				}
				checkTCB(t, h, before)
				checkTCBWant(t, h, want)
			})
		}
	}
}

// fmtSeg is a segment in the compact form of the table.
func fmtSeg(s *Segment) string {
	str := s.Flags.String() + fmt.Sprintf(" seq=%d", s.Seq)
	if s.Flags&ACK != 0 {
		str += fmt.Sprintf(" ack=%d", s.Ack)
	}
	return str + fmt.Sprintf(" len=%d", len(s.Payload))
}

// wantSegs checks every pending segment against the table's compact
// strings.
func wantSegs(t *testing.T, h *tcptest.Peer, want ...string) {
	t.Helper()
	var got []string
	for _, s := range h.Discard() {
		got = append(got, fmtSeg(&s))
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("segments:\n got  %q\n want %q\nladder:\n%s", got, want, h.Ladder())
	}
}

func splitSegs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "; ")
}

// checkTCB checks invariants that hold after any input.
func checkTCB(t *testing.T, h *tcptest.Peer, before TCB) {
	t.Helper()
	tc := h.TCB()
	if tc.State == Closed || tc.State == Listen {
		return
	}
	if tc.SndNxt.LessThan(tc.SndUna) {
		t.Errorf("SND.NXT %d before SND.UNA %d", tc.SndNxt, tc.SndUna)
	}
	if tc.SndUna.LessThan(before.SndUna) && before.State != Listen && before.State != Closed {
		t.Errorf("SND.UNA went back from %d to %d", before.SndUna, tc.SndUna)
	}
	if tc.RcvNxt.LessThan(before.RcvNxt) && before.RcvNxt != 0 {
		t.Errorf("RCV.NXT went back from %d to %d", before.RcvNxt, tc.RcvNxt)
	}
	if int(tc.RcvWnd) != RecvFree(h.Endpoint()) {
		t.Errorf("RCV.WND %d, free buffer %d", tc.RcvWnd, RecvFree(h.Endpoint()))
	}
	if tc.State.Synchronized() && tc.SndUna != tc.ISS && tc.Cwnd == 0 {
		t.Errorf("cwnd is zero in %v", tc.State)
	}
}
