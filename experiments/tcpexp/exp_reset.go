package tcpexp

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/reset: four probes, each a Go table of steps — a SYN to a closed
// kernel port, and a RST exactly at the kernel's RCV.NXT, in its window
// and outside it — tabled by what the kernel answered.
func runReset(env *lab.Env) error {
	r, err := newLabRun(env, labConfig(env))
	if err != nil {
		return err
	}
	x := &resets{labRun: r, rows: [][]string{{"case", "lab injects", "kernel answers", "kernel socket after", "lab after"}}}
	if err := x.refused(); err != nil {
		return err
	}
	if x.kp, err = listenKernel(env.Ctx, 0); err != nil {
		return err
	}
	defer x.kp.Close()
	x.exactRST()
	x.inWindowRST()
	x.outOfWindowRST()
	env.Table("how the kernel answers each RST", x.rows)
	for _, c := range x.conns {
		if c.State() != tcpstate.Closed {
			_ = c.Abort()
		}
	}
	r.stop()
	x.report()
	return nil
}

// resets is tcp/reset's probes and their table.
type resets struct {
	*labRun
	kp    *kernelPeer
	conns []*rawtcp.Conn     // the connections to the kernel listener
	runs  []*rawtcp.ProbeRun // every probe, in order
	rows  [][]string
}

// probe runs steps as a new probe and keeps it for the report.
func (x *resets) probe(steps ...rawtcp.Step) (*rawtcp.ProbeRun, error) {
	p := &rawtcp.ProbeRun{Ctx: x.env.Ctx, Stack: x.st}
	x.runs = append(x.runs, p)
	return p, rawtcp.Probe(steps).Run(p)
}

// refused: a SYN to a kernel port bound but not listening draws RST,ACK.
func (x *resets) refused() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	x.env.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return err
	}
	closed := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	p, err := x.probe(
		rawtcp.Step{Name: "connect to a closed kernel port", Call: func(p *rawtcp.ProbeRun) error {
			c, err := p.Stack.Dial(p.Ctx, closed, &rawtcp.ConnOptions{Observe: true})
			x.track(c, "refused")
			p.Conn = c
			if !errors.Is(err, tcpstate.ErrConnectionRefused) {
				return fmt.Errorf("dial error %v, want connection refused", err)
			}
			return nil
		}},
		rawtcp.Step{Name: "refused: the kernel's answer", Expect: &rawtcp.Expect{Flags: tcpstate.RST | tcpstate.ACK}},
		rawtcp.Step{Name: "the lab went SYN-SENT → CLOSED", Call: func(p *rawtcp.ProbeRun) error {
			if !hasPath(p.Conn, tcpstate.SynSent, tcpstate.Closed) {
				return fmt.Errorf("%s", path(p.Conn))
			}
			return nil
		}},
	)
	x.env.Check("SYN to a closed kernel port: refused with RST,ACK (SYN-SENT → CLOSED)", err == nil, "%v", errOr(err, pathOr(p.Conn)))
	x.rows = append(x.rows, []string{"closed port", "SYN", kernelAnswer(p, "refused: the kernel's answer"), "—", labAfter(p)})
	return nil
}

// exactRST: a RST exactly at the kernel's RCV.NXT (= the lab's SND.NXT)
// aborts the kernel's connection; its next read says ECONNRESET, and the
// lab's data after it draws the kernel's RST.
func (x *resets) exactRST() {
	p, err := x.probe(
		x.open("exact RST"),
		rawtcp.Step{Name: "inject RST at RCV.NXT", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
			return tcpstate.Segment{Seq: t.SndNxt, Flags: tcpstate.RST}
		}},
		rawtcp.Step{Name: "exact: the kernel's answer", Expect: &rawtcp.Expect{None: true, Within: 150 * time.Millisecond}},
		x.kernelSocketIs("CLOSED", "the kernel socket is gone"),
		x.kernelReads("ECONNRESET"),
		x.labWrites("late"),
		rawtcp.Step{Name: "the kernel answers the lab's data with RST", Expect: &rawtcp.Expect{Flags: tcpstate.RST}},
		rawtcp.Step{Name: "the lab is reset", Call: func(p *rawtcp.ProbeRun) error {
			if err := p.Conn.WaitState(p.Ctx, tcpstate.Closed); err != nil {
				return err
			}
			if !errors.Is(p.Conn.Err(), tcpstate.ErrConnectionReset) {
				return fmt.Errorf("lab error %v", p.Conn.Err())
			}
			return nil
		}},
	)
	x.env.Check("RST at RCV.NXT: the kernel aborts (ECONNRESET), later data draws its RST, the lab goes CLOSED", err == nil, "%v", errOr(err, "kernel read: "+fmt.Sprint(p.Vars["kernelRead"])))
	x.rows = append(x.rows, []string{"RST at RCV.NXT", "RST seq=SND.NXT", kernelAnswer(p, "exact: the kernel's answer"), kernelAfter(p), labAfter(p)})
}

// inWindowRST: a RST in the window but not at RCV.NXT draws an RFC 5961
// challenge ACK, and the connection lives.
func (x *resets) inWindowRST() {
	p, err := x.probe(
		x.open("in-window RST"),
		rawtcp.Step{Name: "inject RST at RCV.NXT+1000", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
			return tcpstate.Segment{Seq: t.SndNxt.Add(1000), Flags: tcpstate.RST}
		}},
		rawtcp.Step{Name: "in-window: the kernel's answer", Expect: &rawtcp.Expect{Flags: tcpstate.ACK, Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
			if s.Ack != t.SndNxt || s.Seq != t.RcvNxt {
				return fmt.Errorf("challenge ACK seq=%d ack=%d, want seq=RCV.NXT %d ack=SND.NXT %d", s.Seq, s.Ack, t.RcvNxt, t.SndNxt)
			}
			return nil
		}}},
		x.kernelSocketIs("ESTABLISHED", "the kernel socket is still ESTABLISHED"),
		x.kernelWrites("alive"),
		x.labReads("alive"),
	)
	x.env.Check("RST in the window, not at RCV.NXT: RFC 5961 challenge ACK, the connection lives", err == nil, "%v", errOr(err, gotText(p)))
	x.rows = append(x.rows, []string{"RST in window", "RST seq=SND.NXT+1000", kernelAnswer(p, "in-window: the kernel's answer"), kernelAfter(p), labAfter(p)})
}

// outOfWindowRST: a RST outside the window is dropped without a word.
func (x *resets) outOfWindowRST() {
	p, err := x.probe(
		x.open("out-of-window RST"),
		rawtcp.Step{Name: "inject RST at RCV.NXT+2^30", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
			return tcpstate.Segment{Seq: t.SndNxt.Add(1 << 30), Flags: tcpstate.RST}
		}},
		rawtcp.Step{Name: "out-of-window: the kernel's answer", Expect: &rawtcp.Expect{None: true, Within: 300 * time.Millisecond}},
		x.kernelSocketIs("ESTABLISHED", "the kernel socket is still ESTABLISHED"),
		x.kernelWrites("still here"),
		x.labReads("still here"),
	)
	x.env.Check("RST outside the window: dropped silently, the connection lives", err == nil, "%v", errOr(err, "no answer"))
	x.rows = append(x.rows, []string{"RST out of window", "RST seq=SND.NXT+2^30", kernelAnswer(p, "out-of-window: the kernel's answer"), kernelAfter(p), labAfter(p)})
}

// report: each probe's ladder and log, and the states reached.
func (x *resets) report() {
	for _, p := range x.runs {
		if p.Conn != nil {
			x.ladder("probe: "+x.labelOf(p.Conn), p.Conn)
		}
		for _, l := range p.Log {
			x.env.Logf("%s: %s ok=%v %s", x.labelOf(p.Conn), l.Step, l.OK, l.Detail)
		}
	}
	x.feature(featureChallenge) // the kernel's, to the in-window RST
	x.states(tcpstate.SynSent, tcpstate.Established, tcpstate.Closed)
}

// open is the step that dials the kernel listener and accepts the
// kernel's socket (p.Vars["kernel"]).
func (x *resets) open(label string) rawtcp.Step {
	return rawtcp.Step{Name: "connect (" + label + ")", Call: func(p *rawtcp.ProbeRun) error {
		c, k, err := x.connectKernel(p.Ctx, x.kp, label, &rawtcp.ConnOptions{Observe: true}, 30*time.Second)
		if err != nil {
			return err
		}
		p.Conn, p.Vars["kernel"] = c, k
		x.conns = append(x.conns, c)
		return nil
	}}
}

// kernelSocketIs is the step that looks the kernel's socket up and wants
// it in state want; what it saw goes to the table.
func (x *resets) kernelSocketIs(want, name string) rawtcp.Step {
	return rawtcp.Step{Name: name, Call: func(p *rawtcp.ProbeRun) error {
		st := rawtcp.KernelStateOr(x.kp.addr, p.Conn.Local())
		p.Vars["kstate"] = st
		if st != want {
			return fmt.Errorf("kernel socket %s", st)
		}
		return nil
	}}
}

// kernelReads is the step where the kernel reads want, or fails with
// ECONNRESET when want says so.
func (x *resets) kernelReads(want string) rawtcp.Step {
	return rawtcp.Step{Name: "the kernel reads " + want, Call: func(p *rawtcp.ProbeRun) error {
		k := p.Vars["kernel"].(kernelConn)
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

func (x *resets) labWrites(s string) rawtcp.Step {
	return rawtcp.Step{Name: "the lab writes " + s, Call: func(p *rawtcp.ProbeRun) error {
		_, err := p.Conn.WriteContext(p.Ctx, []byte(s))
		return err
	}}
}

// kernelWrites is the kernel writing s. After an injected RST the kernel
// writes and the lab reads, not the other way round: Wireshark takes an
// injected RST's sequence number as the lab's next expected one and would
// call the lab's next data "out-of-order" or "retransmission", which it is
// not.
func (x *resets) kernelWrites(s string) rawtcp.Step {
	return rawtcp.Step{Name: "the kernel writes " + s, Call: func(p *rawtcp.ProbeRun) error {
		_, err := p.Vars["kernel"].(kernelConn).Write([]byte(s))
		return err
	}}
}

func (x *resets) labReads(want string) rawtcp.Step {
	return rawtcp.Step{Name: "the lab reads " + want, Call: func(p *rawtcp.ProbeRun) error {
		b := make([]byte, 64)
		n, err := p.Conn.ReadContext(p.Ctx, b)
		if err != nil || string(b[:n]) != want {
			return fmt.Errorf("lab read %q, %v; want %q", b[:n], err, want)
		}
		return nil
	}}
}

// kernelConn is what the probes do with the kernel's socket.
type kernelConn interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	SetReadDeadline(time.Time) error
}

// kernelAnswer is what the kernel sent at the probe's Expect step named
// step, as observed: the segment, or nothing; "✗" marks a failed check.
func kernelAnswer(p *rawtcp.ProbeRun, step string) string {
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
func kernelAfter(p *rawtcp.ProbeRun) string {
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
func labAfter(p *rawtcp.ProbeRun) string {
	if p.Conn == nil {
		return "no connection"
	}
	s := path(p.Conn)
	if err := p.Conn.Err(); err != nil {
		s += " (" + err.Error() + ")"
	}
	return s
}

func gotText(p *rawtcp.ProbeRun) string {
	if p.Got == nil {
		return ""
	}
	return p.Got.String()
}
