package tcpexp

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/syn-cookies: a stateless server inside a stateful protocol. A kernel
// listener with backlog 1 answers SYNs it has no room for with SYN
// cookies (net.ipv4.tcp_syncookies = 1), or every SYN (= 2): its SYN-ACK's
// ISN encodes the connection, it keeps no SYN-RECEIVED socket, and the
// client's final ACK brings the cookie back. What the cookie cannot hold
// the kernel forgets, unless timestamps carry it.

// synCookieBacklog is the listen() backlog of the experiment's listener.
const synCookieBacklog = 1

// maxFillers bounds the SYNs sent to fill the listener's SYN queue.
const maxFillers = 6

// cookieDialTimeout bounds one handshake step (a SYN answered, an accept,
// a RST awaited).
const cookieDialTimeout = 5 * time.Second

func runSynCookies(env *lab.Env) error {
	cfg := labConfig(env)
	// The connections' hooks choose SACK-permitted and timestamps per
	// connection and write them on the wire themselves; the engine's own
	// (on by default) stay off so that what each SYN offers is the hook's.
	cfg.DisableSACK, cfg.DisableTimestamps = true, true
	r, err := newLabRun(env, cfg)
	if err != nil {
		return err
	}
	x := &synCookies{labRun: r, cfg: cfg, cookieISN: map[uint32]bool{}, samples: map[sampleKey][]string{}}
	if err := x.open(); err != nil {
		return err
	}
	x.queueFull()
	x.always()
	r.kernelViews = x.kernelViews
	r.kernelHow = "the kernel's state is the listener's or the connection's socket as the experiment measured them: " +
		"whether a SYN-ACK is a cookie from the TcpExt SyncookiesSent counter read before and after it, " +
		"the sock_diag readings beside a segment taken right after it (while the lab's next segment was held back); " +
		"the lab's link withholds the ACKs of handshakes the experiment never completes (recorded as dropped by the link)"
	r.stop()
	x.check()
	x.draw()
	r.feature(featureSYNCookies)
	r.states(tcpstate.SynSent, tcpstate.Established)
	return nil
}

// synCookies is the experiment's lab, listener and measurements.
type synCookies struct {
	*labRun
	cfg tcpstate.Config
	kp  *kernelPeer

	backlog   uint32                 // the listener's backlog as sock_diag reports it
	cookieISN map[uint32]bool        // a SYN-ACK's ISN → it was a cookie (measured)
	samples   map[sampleKey][]string // per occurrence of the segment, in capture order

	// tcp_syncookies = 1, the SYN queue full.
	fullLeg               cookieLeg
	fillers               []*cookieConn
	probe, forged         *cookieConn
	forgedRST             bool   // the kernel answered the forged ACK with RST
	forgedRSTSeq          uint32 // its sequence number
	forgedFailed          uint64 // SyncookiesFailed across the forged ACK
	forgedDiag            string // sock_diag after the forged ACK
	forgedRecv            uint64 // SyncookiesRecv across the true ACK after it
	fullRequestsAfterFill int    // request sockets on the listener after the fill
	retransmitErr         error  // waiting for the request sockets' retransmissions
	retransmitWait        time.Duration

	// tcp_syncookies = 2.
	alwaysLeg     cookieLeg
	noTS, withTS  *cookieConn
	decode        *cookieConn
	decodeRounds  int
	decodeCookies []mssCookie // the decode probe's last round
}

// cookieLeg is one setting of tcp_syncookies with the counters around it.
type cookieLeg struct {
	setting       string
	before, after cookieCounters
	err           error
}

// mssCookie is one SYN of the MSS decode probe and the cookie it drew.
type mssCookie struct {
	mss    uint16
	iss    uint32 // the SYN's sequence number
	cookie uint32
	sent   uint64 // SyncookiesSent across it
	socket bool   // sock_diag found a socket for the 4-tuple after its SYN-ACK
}

// sampleKey names one captured segment of a lab port: what the sock_diag
// samples taken right after it are attached to.
type sampleKey struct {
	port     uint16
	fromLab  bool
	flags    uint8
	seq, ack uint32
}

// cookieConn is one lab connection to the listener and what was measured
// of it.
type cookieConn struct {
	label  string
	c      *rawtcp.Conn
	hook   *cookieHook
	err    error
	iss    uint32
	irs    uint32 // the SYN-ACK's ISN
	synAck tcpstate.Segment
	sent   uint64 // SyncookiesSent across its SYN
	cookie bool   // SyncookiesSent rose by one and sock_diag found no socket

	diagSynAck string        // sock_diag for its 4-tuple after its SYN-ACK ("none" or a state)
	synAcks    int           // SYN-ACKs the lab received for it, retransmissions included
	rto        time.Duration // from its SYN-ACK to the first retransmission
	watched    time.Duration // from its SYN-ACK to the end of the watch for retransmissions
	requests   int           // request sockets on the listener then

	// After its final ACK (completed connections).
	accepted  bool
	acceptErr error
	diagAck   string
	recv      uint64 // SyncookiesRecv across the final ACK
	info      kernelInfo
}

// cookieHook is a connection's send and receive hooks: SACK-permitted and
// timestamps on the SYN (the engine's own are off here), timestamps on
// every segment when on, and either the final ACK held until Release (a
// handshake to complete) or every segment after the SYN withheld (a SYN
// never completed).
type cookieHook struct {
	sack, ts bool
	hold     bool
	held     bool          // the first segment after the SYN is held (under the connection's lock)
	peerTS   atomic.Uint32 // the kernel's last TSval
	clock    func() uint32
	synWS    atomic.Int32  // the SYN's window scale, -1 for none
	synMSS   atomic.Uint32 // the SYN's MSS option
}

func (h *cookieHook) send(seg *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
	syn := seg.Flags&tcpstate.SYN != 0
	if syn {
		seg.Options.SACKPermitted = h.sack
		ws := int32(-1)
		if seg.Options.HasWScale {
			ws = int32(seg.Options.WScale)
		}
		h.synWS.Store(ws)
		h.synMSS.Store(uint32(seg.Options.MSS))
	}
	if h.ts {
		seg.Options.HasTimestamps, seg.Options.TSVal, seg.Options.TSEcr = true, h.clock(), h.peerTS.Load()
	}
	switch {
	case syn:
		return rawtcp.Pass
	case !h.hold:
		return rawtcp.Drop
	case !h.held:
		h.held = true
		return rawtcp.Hold
	}
	return rawtcp.Pass
}

func (h *cookieHook) recv(seg *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
	if seg.Options.HasTimestamps {
		h.peerTS.Store(seg.Options.TSVal)
	}
	return rawtcp.Pass
}

// open sets the namespace's sysctls (restored when the experiment ends)
// and opens the listener with backlog 1.
func (x *synCookies) open() error {
	// tcp_timestamps = 2: timestamps without the per-address random offset
	// the kernel otherwise adds to TSval, so a cookie SYN-ACK's low TSval
	// bits can be read as the kernel wrote them.
	if err := setSysctl(x.env, "net/ipv4/tcp_timestamps", "2"); err != nil {
		return err
	}
	kp, err := listenKernelBacklog(synCookieBacklog)
	if err != nil {
		return err
	}
	x.env.Cleanup(func() { kp.Close() })
	x.kp = kp
	socks, err := rawtcp.KernelSockets(kp.addr.Port())
	for _, s := range socks {
		if s.State == kListen {
			x.backlog = s.WQueue
		}
	}
	if err != nil {
		x.env.Logf("sock_diag dump: %v", err)
	}
	return nil
}

// setSysctl writes a sysctl of the lab's network namespace (name as a path
// under /proc/sys) and restores the old value when the experiment ends.
func setSysctl(env *lab.Env, name, value string) error {
	path := "/proc/sys/" + name
	old, err := os.ReadFile(path)
	if err == nil {
		err = os.WriteFile(path, []byte(value), 0)
	}
	if err != nil {
		return &lab.EnvError{What: "setting " + strings.ReplaceAll(name, "/", ".") + " in the lab's namespace", Err: err,
			Remedy: "the namespace's own sysctls are writable by its root; run inside the statelab sandbox"}
	}
	env.Cleanup(func() { _ = os.WriteFile(path, old, 0) })
	return nil
}

// setCookies sets tcp_syncookies for a leg and reads the counters.
func (x *synCookies) setCookies(leg *cookieLeg, value string) bool {
	leg.setting = value
	if leg.err = setSysctl(x.env, "net/ipv4/tcp_syncookies", value); leg.err != nil {
		return false
	}
	leg.before, leg.err = readCookieCounters()
	return leg.err == nil
}

func (leg *cookieLeg) end() {
	if leg.err == nil {
		leg.after, leg.err = readCookieCounters()
	}
}

// queueFull: tcp_syncookies = 1. SYNs whose handshakes never complete
// fill the listener's SYN queue; the SYNs after them are answered with
// cookies. One cookie'd handshake completes; one is completed with a
// forged ACK first.
func (x *synCookies) queueFull() {
	leg := &x.fullLeg
	if !x.setCookies(leg, "1") {
		return
	}
	defer leg.end()
	cookied := 0
	for i := 0; i < maxFillers && cookied < 2; i++ {
		f := x.dial(fmt.Sprintf("queue full: SYN %d, never completed", i+1), &cookieHook{sack: true}, x.cfg)
		x.fillers = append(x.fillers, f)
		if f.err != nil {
			return
		}
		if f.cookie {
			cookied++
		}
	}
	x.fullRequestsAfterFill = x.requestSockets()
	x.probe = x.dial("queue full: cookie'd and completed", &cookieHook{sack: true, hold: true}, x.cfg)
	if x.probe.err == nil {
		x.complete(x.probe, x.probe.c.Faults().Release)
	}
	x.forged = x.dial("queue full: forged final ACK", &cookieHook{sack: true}, x.cfg)
	if x.forged.err == nil {
		x.forge(x.forged)
	}
	x.awaitRetransmissions()
}

// awaitRetransmissions waits until every request socket of the fill has
// retransmitted its SYN-ACK (the kernel's SYN-ACK timer, about 1 s: it
// remembers those SYNs) and counts the SYN-ACKs of the cookie'd SYNs,
// which nothing is left to retransmit.
func (x *synCookies) awaitRetransmissions() {
	synAcks := func(recs []rawtcp.Record, c *rawtcp.Conn) []rawtcp.Record {
		var out []rawtcp.Record
		for _, rec := range recs {
			if rec.Conn == c.ID() && !rec.Sent && rec.Seg.Flags&(tcpstate.SYN|tcpstate.ACK) == tcpstate.SYN|tcpstate.ACK {
				out = append(out, rec)
			}
		}
		return out
	}
	ctx, cancel := context.WithTimeout(x.env.Ctx, cookieDialTimeout)
	defer cancel()
	start := x.st.Now()
	x.retransmitErr = x.st.WaitRecords(ctx, func(recs []rawtcp.Record) bool {
		for _, f := range x.fillers {
			if f.err == nil && !f.cookie && len(synAcks(recs, f.c)) < 2 {
				return false
			}
		}
		return true
	})
	x.retransmitWait = x.st.Now() - start
	// Absence takes a window: watch each cookie'd SYN for longer after its
	// SYN-ACK than the request sockets took to retransmit theirs.
	recs := x.st.Records()
	var rto, lastCookie time.Duration
	for _, f := range x.fillers {
		if f.err != nil {
			continue
		}
		if sa := synAcks(recs, f.c); len(sa) >= 2 && !f.cookie {
			rto = max(rto, sa[1].At-sa[0].At)
		} else if len(sa) >= 1 && f.cookie {
			lastCookie = max(lastCookie, sa[0].At)
		}
	}
	if x.retransmitErr == nil {
		select {
		case <-time.After(lastCookie + rto + quietMargin - x.st.Now()):
		case <-x.env.Ctx.Done():
		}
	}
	now := x.st.Now()
	recs = x.st.Records()
	for _, f := range x.fillers {
		if f.err != nil {
			continue
		}
		sa := synAcks(recs, f.c)
		f.synAcks = len(sa)
		if len(sa) >= 2 {
			f.rto = sa[1].At - sa[0].At
		}
		if len(sa) >= 1 {
			f.watched = now - sa[0].At
		}
	}
}

// quietMargin is how much longer than the request sockets' retransmission
// time each cookie'd SYN is watched for a retransmission of its SYN-ACK.
const quietMargin = 200 * time.Millisecond

// always: tcp_syncookies = 2, every SYN cookie'd. Without timestamps the
// cookie cannot carry window scale and SACK; with them it can. Then the
// MSS index in the cookie's low bits.
func (x *synCookies) always() {
	leg := &x.alwaysLeg
	if !x.setCookies(leg, "2") {
		return
	}
	defer leg.end()
	cfg := x.cfg
	cfg.MSS = 1400 // between two of the cookie's MSS values
	x.noTS = x.dial("always: no timestamps, MSS 1400", &cookieHook{sack: true, hold: true}, cfg)
	if x.noTS.err == nil {
		x.complete(x.noTS, x.noTS.c.Faults().Release)
	}
	st := x.st
	x.withTS = x.dial("always: timestamps", &cookieHook{sack: true, ts: true, hold: true,
		clock: func() uint32 { return uint32(st.Now()/time.Millisecond) + 1 }}, x.cfg)
	if x.withTS.err == nil {
		x.complete(x.withTS, x.withTS.c.Faults().Release)
	}
	x.decode = x.dial("always: MSS index", &cookieHook{}, x.cfg)
	if x.decode.err == nil {
		x.decodeMSS(x.decode)
	}
}

// dial opens a lab connection to the listener with hook h; it returns once
// the SYN-ACK has arrived (the lab is ESTABLISHED; its ACK is held or
// withheld) and records whether the SYN-ACK was a cookie: the
// SyncookiesSent counter across the SYN and sock_diag for its 4-tuple.
func (x *synCookies) dial(label string, h *cookieHook, cfg tcpstate.Config) *cookieConn {
	cc := &cookieConn{label: label, hook: h}
	ctx, cancel := context.WithTimeout(x.env.Ctx, cookieDialTimeout)
	defer cancel()
	before, err := readCookieCounters()
	if err != nil {
		cc.err = err
		return cc
	}
	c, err := x.st.Dial(ctx, x.kp.addr, &rawtcp.ConnOptions{Config: &cfg, SendHook: h.send, RecvHook: h.recv, Observe: true})
	x.track(c, label)
	cc.c = c
	if err != nil {
		cc.err = fmt.Errorf("%s: dial: %w", label, err)
		return cc
	}
	after, err := readCookieCounters()
	if err != nil {
		cc.err = err
		return cc
	}
	t := c.TCB()
	cc.iss, cc.irs = uint32(t.ISS), uint32(t.IRS)
	cc.sent = after.since(before).SyncookiesSent
	select {
	case cc.synAck = <-c.Observed():
	case <-ctx.Done():
	}
	st, ok := rawtcp.KernelState(x.kp.addr, c.Local())
	cc.diagSynAck = diagText(st, ok)
	cc.requests = x.requestSockets()
	cc.cookie = cc.sent == 1 && !ok
	x.cookieISN[cc.irs] = cc.cookie
	x.sample(sampleKey{c.Local().Port(), false, uint8(tcpstate.SYN | tcpstate.ACK), cc.irs, cc.iss + 1},
		"sock_diag after this SYN-ACK reached the lab: %s for this connection, %d request socket(s) on the listener; TcpExt SyncookiesSent +%d",
		cc.diagSynAck, cc.requests, cc.sent)
	return cc
}

// complete sends the connection's final ACK (release) and measures: the
// kernel's accept() returns the connection, sock_diag finds it
// ESTABLISHED, SyncookiesRecv rises, TCP_INFO says what the kernel
// remembers of the SYN.
func (x *synCookies) complete(cc *cookieConn, release func()) {
	ctx, cancel := context.WithTimeout(x.env.Ctx, cookieDialTimeout)
	defer cancel()
	before, _ := readCookieCounters()
	release()
	k, err := x.kp.accept(ctx)
	if err != nil {
		cc.acceptErr = err
		return
	}
	// Aborted (RST) when the experiment ends, while the lab's stack is still
	// open: a FIN the lab's link withholds the ACK of would be retransmitted
	// into the next experiment's capture.
	x.env.Cleanup(func() {
		_ = k.SetLinger(0)
		k.Close()
	})
	if rp := netipPort(k.RemoteAddr()); rp != cc.c.Local().Port() {
		cc.acceptErr = fmt.Errorf("accept() returned the connection from port %d, not %d", rp, cc.c.Local().Port())
		return
	}
	cc.accepted = true
	after, _ := readCookieCounters()
	cc.recv = after.since(before).SyncookiesRecv
	st, ok := rawtcp.KernelState(x.kp.addr, cc.c.Local())
	cc.diagAck = diagText(st, ok)
	cc.info, err = readKernelInfo(k)
	if err != nil {
		x.env.Logf("%s: TCP_INFO: %v", cc.label, err)
	}
	x.sample(sampleKey{cc.c.Local().Port(), true, uint8(tcpstate.ACK), cc.iss + 1, cc.irs + 1},
		"sock_diag after this ACK: %s; accept() returned the connection; TcpExt SyncookiesRecv +%d", cc.diagAck, cc.recv)
}

// forge sends a final ACK whose ACK number is one more than the cookie's
// +1, then the true one: the first is refused (SyncookiesFailed, a RST or
// nothing, measured), the second completes the connection.
func (x *synCookies) forge(cc *cookieConn) {
	before, _ := readCookieCounters()
	f := tcpstate.Segment{Seq: tcpstate.Seq(cc.iss + 1), Ack: tcpstate.Seq(cc.irs + 2), Flags: tcpstate.ACK, Window: 65535}
	if err := cc.c.Faults().Inject(f); err != nil {
		cc.err = fmt.Errorf("%s: injecting the forged ACK: %w", cc.label, err)
		return
	}
	ctx, cancel := context.WithTimeout(x.env.Ctx, cookieDialTimeout)
	err := x.st.WaitRecords(ctx, func(recs []rawtcp.Record) bool {
		for _, rec := range recs {
			if rec.Conn == cc.c.ID() && !rec.Sent && rec.Seg.Flags&tcpstate.RST != 0 {
				x.forgedRST, x.forgedRSTSeq = true, uint32(rec.Seg.Seq)
				return true
			}
		}
		return false
	})
	cancel()
	if err != nil {
		x.env.Logf("no RST answered the forged ACK: %v", err)
	}
	after, _ := readCookieCounters()
	x.forgedFailed = after.since(before).SyncookiesFailed
	st, ok := rawtcp.KernelState(x.kp.addr, cc.c.Local())
	x.forgedDiag = diagText(st, ok)
	x.sample(sampleKey{cc.c.Local().Port(), true, uint8(tcpstate.ACK), cc.iss + 1, cc.irs + 2},
		"the lab's ACK number is the cookie+2, one off (injected): sock_diag after it: %s for this connection; TcpExt SyncookiesFailed +%d; "+
			"Wireshark flags it 'ACKed segment that wasn't captured': it acknowledges a byte the kernel never sent", x.forgedDiag, x.forgedFailed)
	x.complete(cc, func() {
		t := tcpstate.Segment{Seq: tcpstate.Seq(cc.iss + 1), Ack: tcpstate.Seq(cc.irs + 1), Flags: tcpstate.ACK, Window: 65535}
		if err := cc.c.Faults().Inject(t); err != nil {
			cc.acceptErr = err
		}
	})
	x.forgedRecv = cc.recv
}

// decodeISSStep is how far apart the ISSs of the MSS probe's SYNs are:
// each SYN from the probe's port starts a connection of its own (for the
// lab's analysis and Wireshark alike), and the ISS difference, which the
// cookie adds as it is, is taken out again.
const decodeISSStep = 1000

// decodeMSS sends SYNs from the decode probe's port with other ISSs and
// MSS options: less their ISS differences, their cookies differ, in their
// low 24 bits, by the MSS indexes. A round counts when its last SYN (the
// first's MSS again) drew the first's cookie plus exactly the ISS
// difference: the minute counter did not move between.
func (x *synCookies) decodeMSS(cc *cookieConn) {
	first := uint16(cc.hook.synMSS.Load())
	mssList := []uint16{536, 1400, 1440, first}
	x.sample(sampleKey{cc.c.Local().Port(), true, uint8(tcpstate.SYN), cc.iss, 0},
		"the first of the SYNs from this port whose cookies are compared (MSS %d)", first)
	n := uint32(0)
	for round := range 2 {
		x.decodeRounds = round + 1
		var got []mssCookie
		if round == 0 {
			got = append(got, mssCookie{mss: first, iss: cc.iss, cookie: cc.irs, sent: cc.sent, socket: cc.diagSynAck != "no socket"})
		} else {
			mssList = append([]uint16{first}, mssList...)
		}
		for _, m := range mssList {
			n++
			mc, err := x.synFrom(cc, cc.iss+n*decodeISSStep, m)
			if err != nil {
				cc.err = err
				return
			}
			got = append(got, mc)
		}
		x.decodeCookies = got
		a, b := got[0], got[len(got)-1]
		if b.cookie-a.cookie == b.iss-a.iss {
			return
		}
	}
}

// synFrom injects a SYN from the connection's port with sequence number
// iss and MSS option mss and returns the cookie of the SYN-ACK it draws.
func (x *synCookies) synFrom(cc *cookieConn, iss uint32, mss uint16) (mssCookie, error) {
	before, err := readCookieCounters()
	if err != nil {
		return mssCookie{}, err
	}
	port := cc.c.Local().Port()
	x.sample(sampleKey{port, true, uint8(tcpstate.SYN), iss, 0},
		"the lab sends another SYN from the same port (injected), ISS +%d and MSS %d: a new connection for the kernel (Wireshark: reused ports), "+
			"and the cookie of the last kept no trace of it; the lab's TCB beside it is the probe connection's, whose numbers fall below this SYN's", iss-cc.iss, mss)
	ws := cc.hook.synWS.Load()
	opt := tcpstate.Options{MSS: mss, HasWScale: ws >= 0, WScale: uint8(max(ws, 0))}
	if err := cc.c.Faults().Inject(tcpstate.Segment{Seq: tcpstate.Seq(iss), Flags: tcpstate.SYN, Window: 65535, Options: opt}); err != nil {
		return mssCookie{}, err
	}
	ctx, cancel := context.WithTimeout(x.env.Ctx, cookieDialTimeout)
	defer cancel()
	for {
		select {
		case s := <-cc.c.Observed():
			if s.Flags&(tcpstate.SYN|tcpstate.ACK) != tcpstate.SYN|tcpstate.ACK || uint32(s.Ack) != iss+1 {
				continue
			}
			after, _ := readCookieCounters()
			mc := mssCookie{mss: mss, iss: iss, cookie: uint32(s.Seq), sent: after.since(before).SyncookiesSent}
			_, found := rawtcp.KernelState(x.kp.addr, cc.c.Local())
			mc.socket = found
			x.cookieISN[mc.cookie] = mc.sent == 1 && !found
			x.sample(sampleKey{port, false, uint8(tcpstate.SYN | tcpstate.ACK), mc.cookie, iss + 1},
				"answers the SYN with MSS %d: TcpExt SyncookiesSent +%d, sock_diag: %s for this connection",
				mss, mc.sent, diagText("", found))
			return mc, nil
		case <-ctx.Done():
			return mssCookie{}, fmt.Errorf("%s: no SYN-ACK to the SYN with MSS %d: %w", cc.label, mss, ctx.Err())
		}
	}
}

// requestSockets counts the listener's request sockets (SYN-RECEIVED in
// a sock_diag dump), -1 when the dump failed.
func (x *synCookies) requestSockets() int {
	socks, err := rawtcp.KernelSockets(x.kp.addr.Port())
	if err != nil {
		x.env.Logf("sock_diag dump: %v", err)
		return -1
	}
	n := 0
	for _, s := range socks {
		if s.State == kSynReceived {
			n++
		}
	}
	return n
}

// sample attaches a reading to the next occurrence of the captured segment
// key names: the n-th call for one key to its n-th occurrence.
func (x *synCookies) sample(k sampleKey, format string, args ...any) {
	x.samples[k] = append(x.samples[k], fmt.Sprintf(format, args...))
}

// kernelViews is the kernel's state beside each segment of a conversation
// (cookieKernel) with the readings taken right after it.
func (x *synCookies) kernelViews(c *conv) []kview {
	v := cookieKernel(c.segs, func(isn uint32) bool { return x.cookieISN[isn] })
	seen := map[sampleKey]int{}
	for j, s := range c.segs {
		k := sampleKey{c.lab.Port(), s.fromLab, s.flags & 0x3f, s.seq, s.ack}
		n := seen[k]
		seen[k]++
		if list := x.samples[k]; n < len(list) && list[n] != "" {
			if v[j].note != "" {
				v[j].note += "; "
			}
			v[j].note += list[n]
		}
	}
	return v
}

// diagText renders a sock_diag lookup: the state, or "no socket".
func diagText(state string, found bool) string {
	if !found {
		return "no socket"
	}
	return state
}

func netipPort(a net.Addr) uint16 {
	if t, ok := a.(*net.TCPAddr); ok {
		return uint16(t.Port)
	}
	return 0
}

// kernelInfo is what TCP_INFO says the kernel's socket negotiated.
type kernelInfo struct {
	options              uint8 // tcpi_options
	sndWScale, rcvWScale uint8
	sndMSS               uint32
}

// readKernelInfo reads TCP_INFO of a kernel socket. The window scales are
// the 4-bit fields after tcpi_options, which x/sys/unix's TCPInfo leaves
// in its padding: read at their offset in struct tcp_info.
func readKernelInfo(k *net.TCPConn) (kernelInfo, error) {
	raw, err := k.SyscallConn()
	if err != nil {
		return kernelInfo{}, err
	}
	var ki kernelInfo
	var serr error
	err = raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if serr != nil {
			return
		}
		// tcpi_snd_wscale:4, tcpi_rcv_wscale:4 (low bits first on the
		// little-endian machines the lab runs on).
		ws := (*[8]byte)(unsafe.Pointer(info))[6]
		ki = kernelInfo{options: info.Options, sndWScale: ws & 0xf, rcvWScale: ws >> 4, sndMSS: info.Snd_mss}
	})
	if err == nil {
		err = serr
	}
	return ki, err
}

func (ki kernelInfo) String() string {
	s := "options: " + tcpiOptions(ki.options)
	if ki.options&tcpiOptWScale != 0 {
		s += fmt.Sprintf(" (snd_wscale %d)", ki.sndWScale)
	}
	return s + ", snd_mss " + strconv.FormatUint(uint64(ki.sndMSS), 10)
}
