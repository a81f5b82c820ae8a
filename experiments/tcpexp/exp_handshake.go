package tcpexp

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/handshake: the lab opens a connection to a kernel listener (active)
// and accepts one from a kernel connect() (passive), sends a byte each way
// on both and closes them.
func runHandshake(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	h := &handshake{labRun: r}
	if err := h.activeOpen(); err != nil {
		return err
	}
	if err := h.passiveOpen(); err != nil {
		return err
	}
	if err := h.exchangeAndClose(); err != nil {
		return err
	}
	h.stop()
	h.report()
	return nil
}

// handshake is tcp/handshake's connections: the lab's and the kernel's
// end of each.
type handshake struct {
	*labRun
	active, passive   *rawtcp.Conn
	kActive, kPassive net.Conn
}

// activeOpen: the lab dials a kernel listener (SYN-SENT → ESTABLISHED).
func (h *handshake) activeOpen() error {
	env, ctx := h.env, h.env.Ctx
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	env.Cleanup(func() { ln.Close() })
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
	h.active, err = h.st.Dial(ctx, kaddr, nil)
	h.track(h.active, "active open")
	if err != nil {
		return err
	}
	select {
	case h.kActive = <-accepted:
	case <-ctx.Done():
		return ctx.Err()
	}
	if h.kActive == nil {
		return io.ErrUnexpectedEOF
	}
	env.Cleanup(func() { h.kActive.Close() })
	kstate := rawtcp.KernelStateOr(kaddr, h.active.Local())
	env.Check("active open: lab SYN-SENT → ESTABLISHED", hasPath(h.active, tcpstate.Closed, tcpstate.SynSent, tcpstate.Established), "%s", path(h.active))
	env.Check("active open: the kernel's accepted socket is ESTABLISHED", kstate == "ESTABLISHED", "/proc/net/tcp says %s", kstate)
	return nil
}

// passiveOpen: a kernel connect() reaches a lab listener (LISTEN →
// SYN-RECEIVED → ESTABLISHED).
func (h *handshake) passiveOpen() error {
	env, ctx := h.env, h.env.Ctx
	l, err := h.st.Listen(0, nil)
	if err != nil {
		return err
	}
	env.Cleanup(func() { l.Close() })
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
	h.passive, err = l.AcceptConn(ctx)
	h.track(h.passive, "passive open")
	if err != nil {
		return err
	}
	h.kPassive = <-dialed
	if h.kPassive == nil {
		return io.ErrUnexpectedEOF
	}
	env.Cleanup(func() { h.kPassive.Close() })
	kstate := rawtcp.KernelStateOr(kernelLocal(h.kPassive), l.AddrPort())
	env.Check("passive open: lab LISTEN → SYN-RECEIVED → ESTABLISHED", hasPath(h.passive, tcpstate.Listen, tcpstate.SynReceived, tcpstate.Established), "%s", path(h.passive))
	env.Check("passive open: the kernel's connect() socket is ESTABLISHED", kstate == "ESTABLISHED", "/proc/net/tcp says %s", kstate)
	return nil
}

// exchangeAndClose sends one byte lab → kernel on each connection, which
// proves the sequence numbers agree, then both sides close.
func (h *handshake) exchangeAndClose() error {
	ctx := h.env.Ctx
	for _, pair := range []struct {
		c *rawtcp.Conn
		k net.Conn
	}{{h.active, h.kActive}, {h.passive, h.kPassive}} {
		if _, err := pair.c.WriteContext(ctx, []byte{'x'}); err != nil {
			return err
		}
		var b [1]byte
		_ = pair.k.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(pair.k, b[:]); err != nil {
			return err
		}
		_ = pair.c.CloseWrite()
		if _, err := io.ReadAll(pair.k); err != nil {
			return err
		}
		_ = pair.k.Close()
		if err := pair.c.WaitState(ctx, tcpstate.Closed); err != nil {
			return err
		}
	}
	return nil
}

// report: the MSS and window scale the SYNs agreed on, the ladders, the
// states reached.
func (h *handshake) report() {
	t := h.active.TCB()
	h.env.Metric("active_snd_mss_bytes", float64(t.SndMSS))
	h.env.Metric("active_snd_wscale", float64(t.SndWScale))
	h.env.Note("%s", synOptionsNote(h.recs, h.active.ID(), t))
	h.ladder("active open: the lab connects to a kernel listener", h.active)
	h.ladder("passive open: a kernel connect() reaches the lab's listener", h.passive)
	h.states(tcpstate.Closed, tcpstate.Listen, tcpstate.SynSent, tcpstate.SynReceived, tcpstate.Established)
}

// synOptionsNote says what each side's SYN offered on connection id, from
// the driver's records of the SYNs (the lab's own, and the kernel's as the
// lab received it), and what the lab sends with.
func synOptionsNote(recs []rawtcp.Record, id int, t tcpstate.TCB) string {
	var lab, kernel *rawtcp.RecSeg
	for i := range recs {
		rec := &recs[i]
		if rec.Conn != id || rec.Seg.Flags&tcpstate.SYN == 0 {
			continue
		}
		if rec.Sent && lab == nil {
			lab = &rec.Seg
		} else if !rec.Sent && kernel == nil {
			kernel = &rec.Seg
		}
	}
	opts := func(s *rawtcp.RecSeg) string {
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
