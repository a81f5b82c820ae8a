package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// closedPort probes the kernel's TCP: a SYN to a port nobody listens on is
// answered with RST,ACK (RFC 9293 §3.10.7.1), and the caller's connect
// fails with ECONNREFUSED. The capture holds both segments, each with a
// comment saying what it is.
var closedPort = lab.Experiment{
	Name:    "kernel/closed-port",
	Summary: "a SYN to a closed port draws RST,ACK from the kernel: the capture shows both, commented",
	Shows:   "the kernel's TCP refuses a connection to a closed port with RST,ACK, acknowledging the SYN",
	Run:     runClosedPort,
}

func runClosedPort(env *lab.Env) error {
	port, err := closedTCPPort()
	if err != nil {
		return err
	}
	cap, err := env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && m.Proto == capture.ProtoTCP && m.Involves(port)
	}})
	if err != nil {
		return err
	}

	// Drive: one connection attempt, refused.
	d := net.Dialer{Timeout: 2 * time.Second}
	_, dialErr := d.DialContext(env.Ctx, "tcp4", fmt.Sprintf("127.0.0.1:%d", port))
	env.Check("connect is refused", errors.Is(dialErr, syscall.ECONNREFUSED), "connect: %v", dialErr)

	// Capture: the caller's one SYN and the kernel's one reply, counted by
	// the experiment's design (one attempt, no retry after a RST).
	pkts, err := cap.StopWhen(func(p []*capture.Packet) bool { return len(p) >= 2 })
	if err != nil {
		return err
	}
	if !env.CaptureComplete(cap, len(pkts), 2, "segments", "the one connect attempt: its SYN and the reply") {
		return nil
	}

	// Analyse: comment each segment with what it is.
	syn, rst := pkts[0], pkts[1]
	ms, _ := syn.Decode()
	mr, _ := rst.Decode()
	syn.Comment(fmt.Sprintf("client SYN to closed port %d, seq %d (the client's ISS)", port, ms.Seq))
	rst.Comment(fmt.Sprintf("kernel RST,ACK: no socket listens on %d; ack %d = ISS+1 acknowledges the SYN", port, mr.Ack))
	l := env.Ladder("the refused connection, as captured", "client", "kernel")
	l.Send("SYN", "SYN-SENT", "")
	l.Reply("RST,ACK", "CLOSED (ECONNREFUSED)", "no listener")

	// Check.
	env.Check("the first segment is the client's SYN", ms.Flags == capture.FlagSYN, "flags %#x", ms.Flags)
	env.Check("the kernel answers RST,ACK", mr.Flags == capture.FlagRST|capture.FlagACK, "flags %#x", mr.Flags)
	env.Check("the RST acknowledges the SYN", mr.Ack == ms.Seq+1, "ack %d, SYN seq %d", mr.Ack, ms.Seq)
	env.Metric("segments_count", float64(len(pkts)))
	return nil
}

// closedTCPPort finds a port nobody listens on: one the kernel just gave
// a listener, closed again.
func closedTCPPort() (uint16, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	return port, ln.Close()
}
