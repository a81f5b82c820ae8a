package tcpstate

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/reset",
		Summary: "RSTs between the engine and the kernel: connection refused, and RFC 5961 on an exact, an in-window and an out-of-window RST",
		Shows: "A SYN to a closed kernel port is refused with RST (SYN-SENT → CLOSED); a RST exactly at the kernel's " +
			"RCV.NXT aborts its connection (ECONNRESET), one elsewhere in the window draws an RFC 5961 challenge ACK, " +
			"and one outside the window is dropped without a word — written as Go probe tables.",
		Run: runReset,
	})
}

func runReset(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	ctx := env.Ctx
	rows := [][]string{{"case", "lab injects", "kernel answers", "kernel socket after", "lab after"}}

	// 1. Connection refused: a kernel port bound but not listening.
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	closed := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	refused := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		{Name: "connect to a closed kernel port", Call: func(p *ProbeRun) error {
			c, err := p.Stack.Dial(p.Ctx, closed, &ConnOptions{Observe: true})
			r.track(c, "refused")
			p.Conn = c
			if !errors.Is(err, ErrConnectionRefused) {
				return fmt.Errorf("dial error %v, want connection refused", err)
			}
			return nil
		}},
		{Name: "refused: the kernel's answer", Expect: &Expect{Flags: RST | ACK}},
		{Name: "the lab went SYN-SENT → CLOSED", Call: func(p *ProbeRun) error {
			if !hasPath(p.Conn, SynSent, Closed) {
				return fmt.Errorf("%s", path(p.Conn))
			}
			return nil
		}},
	}.Run(refused)
	env.Check("SYN to a closed kernel port: refused with RST,ACK (SYN-SENT → CLOSED)", err == nil, "%v", errOr(err, pathOr(refused.Conn)))
	rows = append(rows, []string{"closed port", "SYN", kernelAnswer(refused, "refused: the kernel's answer"), "—", labAfter(refused)})

	kp, err := listenKernel(ctx, 0)
	if err != nil {
		return err
	}
	defer kp.Close()
	var conns []*Conn
	// open dials the kernel listener and accepts the kernel's socket.
	open := func(label string) Step {
		return Step{Name: "connect (" + label + ")", Call: func(p *ProbeRun) error {
			c, err := p.Stack.Dial(p.Ctx, kp.addr, &ConnOptions{Observe: true})
			r.track(c, label)
			if err != nil {
				return err
			}
			k, err := kp.accept(p.Ctx)
			if err != nil {
				return err
			}
			env.Cleanup(func() { k.Close() })
			p.Conn, p.Vars["kernel"] = c, k
			conns = append(conns, c)
			return nil
		}}
	}
	kernelReads := func(want string) Step {
		return Step{Name: "the kernel reads " + want, Call: func(p *ProbeRun) error {
			k := p.Vars["kernel"].(interface {
				Read([]byte) (int, error)
				SetReadDeadline(time.Time) error
			})
			_ = k.SetReadDeadline(deadline(p.Ctx, 2*time.Second))
			b := make([]byte, 64)
			n, err := k.Read(b)
			p.Vars["kernelRead"] = err
			if want == "ECONNRESET" {
				if !errors.Is(err, syscall.ECONNRESET) {
					return fmt.Errorf("kernel read %q, %v; want ECONNRESET", b[:n], err)
				}
				return nil
			}
			if err != nil || string(b[:n]) != want {
				return fmt.Errorf("kernel read %q, %v; want %q", b[:n], err, want)
			}
			return nil
		}}
	}
	labWrites := func(s string) Step {
		return Step{Name: "the lab writes " + s, Call: func(p *ProbeRun) error {
			_, err := p.Conn.WriteContext(p.Ctx, []byte(s))
			return err
		}}
	}
	// After an injected RST the kernel writes and the lab reads, not the
	// other way round: Wireshark takes an injected RST's sequence number as
	// the lab's next expected one and would call the lab's next data
	// "out-of-order" or "retransmission", which it is not.
	kernelWrites := func(s string) Step {
		return Step{Name: "the kernel writes " + s, Call: func(p *ProbeRun) error {
			k := p.Vars["kernel"].(interface{ Write([]byte) (int, error) })
			_, err := k.Write([]byte(s))
			return err
		}}
	}
	labReads := func(want string) Step {
		return Step{Name: "the lab reads " + want, Call: func(p *ProbeRun) error {
			b := make([]byte, 64)
			n, err := p.Conn.ReadContext(p.Ctx, b)
			if err != nil || string(b[:n]) != want {
				return fmt.Errorf("lab read %q, %v; want %q", b[:n], err, want)
			}
			return nil
		}}
	}
	// kstate looks the kernel's socket up and keeps what it saw for the
	// table.
	kstate := func(p *ProbeRun) string {
		st := KernelStateOr(kp.addr, p.Conn.Local())
		p.Vars["kstate"] = st
		return st
	}

	// 2. RST exactly at the kernel's RCV.NXT (= the lab's SND.NXT).
	exact := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("exact RST"),
		{Name: "inject RST at RCV.NXT", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt, Flags: RST} }},
		{Name: "exact: the kernel's answer", Expect: &Expect{None: true, Within: 150 * time.Millisecond}},
		{Name: "the kernel socket is gone", Call: func(p *ProbeRun) error {
			if st := kstate(p); st != "CLOSED" {
				return fmt.Errorf("kernel socket %s", st)
			}
			return nil
		}},
		kernelReads("ECONNRESET"),
		labWrites("late"),
		{Name: "the kernel answers the lab's data with RST", Expect: &Expect{Flags: RST}},
		{Name: "the lab is reset", Call: func(p *ProbeRun) error {
			if err := p.Conn.WaitState(p.Ctx, Closed); err != nil {
				return err
			}
			if !errors.Is(p.Conn.Err(), ErrConnectionReset) {
				return fmt.Errorf("lab error %v", p.Conn.Err())
			}
			return nil
		}},
	}.Run(exact)
	env.Check("RST at RCV.NXT: the kernel aborts (ECONNRESET), later data draws its RST, the lab goes CLOSED", err == nil, "%v", errOr(err, "kernel read: "+fmt.Sprint(exact.Vars["kernelRead"])))
	rows = append(rows, []string{"RST at RCV.NXT", "RST seq=SND.NXT", kernelAnswer(exact, "exact: the kernel's answer"), kernelAfter(exact), labAfter(exact)})

	// 3. RST in the window but not at RCV.NXT: a challenge ACK.
	inwin := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("in-window RST"),
		{Name: "inject RST at RCV.NXT+1000", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt.Add(1000), Flags: RST} }},
		{Name: "in-window: the kernel's answer", Expect: &Expect{Flags: ACK, Check: func(s *Segment, t *TCB) error {
			if s.Ack != t.SndNxt || s.Seq != t.RcvNxt {
				return fmt.Errorf("challenge ACK seq=%d ack=%d, want seq=RCV.NXT %d ack=SND.NXT %d", s.Seq, s.Ack, t.RcvNxt, t.SndNxt)
			}
			return nil
		}}},
		{Name: "the kernel socket is still ESTABLISHED", Call: func(p *ProbeRun) error {
			if st := kstate(p); st != "ESTABLISHED" {
				return fmt.Errorf("kernel socket %s", st)
			}
			return nil
		}},
		kernelWrites("alive"),
		labReads("alive"),
	}.Run(inwin)
	env.Check("RST in the window, not at RCV.NXT: RFC 5961 challenge ACK, the connection lives", err == nil, "%v", errOr(err, gotText(inwin)))
	rows = append(rows, []string{"RST in window", "RST seq=SND.NXT+1000", kernelAnswer(inwin, "in-window: the kernel's answer"), kernelAfter(inwin), labAfter(inwin)})

	// 4. RST outside the window: dropped.
	outwin := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("out-of-window RST"),
		{Name: "inject RST at RCV.NXT+2^30", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt.Add(1 << 30), Flags: RST} }},
		{Name: "out-of-window: the kernel's answer", Expect: &Expect{None: true, Within: 300 * time.Millisecond}},
		{Name: "the kernel socket is still ESTABLISHED", Call: func(p *ProbeRun) error {
			if st := kstate(p); st != "ESTABLISHED" {
				return fmt.Errorf("kernel socket %s", st)
			}
			return nil
		}},
		kernelWrites("still here"),
		labReads("still here"),
	}.Run(outwin)
	env.Check("RST outside the window: dropped silently, the connection lives", err == nil, "%v", errOr(err, "no answer"))
	rows = append(rows, []string{"RST out of window", "RST seq=SND.NXT+2^30", kernelAnswer(outwin, "out-of-window: the kernel's answer"), kernelAfter(outwin), labAfter(outwin)})
	env.Table("how the kernel answers each RST", rows)

	for _, c := range conns {
		if c.State() != Closed {
			_ = c.Abort()
		}
	}
	r.stop()
	for _, pr := range []*ProbeRun{refused, exact, inwin, outwin} {
		if pr.Conn != nil {
			r.ladder("probe: "+r.labels[pr.Conn.ID()], pr.Conn)
		}
		for _, l := range pr.Log {
			env.Logf("%s: %s ok=%v %s", r.labelOf(pr.Conn), l.Step, l.OK, l.Detail)
		}
	}
	r.states(SynSent, Established, Closed)
	return nil
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// kernelAnswer is what the kernel sent at the probe's Expect step named
// step, as observed: the segment, or nothing; "✗" marks a failed check.
func kernelAnswer(p *ProbeRun, step string) string {
	res, ok := p.Result(step)
	switch {
	case !ok:
		return "not reached"
	case res.Got != nil && res.OK:
		return res.Got.String()
	case res.Got != nil:
		return "✗ " + res.Got.String() + " (unexpected)"
	case res.OK:
		return "nothing (" + res.Detail + ")"
	}
	return "✗ " + res.Detail
}

// kernelAfter is the kernel socket's state and read result as the probe
// observed them.
func kernelAfter(p *ProbeRun) string {
	st, _ := p.Vars["kstate"].(string)
	if st == "" {
		st = "not looked up"
	}
	v, ok := p.Vars["kernelRead"]
	if !ok {
		return st
	}
	err, _ := v.(error)
	if errors.Is(err, syscall.ECONNRESET) {
		return st + ", read → ECONNRESET"
	}
	return fmt.Sprintf("%s, read → %v", st, err)
}

// labAfter is the lab connection's path and error.
func labAfter(p *ProbeRun) string {
	if p.Conn == nil {
		return "no connection"
	}
	s := path(p.Conn)
	if err := p.Conn.Err(); err != nil {
		s += " (" + err.Error() + ")"
	}
	return s
}

func gotText(p *ProbeRun) string {
	if p.Got == nil {
		return ""
	}
	return p.Got.String()
}

func (r *labRun) labelOf(c *Conn) string {
	if c == nil {
		return "?"
	}
	return r.labels[c.ID()]
}
