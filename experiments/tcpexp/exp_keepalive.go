package tcpexp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/keepalive: keep-alive both ways between the lab and the kernel.
//
// The lab's keep-alive: an idle connection with Config.KeepAlive and a
// user timeout. The lab's first probe, <SEQ=SND.UNA-1>, is answered by the
// kernel; then the lab's link drops every kernel segment — the kernel goes
// silent without a word, though it still answers on the wire — and the
// probes go unanswered until the user timeout, counted from when the
// kernel was last heard, ends the connection: the lab resets it and its
// user gets ETIMEDOUT; the kernel's read fails with ECONNRESET.
//
// The user timeout with data: the lab writes to a kernel the link has
// silenced and the user timeout ends it (exp_keepalive_usertimeout.go).
//
// The kernel's keep-alive: SO_KEEPALIVE with TCP_KEEPIDLE, TCP_KEEPINTVL
// and TCP_KEEPCNT set by setsockopt on the kernel's socket; its probes
// reach the lab, the lab's engine answers each with an ACK, the
// connection stays up (the kernel's TcpExt TCPKeepAlive counter counts the
// probes).
func runKeepAlive(env *lab.Env) error {
	r, kp, err := newKernelRun(env, labConfig(env), 0)
	if err != nil {
		return err
	}
	x := &keepAlive{labRun: r, kp: kp, tm: defaultKeepAliveTimers(), answered: make(chan struct{}), kanswers: make(chan struct{}, 16)}
	if err := x.labProbesSilentKernel(); err != nil {
		return err
	}
	if err := x.kernelProbesLab(); err != nil {
		return err
	}
	if err := x.userTimeoutWithData(); err != nil {
		return err
	}
	r.stop()
	x.annotate()
	x.annotateUserTimeout()
	x.check()
	x.checkUserTimeout()
	r.ladder("the lab's keep-alive, then the kernel silenced by the link", x.a)
	r.ladder("the kernel's keep-alive (SO_KEEPALIVE) probing the lab", x.b)
	r.ladder("the user timeout with data outstanding, the kernel silenced by the link", x.ut.c)
	r.states(tcpstate.Established, tcpstate.Closed)
	r.feature(featureKeepAlive, featureUserTimeout)
	return nil
}

// keepAliveTimers are tcp/keepalive's timers: short, and configurable in
// one place. The lab's probe interval is above Linux's
// net.ipv4.tcp_invalid_ratelimit (500 ms), the least gap between the
// kernel's answers to out-of-window segments such as probes; the kernel's
// own keep-alive options count whole seconds.
type keepAliveTimers struct {
	Idle, Interval, UserTimeout time.Duration // the lab's
	KernelIdle, KernelInterval  time.Duration // TCP_KEEPIDLE, TCP_KEEPINTVL
	KernelCount                 int           // TCP_KEEPCNT
	KernelProbes                int           // the kernel probes the lab answers before it is done
	DataUserTimeout             time.Duration // the user timeout of the leg with data outstanding
}

func defaultKeepAliveTimers() keepAliveTimers {
	return keepAliveTimers{
		Idle: 300 * time.Millisecond, Interval: 600 * time.Millisecond, UserTimeout: 2 * time.Second,
		KernelIdle: time.Second, KernelInterval: time.Second, KernelCount: 3, KernelProbes: 2,
		DataUserTimeout: 1500 * time.Millisecond,
	}
}

// labKeepAliveConfig is the lab's engine configuration for the connection
// that probes: keep-alive on, the probe count out of the way so that the
// user timeout is what ends it.
func labKeepAliveConfig(env *lab.Env, tm keepAliveTimers) tcpstate.Config {
	c := expConfig()
	c.ISS = seededISS(env.Stream("iss-keepalive"))
	c.KeepAlive, c.KeepAliveIdle, c.KeepAliveInterval, c.KeepAliveCount = true, tm.Idle, tm.Interval, 1000
	c.UserTimeout = tm.UserTimeout
	return c
}

// labProbe is one keep-alive probe of the lab's, as its send hook saw it.
type labProbe struct {
	at       time.Duration
	answered bool
}

// keepAlive is tcp/keepalive's two connections and what their hooks saw.
type keepAlive struct {
	*labRun
	kp *kernelPeer
	tm keepAliveTimers

	a, b   *rawtcp.Conn
	ka, kb *net.TCPConn
	kaErr  error // the kernel's read on a's socket

	mu        sync.Mutex
	silent    bool          // the link drops the kernel's segments on a
	probes    []labProbe    // the lab's probes on a
	heardAt   time.Duration // a: when the last kernel segment reached the lab (hook time)
	dropped   int           // a: kernel segments the link dropped
	kaArms    []time.Duration
	answered  chan struct{} // closed when the lab's first probe is answered
	kprobe    bool          // b: a kernel probe waits for its answer
	kprobes   int           // b: the kernel's probes
	kanswered int           // b: the lab's answers to them
	kanswers  chan struct{}

	counter  [2]uint64 // TcpExt.TCPKeepAlive before and after the kernel's probes
	kernelOK bool      // b: data still flows after the probes

	ut *userTimeoutData // the leg with data outstanding (exp_keepalive_usertimeout.go)
}

// isLabProbe: an empty ACK one below SND.UNA with nothing outstanding.
func isLabProbe(s *tcpstate.Segment, t *tcpstate.TCB) bool {
	return s.Flags == tcpstate.ACK && len(s.Payload) == 0 && t.SndUna == t.SndNxt && s.Seq == t.SndUna-1
}

// isKernelProbe: an empty ACK one below RCV.NXT.
func isKernelProbe(s *tcpstate.Segment, t *tcpstate.TCB) bool {
	return s.Flags == tcpstate.ACK && len(s.Payload) == 0 && s.Seq == t.RcvNxt-1
}

// sendA notes the lab's probes on a. Hooks run under the connection's
// lock and never block.
func (x *keepAlive) sendA(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
	if isLabProbe(s, t) {
		x.mu.Lock()
		x.probes = append(x.probes, labProbe{at: x.st.Now()})
		x.mu.Unlock()
	}
	return rawtcp.Pass
}

// recvA passes the kernel's segments until its answer to the lab's first
// probe, and drops every one after it: the kernel goes silent.
func (x *keepAlive) recvA(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.silent {
		x.dropped++
		return rawtcp.Drop
	}
	x.heardAt = x.st.Now()
	if n := len(x.probes); n > 0 && s.Flags&tcpstate.ACK != 0 && len(s.Payload) == 0 {
		x.probes[n-1].answered = true
		x.silent = true
		close(x.answered)
	}
	return rawtcp.Pass
}

// eventsA notes the keep-alive timer's deadlines on a.
func (x *keepAlive) eventsA(_ time.Duration, e tcpstate.Event) {
	if e.Kind == tcpstate.EventTimerArmed && e.Timer == tcpstate.TimerKeepAlive {
		x.mu.Lock()
		x.kaArms = append(x.kaArms, e.At)
		x.mu.Unlock()
	}
}

// labProbesSilentKernel: the lab's keep-alive finds the kernel, then loses
// it, and the user timeout ends the connection.
func (x *keepAlive) labProbesSilentKernel() error {
	ctx := x.env.Ctx
	cfg := labKeepAliveConfig(x.env, x.tm)
	// The bound guards against an engine that never gives up: the idle
	// time, the user timeout and room for a loaded machine.
	bound := x.tm.Idle + x.tm.UserTimeout + 20*time.Second
	a, k, err := x.connectKernel(ctx, x.kp, "lab keep-alive", &rawtcp.ConnOptions{Config: &cfg, SendHook: x.sendA, RecvHook: x.recvA, Events: x.eventsA}, bound)
	if err != nil {
		return err
	}
	x.a, x.ka = a, k
	kread := make(chan error, 1)
	go func() { // the kernel reads until its socket fails or ends
		b := make([]byte, 512)
		for {
			if _, err := k.Read(b); err != nil {
				kread <- err
				return
			}
		}
	}()
	select {
	case <-x.answered:
	case <-a.Done():
		return fmt.Errorf("tcpexp: the lab's keep-alive connection closed (%v) before a probe was answered", a.Err())
	case <-time.After(bound):
		return fmt.Errorf("tcpexp: no answered keep-alive probe within %v", bound)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-a.Done():
	case <-time.After(bound):
		return fmt.Errorf("tcpexp: the lab's keep-alive did not give up within %v of silence", bound)
	case <-ctx.Done():
		return ctx.Err()
	}
	select { // the lab's RST reaches the kernel
	case x.kaErr = <-kread:
	case <-time.After(bound):
		x.kaErr = errors.New("the kernel's read did not end")
	}
	return nil
}

// setKernelKeepAlive turns on the kernel socket's keep-alive with
// setsockopt: SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT.
func setKernelKeepAlive(k *net.TCPConn, tm keepAliveTimers) error {
	rc, err := k.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range []struct {
			level, opt, v int
			name          string
		}{
			{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1, "SO_KEEPALIVE"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(tm.KernelIdle / time.Second), "TCP_KEEPIDLE"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(tm.KernelInterval / time.Second), "TCP_KEEPINTVL"},
			{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, tm.KernelCount, "TCP_KEEPCNT"},
		} {
			if e := unix.SetsockoptInt(int(fd), o.level, o.opt, o.v); e != nil {
				serr = fmt.Errorf("tcpexp: setsockopt %s=%d: %w", o.name, o.v, e)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// recvB notes the kernel's probes on b; sendB the lab's answers.
func (x *keepAlive) recvB(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
	if isKernelProbe(s, t) {
		x.mu.Lock()
		x.kprobes++
		x.kprobe = true
		x.mu.Unlock()
	}
	return rawtcp.Pass
}

func (x *keepAlive) sendB(s *tcpstate.Segment, t *tcpstate.TCB) rawtcp.Verdict {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.kprobe && s.Flags == tcpstate.ACK && len(s.Payload) == 0 && s.Ack == t.RcvNxt {
		x.kprobe = false
		x.kanswered++
		select {
		case x.kanswers <- struct{}{}:
		default:
		}
	}
	return rawtcp.Pass
}

// kernelProbesLab: the kernel's keep-alive probes the idle lab, which
// answers; then data still flows and both close.
func (x *keepAlive) kernelProbesLab() error {
	ctx := x.env.Ctx
	tm := x.tm
	bound := tm.KernelIdle + time.Duration(tm.KernelProbes)*(tm.KernelIdle+tm.KernelInterval) + 20*time.Second
	b, k, err := x.connectKernel(ctx, x.kp, "kernel keep-alive", &rawtcp.ConnOptions{SendHook: x.sendB, RecvHook: x.recvB}, bound)
	if err != nil {
		return err
	}
	x.b, x.kb = b, k
	before, err := readTCPKeepAlive()
	if err != nil {
		return err
	}
	if err := setKernelKeepAlive(k, tm); err != nil {
		return err
	}
	timeout := time.NewTimer(bound)
	defer timeout.Stop()
	for n := 0; n < tm.KernelProbes; n++ {
		select {
		case <-x.kanswers:
		case <-b.Done():
			return fmt.Errorf("tcpexp: the connection the kernel probes closed (%v)", b.Err())
		case <-timeout.C:
			return fmt.Errorf("tcpexp: %d of %d kernel keep-alive probes answered within %v", n, tm.KernelProbes, bound)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	after, err := readTCPKeepAlive()
	if err != nil {
		return err
	}
	x.counter = [2]uint64{before, after}
	// The connection the kernel probed is alive: a word each way, then
	// both close.
	if _, err := k.Write([]byte("alive")); err != nil {
		return fmt.Errorf("kernel write: %w", err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(b, got); err != nil {
		return fmt.Errorf("lab read: %w", err)
	}
	x.kernelOK = string(got) == "alive"
	_ = b.CloseWrite()
	if _, err := io.ReadAll(k); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	_ = k.Close()
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	return b.WaitState(wctx, tcpstate.Closed)
}

// readTCPKeepAlive reads the kernel's TcpExt TCPKeepAlive counter (keep-alive
// probes sent) of the lab's namespace.
func readTCPKeepAlive() (uint64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errNetstat, err)
	}
	m, err := parseNetstat(b)
	if err != nil {
		return 0, err
	}
	v, ok := m["TcpExt.TCPKeepAlive"]
	if !ok {
		return 0, fmt.Errorf("%w: no TcpExt counter TCPKeepAlive", errNetstat)
	}
	return v, nil
}

// keepAliveVerdict is what the lab's keep-alive connection showed, taken
// from its hooks, events and history.
type keepAliveVerdict struct {
	probes, unanswered int
	firstAnswered      bool
	heardAt            time.Duration // the kernel last reached the lab (hook time)
	heardRec           time.Duration // the record of that segment (after the engine took it)
	lastArm            time.Duration // the keep-alive timer's last deadline
	closedAt           time.Duration
	cause              tcpstate.Cause
	err                error
	rstSent            bool
}

// judgeUserTimeout says whether the keep-alive gave up at the user timeout:
// never before it (CLOSED at least the user timeout after the hook saw the
// last kernel segment) and never scheduling a probe past it (the keep-alive
// timer's last deadline at most the user timeout after that segment's
// record; the engine's own "last heard" lies between the two times), with
// the keep-alive timeout's cause and ErrTimeout.
func judgeUserTimeout(v keepAliveVerdict, ut time.Duration) (bool, string) {
	ok := v.closedAt >= v.heardAt+ut && v.lastArm <= v.heardRec+ut && v.closedAt >= v.lastArm &&
		v.cause == tcpstate.CauseKeepAliveTimeout && errors.Is(v.err, tcpstate.ErrTimeout)
	return ok, fmt.Sprintf("kernel last heard at %v (engine clock); the keep-alive timer's last deadline %v after it, CLOSED %v after it "+
		"(user timeout %v) on %q: %v", fmtMs(v.heardAt), fmtMs(v.lastArm-v.heardAt), fmtMs(v.closedAt-v.heardAt), ut, v.cause, v.err)
}

// verdictA gathers the lab's keep-alive connection's verdict.
func (x *keepAlive) verdictA() keepAliveVerdict {
	x.mu.Lock()
	defer x.mu.Unlock()
	v := keepAliveVerdict{probes: len(x.probes), heardAt: x.heardAt, err: x.a.Err()}
	for i, p := range x.probes {
		if i == 0 {
			v.firstAnswered = p.answered
		}
		if !p.answered {
			v.unanswered++
		}
	}
	if n := len(x.kaArms); n > 0 {
		v.lastArm = x.kaArms[n-1]
	}
	for _, h := range x.a.History() {
		if h.To == tcpstate.Closed {
			v.closedAt, v.cause = h.At, h.Cause
		}
	}
	for _, rec := range x.st.Records() {
		if rec.Conn != x.a.ID() {
			continue
		}
		if !rec.Sent && rec.Note == "" && rec.At >= v.heardAt {
			if v.heardRec == 0 {
				v.heardRec = rec.At
			}
		}
		if rec.Sent && rec.Seg.Flags&tcpstate.RST != 0 {
			v.rstSent = true
		}
	}
	return v
}

// check judges both connections.
func (x *keepAlive) check() {
	env, tm := x.env, x.tm
	v := x.verdictA()
	env.Check("the lab's first keep-alive probe, after the idle time, is answered by the kernel", v.firstAnswered,
		"%d probes of <SEQ=SND.UNA-1>, the first answered: %v (idle %v)", v.probes, v.firstAnswered, tm.Idle)
	x.mu.Lock()
	dropped := x.dropped
	x.mu.Unlock()
	env.Check("silenced by the link, the kernel's answers never reach the lab and the lab's probes go unanswered", v.unanswered >= 1 && dropped >= 1,
		"%d probes unanswered; %d kernel segments dropped by the lab's link (the kernel still answers on the wire)", v.unanswered, dropped)
	ok, why := judgeUserTimeout(v, tm.UserTimeout)
	env.Check("the user timeout ends the connection: keep-alive gives up at the user timeout after the kernel was last heard, not before, with no probe scheduled past it", ok, "%s", why)
	env.Check("the lab resets the dead connection and the kernel's read fails with ECONNRESET", v.rstSent && errors.Is(x.kaErr, syscall.ECONNRESET),
		"lab sent RST: %v; kernel read: %v", v.rstSent, x.kaErr)
	x.mu.Lock()
	kprobes, kanswered := x.kprobes, x.kanswered
	x.mu.Unlock()
	delta := x.counter[1] - x.counter[0]
	env.Check("the kernel's keep-alive (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT) probes the idle lab and each probe is answered",
		kprobes >= tm.KernelProbes && kanswered >= tm.KernelProbes && delta >= uint64(tm.KernelProbes),
		"%d kernel probes <SEQ=RCV.NXT-1> reached the lab, %d answered with an ACK; TcpExt TCPKeepAlive %d → %d (+%d)",
		kprobes, kanswered, x.counter[0], x.counter[1], delta)
	env.Check("the connection the kernel probed stays up: data still flows after the probes", x.kernelOK && hasPath(x.b, tcpstate.Established, tcpstate.Closed),
		"kernel→lab \"alive\" read: %v; lab path %s", x.kernelOK, pathOr(x.b))
	env.Table("keep-alive, both ways", [][]string{
		{"", "probes", "answered", "ended"},
		{"lab → kernel (user timeout " + tm.UserTimeout.String() + ")", fmt.Sprint(v.probes), fmt.Sprint(v.probes - v.unanswered),
			fmt.Sprintf("%s after the kernel was last heard: %v", fmtMs(v.closedAt-v.heardAt), v.cause)},
		{"kernel → lab (TCP_KEEPIDLE " + tm.KernelIdle.String() + ")", fmt.Sprint(kprobes), fmt.Sprint(kanswered), "no: closed by its users"},
	})
	if x.ut != nil && x.ut.c != nil {
		uv := x.ut.verdict(x.st.Records())
		env.Table("the user timeout, with data outstanding", [][]string{
			{"user timeout", "transmissions of the data", "kernel ACKs dropped by the link", "ended"},
			{tm.DataUserTimeout.String(), fmt.Sprint(uv.transmissions), fmt.Sprint(uv.dropped),
				fmt.Sprintf("%s after the write: %v, no RST (the kernel's socket is left ESTABLISHED)", fmtMs(uv.closedAt-uv.writeAt), uv.cause)},
		})
	}
	env.Metric("lab_keepalive_probes_count", float64(v.probes))
	env.Metric("lab_keepalive_unanswered_count", float64(v.unanswered))
	env.Metric("kernel_dropped_by_link_count", float64(dropped))
	env.Metric("user_timeout_ms", float64(tm.UserTimeout.Milliseconds()))
	env.Metric("silent_to_closed_ms", float64((v.closedAt - v.heardAt).Milliseconds()))
	env.Metric("kernel_keepalive_probes_count", float64(kprobes))
	env.Metric("kernel_tcpkeepalive_counter_delta", float64(delta))
}

// annotate adds to the comments of the probes, their answers and the
// reset what each is.
func (x *keepAlive) annotate() {
	n := 0
	kn := 0
	probeOut := false
	for i := range x.recs {
		rec := &x.recs[i]
		p, ok := x.recPkt[i]
		t := rec.TCB
		seg := tcpstate.Segment{Flags: rec.Seg.Flags, Seq: rec.Seg.Seq, Ack: rec.Seg.Ack}
		if rec.Seg.Len > 0 {
			seg.Payload = make([]byte, rec.Seg.Len)
		}
		var note string
		switch {
		case x.a != nil && rec.Conn == x.a.ID() && rec.Sent && rec.Seg.Flags&tcpstate.RST != 0:
			note = "the lab gives up: the user timeout has passed since the kernel was last heard, with keep-alive probes unanswered; it resets the connection and its user gets ETIMEDOUT"
		case x.a != nil && rec.Conn == x.a.ID() && rec.Sent && isLabProbe(&seg, &t):
			n++
			probeOut = true
			note = fmt.Sprintf("the lab's keep-alive probe %d: <SEQ=SND.UNA-1>, no data, below the kernel's window, so a live kernel must answer with an ACK (RFC 1122 §4.2.3.6)", n)
		case x.a != nil && rec.Conn == x.a.ID() && !rec.Sent && probeOut && rec.Note != "":
			probeOut = false
			note = "the kernel answers the probe, but the lab's link drops the answer: to the lab the kernel has gone silent"
		case x.a != nil && rec.Conn == x.a.ID() && !rec.Sent && probeOut:
			probeOut = false
			note = "the kernel's answer to the lab's keep-alive probe: it is alive"
		case x.b != nil && rec.Conn == x.b.ID() && !rec.Sent && isKernelProbe(&seg, &t):
			kn++
			probeOut = true
			note = fmt.Sprintf("the kernel's keep-alive probe %d (SO_KEEPALIVE, TCP_KEEPIDLE %v): <SEQ=its SND.UNA-1>, below the lab's window", kn, x.tm.KernelIdle)
		case x.b != nil && rec.Conn == x.b.ID() && rec.Sent && probeOut && rec.Seg.Flags == tcpstate.ACK:
			probeOut = false
			note = "the lab answers the kernel's keep-alive probe with an ACK of RCV.NXT, as for any segment outside its window"
		}
		if note != "" && ok {
			x.pkts[p].Comment(note)
		}
	}
}
