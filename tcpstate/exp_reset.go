package tcpstate

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "tcp/reset",
		Summary: "RSTs between the engine and the kernel: connection refused, and RFC 5961 on an exact, an in-window and an out-of-window RST",
		Shows: "A SYN to a closed kernel port is refused with RST (SYN-SENT → CLOSED); a RST exactly at the kernel's " +
			"RCV.NXT aborts its connection (ECONNRESET), one elsewhere in the window draws an RFC 5961 challenge ACK, " +
			"and one outside the window is dropped without a word — written as Go probe tables.",
		Run: runReset,
	})
}

func runReset(env *lab.Env) error {
	r, err := newLabRun(env, expConfig())
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
	refused, err := r.st.Dial(ctx, closed, nil)
	r.track(refused, "refused")
	env.Check("SYN to a closed kernel port: refused (SYN-SENT → CLOSED)", errors.Is(err, ErrConnectionRefused) && hasPath(refused, SynSent, Closed),
		"dial error %v; %s", err, path(refused))
	rows = append(rows, []string{"closed port", "SYN", "RST,ACK", "—", "CLOSED (refused)"})

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
	kstate := func(p *ProbeRun) string {
		return KernelStateOr(kp.addr, p.Conn.Local())
	}

	// 2. RST exactly at the kernel's RCV.NXT (= the lab's SND.NXT).
	exact := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("exact RST"),
		{Name: "inject RST at RCV.NXT", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt, Flags: RST} }},
		{Name: "the kernel aborts silently", Expect: &Expect{None: true, Within: 150 * time.Millisecond}},
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
	rows = append(rows, []string{"RST at RCV.NXT", "RST seq=SND.NXT", "nothing (abort)", "CLOSED, read → ECONNRESET", "ESTABLISHED → CLOSED on the kernel's RST to its next data"})

	// 3. RST in the window but not at RCV.NXT: a challenge ACK.
	inwin := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("in-window RST"),
		{Name: "inject RST at RCV.NXT+1000", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt.Add(1000), Flags: RST} }},
		{Name: "the kernel sends a challenge ACK", Expect: &Expect{Flags: ACK, Check: func(s *Segment, t *TCB) error {
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
	rows = append(rows, []string{"RST in window", "RST seq=SND.NXT+1000", "challenge ACK " + gotText(inwin), "ESTABLISHED", "ESTABLISHED"})

	// 4. RST outside the window: dropped.
	outwin := &ProbeRun{Ctx: ctx, Stack: r.st}
	err = Probe{
		open("out-of-window RST"),
		{Name: "inject RST at RCV.NXT+2^30", Inject: func(t *TCB) Segment { return Segment{Seq: t.SndNxt.Add(1 << 30), Flags: RST} }},
		{Name: "the kernel says nothing", Expect: &Expect{None: true, Within: 300 * time.Millisecond}},
		kernelWrites("still here"),
		labReads("still here"),
	}.Run(outwin)
	env.Check("RST outside the window: dropped silently, the connection lives", err == nil, "%v", errOr(err, "no answer"))
	rows = append(rows, []string{"RST out of window", "RST seq=SND.NXT+2^30", "nothing (dropped)", "ESTABLISHED", "ESTABLISHED"})
	env.Table("how the kernel answers each RST", rows)

	for _, c := range conns {
		if c.State() != Closed {
			_ = c.Abort()
		}
	}
	r.stop()
	for _, pr := range []*ProbeRun{exact, inwin, outwin} {
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
