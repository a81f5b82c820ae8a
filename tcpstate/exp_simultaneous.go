package tcpstate

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "tcp/simultaneous",
		Summary: "simultaneous open (SYN-SENT → SYN-RECEIVED) and simultaneous close (CLOSING) with a kernel socket",
		Shows: "Both SYNs cross: the lab's SYN is held on the link until the kernel's connect() SYN has arrived, so the " +
			"lab goes SYN-SENT → SYN-RECEIVED → ESTABLISHED; then both FINs cross and the lab goes FIN-WAIT-1 → " +
			"CLOSING → TIME-WAIT.",
		Run: runSimultaneous,
	})
}

func runSimultaneous(env *lab.Env) error {
	r, err := newLabRun(env, expConfig())
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

	// Hold the lab's SYN until the kernel's SYN has arrived: the hook
	// holds it and the next segment (the lab's SYN,ACK) releases it first.
	held := false
	hook := func(s *Segment, t *TCB) Verdict {
		if s.Flags == SYN && !held {
			held = true
			return Hold
		}
		return Pass
	}
	port, err := r.st.allocPort(0)
	if err != nil {
		return err
	}
	r.st.releasePort(port)
	c, err := r.st.Dial(ctx, kaddr, &ConnOptions{LocalPort: port, Hook: hook, NoWait: true})
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

	// Simultaneous close: hold the lab's FIN until the kernel's FIN is in.
	finHeld := false
	c.SetHook(func(s *Segment, t *TCB) Verdict {
		if s.Flags&FIN != 0 && !finHeld {
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
	closing := false
	for _, rec := range r.st.Records() {
		if rec.Conn == c.ID() && rec.Peer == "CLOSING" {
			closing = true
		}
	}
	env.Check("the kernel passes through CLOSING too", closing, "kernel CLOSING seen beside a segment: %v", closing)
	r.stop()
	r.ladder("simultaneous open and close", c)
	r.states(SynSent, SynReceived, Established, FinWait1, Closing, TimeWait, Closed)
	return nil
}
