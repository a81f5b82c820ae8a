package rawtcp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// ErrProbe is wrapped by the error of a probe step that failed.
var ErrProbe = errors.New("rawtcp: probe")

// Probe is a kernel probe written as a Go table of steps, the way a
// packetdrill script is a list of lines, but rootless (it runs in a network
// namespace of the caller's) and against the live lab stack: Call steps do things (dial,
// write, make the kernel socket do something), Inject steps send a
// hand-made segment from the connection's ports, computed from the lab's
// TCB, Expect steps wait for the kernel's next segment and check its
// fields, Wait steps let time pass. For example, RFC 5961's challenge ACK:
//
//	probe := rawtcp.Probe{
//		{Name: "connect", Call: func(r *rawtcp.ProbeRun) (err error) {
//			r.Conn, err = r.Stack.Dial(r.Ctx, kernelAddr, &rawtcp.ConnOptions{Observe: true})
//			return err
//		}},
//		{Name: "RST in window, not at RCV.NXT", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
//			return tcpstate.Segment{Seq: t.SndNxt.Add(1000), Flags: tcpstate.RST}
//		}},
//		{Name: "challenge ACK", Expect: &rawtcp.Expect{Flags: tcpstate.ACK,
//			Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
//				if s.Ack != t.SndNxt {
//					return fmt.Errorf("ack %d, want SND.NXT %d", s.Ack, t.SndNxt)
//				}
//				return nil
//			}}},
//	}
//	err := probe.Run(&rawtcp.ProbeRun{Ctx: ctx, Stack: stack})
//
// ExampleProbe is this probe as a complete, tested program. Expect needs
// the connection to have been opened with
// ConnOptions.Observe. Every segment is also recorded by the stack, so a
// probe's capture is commented like any other.
type Probe []Step

// Step is one line of a probe; set exactly one of Call, Inject, Expect and
// Wait.
type Step struct {
	Name   string
	Call   func(r *ProbeRun) error
	Inject func(t *tcpstate.TCB) tcpstate.Segment
	Expect *Expect
	Wait   time.Duration
}

// Expect describes the segment a step waits for.
type Expect struct {
	// Within bounds the wait (default 1s).
	Within time.Duration
	// None: no segment may arrive within Within.
	None bool
	// Flags, when not zero, must equal the segment's control bits (PSH,
	// ECE and CWR are ignored).
	Flags tcpstate.Flags
	// Check tests other fields; t is the lab's TCB after the engine
	// processed the segment.
	Check func(s *tcpstate.Segment, t *tcpstate.TCB) error
}

// ProbeRun is a probe's state: the stack, the connection the steps act on
// (a Call step sets it), the last segment an Expect matched, and a log.
type ProbeRun struct {
	Ctx   context.Context
	Stack *Stack
	Conn  *Conn
	Got   *tcpstate.Segment
	Vars  map[string]any
	Log   []ProbeResult
}

// ProbeResult is what one step did. For an Expect step Got is the segment
// the kernel sent (nil when none came), so a report can show what the
// kernel actually answered, whether or not the check passed.
type ProbeResult struct {
	Step   string
	OK     bool
	Detail string
	At     time.Duration
	Got    *tcpstate.Segment
	Err    error
}

// Run executes the steps in order and stops at the first failure, which it
// returns wrapped in ErrProbe.
func (p Probe) Run(r *ProbeRun) error {
	if r.Ctx == nil {
		r.Ctx = context.Background()
	}
	if r.Vars == nil {
		r.Vars = map[string]any{}
	}
	for i, st := range p {
		prev := r.Got
		detail, err := r.step(&st)
		res := ProbeResult{Step: st.Name, OK: err == nil, Detail: detail, At: r.Stack.Now(), Err: err}
		if st.Expect != nil && r.Got != nil && r.Got != prev {
			g := *r.Got
			res.Got = &g
		}
		if err != nil && detail == "" {
			res.Detail = err.Error()
		}
		r.Log = append(r.Log, res)
		if err != nil {
			return fmt.Errorf("%w: step %d %q: %w", ErrProbe, i+1, st.Name, err)
		}
	}
	return nil
}

func (r *ProbeRun) step(st *Step) (string, error) {
	switch {
	case st.Call != nil:
		return "called", st.Call(r)
	case st.Inject != nil:
		if r.Conn == nil {
			return "", errors.New("no connection to inject on")
		}
		r.Drain()
		t := r.Conn.TCB()
		seg := st.Inject(&t)
		return "injected " + seg.String(), r.Conn.Faults().Inject(seg)
	case st.Expect != nil:
		return r.expect(st.Expect)
	case st.Wait > 0:
		t := time.NewTimer(st.Wait)
		defer t.Stop()
		select {
		case <-t.C:
			return "waited " + st.Wait.String(), nil
		case <-r.Ctx.Done():
			return "", r.Ctx.Err()
		}
	}
	return "", errors.New("empty step")
}

// Result returns the log entry of the step named name (the last one of
// that name), and false when the probe did not get to it.
func (r *ProbeRun) Result(name string) (ProbeResult, bool) {
	for i := len(r.Log) - 1; i >= 0; i-- {
		if r.Log[i].Step == name {
			return r.Log[i], true
		}
	}
	return ProbeResult{}, false
}

// Drain discards the segments observed so far, so the next Expect sees
// only what follows (Inject steps drain first by themselves).
func (r *ProbeRun) Drain() {
	ch := r.Conn.Observed()
	for range cap(ch) {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func (r *ProbeRun) expect(e *Expect) (string, error) {
	if r.Conn == nil || r.Conn.Observed() == nil {
		return "", errors.New("Expect needs a connection opened with ConnOptions.Observe")
	}
	within := e.Within
	if within <= 0 {
		within = time.Second
	}
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case seg := <-r.Conn.Observed():
		r.Got = &seg
		if e.None {
			return "", fmt.Errorf("got %v, want nothing within %v", seg.String(), within)
		}
		const ignore = tcpstate.PSH | tcpstate.ECE | tcpstate.CWR
		if e.Flags != 0 && seg.Flags&^ignore != e.Flags&^ignore {
			return "", fmt.Errorf("got %v, want flags %v", seg.String(), e.Flags)
		}
		if e.Check != nil {
			tcb := r.Conn.TCB()
			if err := e.Check(&seg, &tcb); err != nil {
				return "", fmt.Errorf("got %v: %w", seg.String(), err)
			}
		}
		return "got " + seg.String(), nil
	case <-t.C:
		if e.None {
			return "nothing within " + within.String(), nil
		}
		return "", fmt.Errorf("nothing within %v", within)
	case <-r.Ctx.Done():
		return "", r.Ctx.Err()
	}
}
