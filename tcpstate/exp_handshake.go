package tcpstate

import (
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "tcp/handshake",
		Summary: "the user-space engine opens connections with the Linux kernel: active (SYN-SENT) and passive (LISTEN, SYN-RECEIVED)",
		Shows: "The lab's RFC 9293 engine, on raw sockets, completes the three-way handshake with the kernel's TCP in both " +
			"directions: it connects to a kernel listener (SYN-SENT → ESTABLISHED) and accepts a kernel connect() " +
			"(LISTEN → SYN-RECEIVED → ESTABLISHED), every segment commented with the lab's TCB.",
		Run: runHandshake,
	})
}

func runHandshake(env *lab.Env) error {
	r, err := newLabRun(env, expConfig())
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
	env.Note("the kernel offered MSS %d and window scale %d; the lab offers no SACK or timestamps, so the kernel uses neither", t.SndMSS, t.SndWScale)

	r.stop()
	r.ladder("active open: the lab connects to a kernel listener", active)
	r.ladder("passive open: a kernel connect() reaches the lab's listener", passive)
	r.states(Closed, Listen, SynSent, SynReceived, Established)
	return nil
}
