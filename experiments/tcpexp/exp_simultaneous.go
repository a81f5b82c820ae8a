package tcpexp

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/simultaneous: the lab and a kernel socket open a connection to each
// other at once (their SYNs cross on the link), then close it at once
// (their FINs cross).
func runSimultaneous(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	x := &simultaneous{labRun: r}
	if err := x.open(); err != nil {
		return err
	}
	defer x.k.Close()
	if err := x.close(); err != nil {
		return err
	}
	r.stop()
	x.analyse()
	r.ladder("simultaneous open and close", x.c)
	r.states(tcpstate.SynSent, tcpstate.SynReceived, tcpstate.Established, tcpstate.FinWait1, tcpstate.Closing, tcpstate.TimeWait, tcpstate.Closed)
	return nil
}

// simultaneous is the lab's connection, the kernel's socket and its
// address.
type simultaneous struct {
	*labRun
	c     *rawtcp.Conn
	k     net.Conn
	kaddr netip.AddrPort
}

// holdUntil is a pair of hooks that hold the first of the lab's segments
// with flags until the kernel's segment with flags has arrived (its
// retransmissions are lost on the link meanwhile: they carry the same
// sequence number, so the held one stands for them). The lab's answer to
// the kernel's segment passes and releases the held one first. Both hooks
// run under the connection's lock.
func holdUntil(send func(*tcpstate.Segment) bool, recv func(*tcpstate.Segment) bool) (sendHook, recvHook rawtcp.Hook) {
	arrived, held := false, false
	sendHook = func(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
		if send(s) && !arrived {
			if held {
				return rawtcp.Drop
			}
			held = true
			return rawtcp.Hold
		}
		return rawtcp.Pass
	}
	recvHook = func(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
		if recv(s) {
			arrived = true
		}
		return rawtcp.Pass
	}
	return sendHook, recvHook
}

// open: the lab's SYN is held until the kernel's connect() SYN has
// arrived, however late the kernel starts, so the lab goes SYN-SENT →
// SYN-RECEIVED → ESTABLISHED.
func (x *simultaneous) open() error {
	env, ctx := x.env, x.env.Ctx
	// The kernel's port: reserve one by listening briefly, then connect
	// from it (SO_REUSEADDR lets the kernel socket bind it again).
	tmp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	x.kaddr = netip.MustParseAddrPort(tmp.Addr().String())
	tmp.Close()
	hook, rhook := holdUntil(
		func(s *tcpstate.Segment) bool { return s.Flags == tcpstate.SYN },
		func(s *tcpstate.Segment) bool { return s.Flags&(tcpstate.SYN|tcpstate.ACK) == tcpstate.SYN })
	x.c, err = x.st.Dial(ctx, x.kaddr, &rawtcp.ConnOptions{SendHook: hook, RecvHook: rhook, NoWait: true})
	x.track(x.c, "simultaneous")
	if err != nil {
		return err
	}
	type res struct {
		c   net.Conn
		err error
	}
	kc := make(chan res, 1)
	go func() {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(x.kaddr), Timeout: 5 * time.Second}
		k, err := d.DialContext(ctx, "tcp4", x.c.Local().String())
		kc <- res{k, err}
	}()
	if err := x.c.WaitFor(ctx, func(s tcpstate.State) bool { return s != tcpstate.SynSent && s != tcpstate.SynReceived }); err != nil {
		return err
	}
	kr := <-kc
	if kr.err != nil {
		return fmt.Errorf("kernel connect: %w", kr.err)
	}
	x.k = kr.c
	env.Check("simultaneous open: SYN-SENT → SYN-RECEIVED → ESTABLISHED", hasPath(x.c, tcpstate.SynSent, tcpstate.SynReceived, tcpstate.Established), "%s", path(x.c))
	kst := rawtcp.KernelStateOr(x.kaddr, x.c.Local())
	env.Check("the kernel's connect() succeeds", kst == "ESTABLISHED", "kernel socket %s", kst)
	return nil
}

// close: the lab's FIN is held until the kernel's FIN is in; the lab's
// ACK of the kernel's FIN then releases it first, so the lab's FIN does
// not acknowledge the kernel's and both sides pass through CLOSING.
func (x *simultaneous) close() error {
	env, ctx := x.env, x.env.Ctx
	fin := func(s *tcpstate.Segment) bool { return s.Flags&tcpstate.FIN != 0 }
	hook, rhook := holdUntil(fin, fin)
	x.c.Faults().SetRecvHook(rhook)
	x.c.Faults().SetSendHook(hook)
	if err := x.c.CloseWrite(); err != nil {
		return err
	}
	_ = x.k.Close()
	if err := x.c.WaitState(ctx, tcpstate.Closed); err != nil {
		return err
	}
	env.Check("simultaneous close: FIN-WAIT-1 → CLOSING → TIME-WAIT → CLOSED", hasPath(x.c, tcpstate.FinWait1, tcpstate.Closing, tcpstate.TimeWait, tcpstate.Closed), "%s", path(x.c))
	var b [1]byte
	_, rerr := x.c.ReadContext(ctx, b[:])
	env.Check("the lab reads EOF", rerr == io.EOF, "%v", rerr)
	return nil
}

// analyse reads the kernel's CLOSING from the capture and explains the
// SYN,ACKs Wireshark calls retransmissions.
func (x *simultaneous) analyse() {
	// The kernel's CLOSING, from the capture: its FIN went out, then the
	// lab's FIN arrived without acknowledging it (FIN-WAIT-1 → CLOSING), and
	// the kernel acknowledged the lab's FIN with a sequence number past its
	// own FIN. Read from the wire, not from a state lookup racing the
	// kernel's next step.
	closing, why := kernelClosing(x.pkts, x.kaddr, x.c.Local())
	x.env.Check("the kernel passes through CLOSING too (its FIN, then the lab's FIN not acknowledging it, then its ACK of the lab's FIN)", closing, "%s", why)
	// Wireshark flags each side's SYN,ACK as a retransmission: it repeats
	// the sequence number of that side's SYN. Say so on those packets.
	for _, p := range x.pkts {
		if m, ok := p.Decode(); ok && m.Flags&0x12 == 0x12 {
			p.Comment("simultaneous open: this SYN,ACK repeats the SYN's sequence number, so Wireshark's tcp.analysis " +
				"marks it a retransmission; it is the RFC 9293 §3.5 Figure 8 answer to the crossing SYN, not a resend")
		}
	}
}

// kernelClosing finds the signature of the kernel's CLOSING state in the
// capture of a simultaneous close between kernel (the kernel's end) and
// lab: the kernel's FIN at sequence f, then the lab's FIN with an ACK
// below f+1, then a kernel ACK of the lab's FIN with sequence f+1.
func kernelClosing(pkts []*capture.Packet, kernel, lab netip.AddrPort) (bool, string) {
	const fin, ack = 0x01, 0x10
	var kfin, lfin *capture.Meta
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok {
			continue
		}
		fromKernel := m.Src == kernel && m.Dst == lab
		fromLab := m.Src == lab && m.Dst == kernel
		switch {
		case fromKernel && m.Flags&fin != 0 && kfin == nil:
			kfin = &m
		case fromLab && m.Flags&fin != 0 && kfin != nil && lfin == nil:
			if m.Ack == kfin.Seq+uint32(len(kfin.Payload))+1 {
				return false, "the lab's FIN acknowledged the kernel's FIN: the kernel went FIN-WAIT-1 → TIME-WAIT"
			}
			lfin = &m
		case fromKernel && m.Flags&ack != 0 && lfin != nil &&
			m.Ack == lfin.Seq+uint32(len(lfin.Payload))+1 && m.Seq == kfin.Seq+uint32(len(kfin.Payload))+1:
			return true, fmt.Sprintf("kernel FIN seq=%d; lab FIN seq=%d ack=%d; kernel ACK seq=%d ack=%d", kfin.Seq, lfin.Seq, lfin.Ack, m.Seq, m.Ack)
		}
	}
	return false, fmt.Sprintf("no such exchange in the capture (kernel FIN seen %v, lab FIN after it %v)", kfin != nil, lfin != nil)
}
