package tcpstate

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/simultaneous",
		Summary: "simultaneous open (SYN-SENT → SYN-RECEIVED) and simultaneous close (CLOSING) with a kernel socket",
		Shows: "Both SYNs cross: the lab's SYN is held on the link until the kernel's connect() SYN has arrived, so the " +
			"lab goes SYN-SENT → SYN-RECEIVED → ESTABLISHED; then both FINs cross and the lab goes FIN-WAIT-1 → " +
			"CLOSING → TIME-WAIT.",
		Run: runSimultaneous,
	})
}

func runSimultaneous(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	ctx := env.Ctx
	// The kernel's port: reserve one by listening briefly, then connect
	// from it (SO_REUSEADDR lets the kernel socket bind it again).
	tmp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	kaddr := netip.MustParseAddrPort(tmp.Addr().String())
	tmp.Close()

	// Hold the lab's SYN until the kernel's SYN has arrived, however late
	// the kernel's connect() starts: a receive hook notes the kernel's SYN;
	// until then the first SYN is held and its retransmissions are lost on
	// the link (they carry the same ISN, so the held one stands for them).
	// The lab's SYN,ACK, emitted on the kernel's SYN, releases the held SYN
	// first. Both hooks run under the connection's lock.
	kernelSYN, held := false, false
	hook := func(s *Segment, t *TCB) Verdict {
		if s.Flags == SYN && !kernelSYN {
			if held {
				return Drop
			}
			held = true
			return Hold
		}
		return Pass
	}
	rhook := func(s *Segment, t *TCB) Verdict {
		if s.Flags&(SYN|ACK) == SYN {
			kernelSYN = true
		}
		return Pass
	}
	port, err := r.st.allocPort(0)
	if err != nil {
		return err
	}
	r.st.releasePort(port)
	c, err := r.st.Dial(ctx, kaddr, &ConnOptions{LocalPort: port, Hook: hook, RecvHook: rhook, NoWait: true})
	r.track(c, "simultaneous")
	if err != nil {
		return err
	}
	type res struct {
		c   net.Conn
		err error
	}
	kc := make(chan res, 1)
	go func() {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(kaddr), Timeout: 5 * time.Second}
		k, err := d.DialContext(ctx, "tcp4", c.Local().String())
		kc <- res{k, err}
	}()
	if err := c.WaitFor(ctx, func(s State) bool { return s != SynSent && s != SynReceived }); err != nil {
		return err
	}
	kr := <-kc
	if kr.err != nil {
		return fmt.Errorf("kernel connect: %w", kr.err)
	}
	k := kr.c
	defer k.Close()
	env.Check("simultaneous open: SYN-SENT → SYN-RECEIVED → ESTABLISHED", hasPath(c, SynSent, SynReceived, Established), "%s", path(c))
	kst := KernelStateOr(kaddr, c.Local())
	env.Check("the kernel's connect() succeeds", kst == "ESTABLISHED", "kernel socket %s", kst)

	// Simultaneous close: hold the lab's FIN until the kernel's FIN is in
	// (as with the SYNs, its retransmissions are lost meanwhile); the lab's
	// ACK of the kernel's FIN then releases it first, so the lab's FIN does
	// not acknowledge the kernel's and both sides pass through CLOSING.
	kernelFIN, finHeld := false, false
	c.SetRecvHook(func(s *Segment, t *TCB) Verdict {
		if s.Flags&FIN != 0 {
			kernelFIN = true
		}
		return Pass
	})
	c.SetHook(func(s *Segment, t *TCB) Verdict {
		if s.Flags&FIN != 0 && !kernelFIN {
			if finHeld {
				return Drop
			}
			finHeld = true
			return Hold
		}
		return Pass
	})
	if err := c.Close(); err != nil {
		return err
	}
	_ = k.Close()
	if err := c.WaitState(ctx, Closed); err != nil {
		return err
	}
	env.Check("simultaneous close: FIN-WAIT-1 → CLOSING → TIME-WAIT → CLOSED", hasPath(c, FinWait1, Closing, TimeWait, Closed), "%s", path(c))
	var b [1]byte
	_, rerr := c.ReadContext(ctx, b[:])
	env.Check("the lab reads EOF", rerr == io.EOF, "%v", rerr)
	r.stop()
	// The kernel's CLOSING, from the capture: its FIN went out, then the
	// lab's FIN arrived without acknowledging it (FIN-WAIT-1 → CLOSING), and
	// the kernel acknowledged the lab's FIN with a sequence number past its
	// own FIN. Read from the wire, not from a state lookup racing the
	// kernel's next step.
	closing, why := kernelClosing(r.pkts, kaddr, c.Local())
	env.Check("the kernel passes through CLOSING too (its FIN, then the lab's FIN not acknowledging it, then its ACK of the lab's FIN)", closing, "%s", why)
	// Wireshark flags each side's SYN,ACK as a retransmission: it repeats
	// the sequence number of that side's SYN. Say so on those packets.
	for _, p := range r.pkts {
		if m, ok := p.Decode(); ok && m.Flags&0x12 == 0x12 {
			p.Comment("simultaneous open: this SYN,ACK repeats the SYN's sequence number, so Wireshark's tcp.analysis " +
				"marks it a retransmission; it is the RFC 9293 §3.5 Figure 8 answer to the crossing SYN, not a resend")
		}
	}
	r.ladder("simultaneous open and close", c)
	r.states(SynSent, SynReceived, Established, FinWait1, Closing, TimeWait, Closed)
	return nil
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
