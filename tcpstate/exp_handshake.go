package tcpstate

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/handshake",
		Summary: "the user-space engine opens connections with the Linux kernel: active (SYN-SENT) and passive (LISTEN, SYN-RECEIVED)",
		Shows: "The lab's RFC 9293 engine, on raw sockets, completes the three-way handshake with the kernel's TCP in both " +
			"directions: it connects to a kernel listener (SYN-SENT → ESTABLISHED) and accepts a kernel connect() " +
			"(LISTEN → SYN-RECEIVED → ESTABLISHED), every segment commented with the lab's TCB.",
		Run: runHandshake,
	})
}

func runHandshake(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	ctx := env.Ctx

	// Active open: the lab dials a kernel listener.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	kaddr := netip.MustParseAddrPort(ln.Addr().String())
	accepted := make(chan net.Conn, 1)
	go func() {
		k, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- k
	}()
	active, err := r.st.Dial(ctx, kaddr, nil)
	r.track(active, "active open")
	if err != nil {
		return err
	}
	var kActive net.Conn
	select {
	case kActive = <-accepted:
	case <-ctx.Done():
		return ctx.Err()
	}
	if kActive == nil {
		return io.ErrUnexpectedEOF
	}
	defer kActive.Close()
	kstate := KernelStateOr(kaddr, active.Local())
	env.Check("active open: lab SYN-SENT → ESTABLISHED", hasPath(active, Closed, SynSent, Established), "%s", path(active))
	env.Check("active open: the kernel's accepted socket is ESTABLISHED", kstate == "ESTABLISHED", "/proc/net/tcp says %s", kstate)

	// Passive open: a kernel connect() reaches a lab listener.
	l, err := r.st.Listen(0, nil)
	if err != nil {
		return err
	}
	defer l.Close()
	dialed := make(chan net.Conn, 1)
	go func() {
		d := net.Dialer{Timeout: 5 * time.Second}
		k, err := d.DialContext(ctx, "tcp4", l.Addr().String())
		if err != nil {
			close(dialed)
			return
		}
		dialed <- k
	}()
	passive, err := l.Accept(ctx)
	r.track(passive, "passive open")
	if err != nil {
		return err
	}
	kPassive := <-dialed
	if kPassive == nil {
		return io.ErrUnexpectedEOF
	}
	defer kPassive.Close()
	kstate = KernelStateOr(netip.MustParseAddrPort(kPassive.LocalAddr().String()), l.Addr())
	env.Check("passive open: lab LISTEN → SYN-RECEIVED → ESTABLISHED", hasPath(passive, Listen, SynReceived, Established), "%s", path(passive))
	env.Check("passive open: the kernel's connect() socket is ESTABLISHED", kstate == "ESTABLISHED", "/proc/net/tcp says %s", kstate)

	// One byte each way proves the sequence numbers agree, then both close.
	for _, pair := range []struct {
		c *Conn
		k net.Conn
	}{{active, kActive}, {passive, kPassive}} {
		if _, err := pair.c.WriteContext(ctx, []byte{'x'}); err != nil {
			return err
		}
		var b [1]byte
		_ = pair.k.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(pair.k, b[:]); err != nil {
			return err
		}
		_ = pair.c.Close()
		if _, err := io.ReadAll(pair.k); err != nil {
			return err
		}
		_ = pair.k.Close()
		if err := pair.c.WaitState(ctx, Closed); err != nil {
			return err
		}
	}
	t := active.TCB()
	env.Metric("active_snd_mss_bytes", float64(t.SndMSS))
	env.Metric("active_snd_wscale", float64(t.SndWScale))

	r.stop()
	env.Note("%s", synOptionsNote(r.recs, active.ID(), t))
	r.ladder("active open: the lab connects to a kernel listener", active)
	r.ladder("passive open: a kernel connect() reaches the lab's listener", passive)
	r.states(Closed, Listen, SynSent, SynReceived, Established)
	return nil
}

// synOptionsNote says what each side's SYN offered on connection id, from
// the driver's records of the SYNs (the lab's own, and the kernel's as the
// lab received it), and what the lab sends with.
func synOptionsNote(recs []Record, id int, t TCB) string {
	var lab, kernel *RecSeg
	for i := range recs {
		rec := &recs[i]
		if rec.Conn != id || rec.Seg.Flags&SYN == 0 {
			continue
		}
		if rec.Sent && lab == nil {
			lab = &rec.Seg
		} else if !rec.Sent && kernel == nil {
			kernel = &rec.Seg
		}
	}
	opts := func(s *RecSeg) string {
		if s == nil {
			return "(not recorded)"
		}
		o := fmt.Sprintf("MSS %d", s.MSS)
		if s.HasWScale {
			o += fmt.Sprintf(" and window scale %d", s.WScale)
		} else {
			o += " and no window scale"
		}
		return o
	}
	return fmt.Sprintf("the lab's SYN offered %s; the kernel's SYN,ACK offered %s; so the lab sends segments of at most %d bytes "+
		"(the smaller MSS) and shifts the kernel's window field by %d. The lab offers no SACK or timestamps, so the kernel uses neither",
		opts(lab), opts(kernel), t.SndMSS, t.SndWScale)
}
