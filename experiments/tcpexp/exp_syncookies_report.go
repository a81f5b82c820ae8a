package tcpexp

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// tcp/syn-cookies' verdicts, tables, ladders and its row of "who holds the
// state", from what its legs measured (exp_syncookies.go).

// check judges the measurements, each check blaming the step that failed.
func (x *synCookies) check() {
	env := x.env
	env.Check(fmt.Sprintf("listen(fd, %d) took: sock_diag reports the listener's backlog as %d", synCookieBacklog, synCookieBacklog),
		x.backlog == synCookieBacklog, "the listener's idiag_wqueue (its backlog) is %d", x.backlog)
	x.checkQueueFull()
	x.checkAlways()
	x.checkCounters()
}

// legErr is the first error of a leg's steps.
func legErr(leg *cookieLeg, conns ...*cookieConn) error {
	if leg.err != nil {
		return leg.err
	}
	for _, c := range conns {
		switch {
		case c == nil:
			return fmt.Errorf("a step before this one failed")
		case c.err != nil:
			return c.err
		}
	}
	return nil
}

func (x *synCookies) checkQueueFull() {
	env := x.env
	var normal, cookied []*cookieConn
	normalOK, cookieOK := true, true
	for _, f := range x.fillers {
		if f.err != nil {
			continue
		}
		if f.cookie {
			cookied = append(cookied, f)
			cookieOK = cookieOK && f.diagSynAck == "no socket" && f.sent == 1
		} else {
			normal = append(normal, f)
			normalOK = normalOK && f.diagSynAck == kSynReceived && f.sent == 0
		}
	}
	err := legErr(&x.fullLeg, x.fillers...)
	env.Check("tcp_syncookies=1: once the SYN queue is full, the listener answers further SYNs with SYN cookies and keeps no request socket for them",
		err == nil && len(normal) >= 1 && len(cookied) >= 1 && normalOK && cookieOK && x.fullRequestsAfterFill == len(normal),
		"%s%d SYN(s) drew a SYN-ACK from a request socket (%s), then %d a cookie (%s); request sockets on the listener after them (sock_diag dump): %d",
		errPrefix(err), len(normal), fillerDiag(normal), len(cookied), fillerDiag(cookied), x.fullRequestsAfterFill)

	var retx, once []string
	retxOK := x.retransmitErr == nil && len(normal) >= 1 && len(cookied) >= 1
	for _, f := range normal {
		retxOK = retxOK && f.synAcks >= 2
		retx = append(retx, fmt.Sprintf("%d SYN-ACKs, the 2nd after %s", f.synAcks, fmtMs(f.rto)))
	}
	for _, f := range cookied {
		rto := time.Duration(0)
		for _, n := range normal {
			rto = max(rto, n.rto)
		}
		retxOK = retxOK && f.synAcks == 1 && f.watched > rto
		once = append(once, fmt.Sprintf("%d SYN-ACK in the %s after it", f.synAcks, fmtMs(f.watched)))
	}
	env.Check("the kernel remembers the SYNs it queued (each request socket retransmits its SYN-ACK) and nothing of the cookie'd ones (no SYN-ACK of theirs is retransmitted, watched for longer)",
		retxOK, "%srequest sockets: %s; cookie'd SYNs: %s", errPrefix(x.retransmitErr), strings.Join(retx, "; "), strings.Join(once, "; "))

	p := x.probe
	err = legErr(&x.fullLeg, p)
	ok := err == nil && p.cookie && p.diagSynAck == "no socket" && p.requests == x.fullRequestsAfterFill && p.accepted && p.diagAck == kEstablished && p.recv == 1
	detail := errPrefix(err)
	if p != nil && p.err == nil {
		detail += fmt.Sprintf("SYN-ACK: SyncookiesSent +%d; with the lab's final ACK held: sock_diag %s for the connection, %d request socket(s) on the listener (the earlier SYNs'); "+
			"after the ACK: sock_diag %s, accept() %s, SyncookiesRecv +%d", p.sent, p.diagSynAck, p.requests, p.diagAck, acceptText(p), p.recv)
	}
	env.Check("a cookie'd connection has no socket in the kernel until its final ACK; the ACK builds it ESTABLISHED and accept() returns it", ok, "%s", detail)

	f := x.forged
	err = legErr(&x.fullLeg, f)
	ok = err == nil && f.cookie && x.forgedFailed == 1 && x.forgedDiag == "no socket" && f.accepted && f.diagAck == kEstablished && x.forgedRecv == 1
	detail = errPrefix(err)
	if f != nil && f.err == nil {
		detail += fmt.Sprintf("the ACK numbered cookie+2: SyncookiesFailed +%d, the kernel answered %s, sock_diag %s; then the true ACK (cookie+1): accept() %s, sock_diag %s, SyncookiesRecv +%d",
			x.forgedFailed, x.forgedAnswer(), x.forgedDiag, acceptText(f), f.diagAck, x.forgedRecv)
	}
	env.Check("a final ACK one off the cookie is refused (SyncookiesFailed, no socket); the true ACK from the same port then completes the connection", ok, "%s", detail)
}

// forgedAnswer says what the kernel sent back to the forged ACK.
func (x *synCookies) forgedAnswer() string {
	if !x.forgedRST {
		return fmt.Sprintf("nothing (no RST within %v)", cookieDialTimeout)
	}
	return fmt.Sprintf("RST seq=cookie+%d (the forged ACK number)", x.forgedRSTSeq-x.forged.irs)
}

func (x *synCookies) checkAlways() {
	env := x.env
	n, t, d := x.noTS, x.withTS, x.decode
	err := legErr(&x.alwaysLeg, n, t, d)
	all := err == nil
	var parts []string
	for _, c := range []*cookieConn{n, t, d} {
		if c != nil && c.err == nil {
			all = all && c.cookie
			parts = append(parts, fmt.Sprintf("%s: SyncookiesSent +%d, sock_diag %s", c.label, c.sent, c.diagSynAck))
		}
	}
	for _, mc := range x.decodeCookies[min(1, len(x.decodeCookies)):] {
		all = all && mc.sent == 1
	}
	parts = append(parts, fmt.Sprintf("%d SYNs of the MSS probe: SyncookiesSent +1 each: %v", max(len(x.decodeCookies)-1, 0), all))
	env.Check("tcp_syncookies=2: every SYN is answered with a cookie though the SYN queue is empty", all, "%s%s", errPrefix(err), strings.Join(parts, "; "))

	// Without timestamps.
	err = legErr(&x.alwaysLeg, n)
	wantMSS := uint32(cookieMSSTable[cookieMSSIndex(1400)])
	ok := err == nil && n.accepted && n.synAck.Options.MSS != 0 && !n.synAck.Options.HasWScale && !n.synAck.Options.SACKPermitted && !n.synAck.Options.HasTimestamps &&
		n.info.options&(tcpiOptSACK|tcpiOptWScale) == 0 && n.info.sndMSS == wantMSS
	detail := errPrefix(err)
	if n != nil && n.err == nil {
		detail += fmt.Sprintf("the lab's SYN: MSS 1400, %s, SACK-permitted; the cookie SYN-ACK: %s; the kernel's socket after the ACK (TCP_INFO): %s (want no SACK, no wscale, snd_mss %d)%s",
			synWSText(n), synAckOptions(n), n.info, wantMSS, x.normalContrast())
	}
	env.Check("without timestamps the cookie keeps neither window scale nor SACK, and the MSS only as one of 4 values: the kernel's socket has neither option and MSS 1300 for the lab's 1400", ok, "%s", detail)

	// With timestamps.
	err = legErr(&x.alwaysLeg, t)
	ok = err == nil && t.accepted
	detail = errPrefix(err)
	if t != nil && t.err == nil {
		dec := decodeTSCookie(t.synAck.Options.TSVal)
		ws := t.hook.synWS.Load()
		ok = ok && t.synAck.Options.HasTimestamps && t.synAck.Options.HasWScale && t.synAck.Options.SACKPermitted &&
			dec.HasWScale && int32(dec.WScale) == ws && dec.SACK &&
			t.info.options&(tcpiOptTimestamps|tcpiOptSACK|tcpiOptWScale) == tcpiOptTimestamps|tcpiOptSACK|tcpiOptWScale && int32(t.info.sndWScale) == ws
		detail += fmt.Sprintf("the lab's SYN: %s, SACK-permitted, timestamps; the cookie SYN-ACK: %s, TSval %d whose low %d bits read %s; "+
			"the lab's ACK echoes it as TSecr; the kernel's socket (TCP_INFO): %s",
			synWSText(t), synAckOptions(t), t.synAck.Options.TSVal, tsCookieBits, dec, t.info)
	}
	env.Check("with timestamps the SYN-ACK's TSval carries window scale and SACK (its low 6 bits), the final ACK echoes them, and the kernel's socket has both", ok, "%s", detail)

	// The MSS index in the cookie's low bits.
	err = legErr(&x.alwaysLeg, d)
	ok = err == nil && len(x.decodeCookies) >= 2
	var steps []string
	if ok {
		first, last := x.decodeCookies[0], x.decodeCookies[len(x.decodeCookies)-1]
		ok = last.cookie-first.cookie == last.iss-first.iss
		steps = append(steps, fmt.Sprintf("MSS %d first and last: cookies %#08x and %#08x, apart by %d, the ISS difference %d (%s)", first.mss, first.cookie, last.cookie,
			last.cookie-first.cookie, last.iss-first.iss, map[bool]string{true: "equal: the same minute", false: "not equal: the minute counter moved"}[ok]))
		for _, mc := range x.decodeCookies[1 : len(x.decodeCookies)-1] {
			delta, dok := cookieIndexDelta(mc.cookie, first.cookie, mc.iss-first.iss)
			want := cookieMSSIndex(mc.mss) - cookieMSSIndex(first.mss)
			ok = ok && dok && delta == want
			steps = append(steps, fmt.Sprintf("MSS %d: low 24 bits %+d (index %d − %d = %+d)", mc.mss, delta, cookieMSSIndex(mc.mss), cookieMSSIndex(first.mss), want))
		}
	}
	env.Check("less the ISS difference, the cookies' low 24 bits differ by exactly the MSS table index (536, 1300, 1440, 1460) for SYNs of one port in one minute",
		ok, "%s%d round(s); %s", errPrefix(err), x.decodeRounds, strings.Join(steps, "; "))
}

// normalContrast describes a SYN-ACK from a request socket of the first
// leg, which carried the options a cookie without timestamps drops.
func (x *synCookies) normalContrast() string {
	for _, f := range x.fillers {
		if f.err == nil && !f.cookie {
			return fmt.Sprintf("; for contrast, a request socket's SYN-ACK to the same options: %s", synAckOptions(f))
		}
	}
	return ""
}

// checkCounters: the kernel's counters agree with the capture.
func (x *synCookies) checkCounters() {
	env := x.env
	if x.fullLeg.err != nil || x.alwaysLeg.err != nil {
		env.Check("TcpExt counters agree with the capture", false, "reading the counters: %v %v", x.fullLeg.err, x.alwaysLeg.err)
		return
	}
	full, always := x.fullLeg.after.since(x.fullLeg.before), x.alwaysLeg.after.since(x.alwaysLeg.before)
	captured := x.capturedCookies()
	completed := 0
	for _, c := range []*cookieConn{x.probe, x.forged, x.noTS, x.withTS} {
		if c != nil && c.accepted && c.cookie {
			completed++
		}
	}
	sent, recv := full.SyncookiesSent+always.SyncookiesSent, full.SyncookiesRecv+always.SyncookiesRecv
	env.Check("TcpExt SyncookiesSent equals the cookie SYN-ACKs in the capture, SyncookiesRecv the cookie'd handshakes completed; the accept queue never overflowed",
		int(sent) == captured && int(recv) == completed && full.ListenOverflows+always.ListenOverflows == 0,
		"SyncookiesSent +%d, cookie SYN-ACKs captured %d; SyncookiesRecv +%d, cookie'd handshakes accept()ed %d; SyncookiesFailed +%d; ListenOverflows +%d, ListenDrops +%d",
		sent, captured, recv, completed, full.SyncookiesFailed+always.SyncookiesFailed, full.ListenOverflows+always.ListenOverflows, full.ListenDrops+always.ListenDrops)
	env.Metric("syncookies_sent_count", float64(sent))
	env.Metric("syncookies_recv_count", float64(recv))
	env.Metric("syncookies_failed_count", float64(full.SyncookiesFailed+always.SyncookiesFailed))
	env.Metric("listen_overflows_count", float64(full.ListenOverflows+always.ListenOverflows))
	env.Metric("listen_drops_count", float64(full.ListenDrops+always.ListenDrops))
	env.Metric("cookie_synacks_captured_count", float64(captured))
}

// capturedCookies counts the kernel's SYN-ACKs in the capture whose ISN
// was measured to be a cookie.
func (x *synCookies) capturedCookies() int {
	n := 0
	for _, p := range x.pkts {
		m, ok := p.Decode()
		if ok && m.Proto == capture.ProtoTCP && m.Src == x.kp.addr && m.Flags&(wSYN|wACK) == wSYN|wACK && x.cookieISN[m.Seq] {
			n++
		}
	}
	return n
}

// finalACKCarried is the number of bytes a completed cookie'd
// connection's final ACK carries the cookie in, from the capture: the
// 4-byte ACK number, when the capture holds the ACK numbered cookie+1.
func (x *synCookies) finalACKCarried(cc *cookieConn) int {
	if cc == nil || !cc.accepted {
		return 0
	}
	for _, p := range x.pkts {
		m, ok := p.Decode()
		if ok && m.Proto == capture.ProtoTCP && m.Dst == x.kp.addr && m.Src == cc.c.Local() && m.Flags&(wSYN|wACK) == wACK && m.Ack == cc.irs+1 {
			return 4 // the ACK number field
		}
	}
	return 0
}

// draw adds the tables, ladders, metrics and the row of "who holds the
// state".
func (x *synCookies) draw() {
	env := x.env
	for _, leg := range []*cookieLeg{&x.fullLeg, &x.alwaysLeg} {
		if leg.err == nil && leg.setting != "" {
			rows := append([][]string{{"counter", "before", "after", "change"}}, leg.after.rows(leg.before)...)
			env.Table("TcpExt counters of the lab's namespace, net.ipv4.tcp_syncookies="+leg.setting, rows)
		}
	}
	rows := [][]string{{"connection", "cookie", "SyncookiesSent", "sock_diag after SYN-ACK", "request sockets on the listener", "after final ACK", "kernel socket (TCP_INFO)"}}
	conns := append(append([]*cookieConn{}, x.fillers...), x.probe, x.forged, x.noTS, x.withTS, x.decode)
	reqForCookied, cookied := 0, 0
	for _, c := range conns {
		if c == nil || c.c == nil {
			continue
		}
		after, info := "—", "—"
		if c.accepted {
			after, info = c.diagAck, c.info.String()
		}
		if c.cookie {
			cookied++
			if c.diagSynAck != "no socket" {
				reqForCookied++
			}
		}
		rows = append(rows, []string{c.label, strconv.FormatBool(c.cookie), "+" + strconv.FormatUint(c.sent, 10), c.diagSynAck, strconv.Itoa(c.requests), after, info})
	}
	// The MSS probe's further SYNs, each a cookie'd SYN of its own.
	for _, mc := range x.decodeCookies[min(1, len(x.decodeCookies)):] {
		if x.cookieISN[mc.cookie] {
			cookied++
			if mc.socket {
				reqForCookied++
			}
		}
	}
	env.Table("the lab's connections to the listener (backlog "+strconv.Itoa(synCookieBacklog)+")", rows)
	if len(x.decodeCookies) > 0 {
		first := x.decodeCookies[0]
		rows := [][]string{{"SYN's MSS", "index", "SYN's ISS − first's", "cookie (SYN-ACK ISN)", "cookie − first's − ISS difference (low 24 bits)"}}
		for _, mc := range x.decodeCookies {
			d, _ := cookieIndexDelta(mc.cookie, first.cookie, mc.iss-first.iss)
			rows = append(rows, []string{strconv.Itoa(int(mc.mss)), strconv.Itoa(cookieMSSIndex(mc.mss)), strconv.FormatUint(uint64(mc.iss-first.iss), 10),
				fmt.Sprintf("%#08x", mc.cookie), fmt.Sprintf("%+d", d)})
		}
		env.Table("the MSS index in the cookie: SYNs from one port", rows)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_max_syn_backlog"); err == nil {
		env.Note("net.ipv4.tcp_max_syn_backlog (per namespace) is %s here; it bounds the SYN queue only with cookies off: with them on, a listener's SYN queue is full at its listen() backlog", strings.TrimSpace(string(b)))
	}
	env.Note("the lab sets net.ipv4.tcp_timestamps=2 in its namespace (timestamps without the per-address random offset), so a cookie SYN-ACK's TSval shows its low 6 bits as the kernel wrote them; both sysctls are restored when the experiment ends")

	for _, l := range []struct {
		title string
		c     *cookieConn
	}{
		{"tcp_syncookies=1, SYN queue full: a cookie'd handshake", x.probe},
		{"tcp_syncookies=1: a forged final ACK, then the true one", x.forged},
		{"tcp_syncookies=2, no timestamps", x.noTS},
		{"tcp_syncookies=2, timestamps", x.withTS},
	} {
		if l.c != nil && l.c.c != nil {
			x.ladder(l.title, l.c.c)
		}
	}
	x.env.Metric("request_sockets_for_cookied_syns_count", float64(reqForCookied))
	x.env.Metric("cookied_syns_count", float64(cookied))
	x.env.Metric("syn_queue_request_sockets_count", float64(x.fullRequestsAfterFill))
	if x.noTS != nil && x.noTS.accepted {
		x.env.Metric("cookie_mss_remembered_bytes", float64(x.noTS.info.sndMSS))
	}
	carried := x.finalACKCarried(x.probe)
	x.env.Metric("cookie_carried_bytes", float64(carried))
	env.Holding(lab.Holding{
		ServerKeeps:   fmt.Sprintf("no SYN-RECEIVED socket while cookies are on (sock_diag: %d request sockets for %d cookie'd SYNs)", reqForCookied, cookied),
		ClientCarries: "the cookie, as its ACK number (4 bytes in the final ACK); with timestamps also window scale and SACK, in the TSecr it echoes",
		RestartLoses:  "not restarted",
		CarriedBytes:  carried,
		CarriedPer:    "per connection",
	})
}

func errPrefix(err error) string {
	if err != nil {
		return err.Error() + "; "
	}
	return ""
}

func acceptText(c *cookieConn) string {
	switch {
	case c.accepted:
		return "returned it"
	case c.acceptErr != nil:
		return "failed: " + c.acceptErr.Error()
	}
	return "not reached"
}

// fillerDiag lists what sock_diag and the counter said after each SYN-ACK.
func fillerDiag(cs []*cookieConn) string {
	var p []string
	for _, c := range cs {
		p = append(p, fmt.Sprintf("sock_diag %s, SyncookiesSent +%d", c.diagSynAck, c.sent))
	}
	return strings.Join(p, "; ")
}

// synWSText is the window scale the lab's SYN offered.
func synWSText(c *cookieConn) string {
	if ws := c.hook.synWS.Load(); ws >= 0 {
		return fmt.Sprintf("wscale %d", ws)
	}
	return "no wscale"
}

// synAckOptions lists the options of the connection's SYN-ACK.
func synAckOptions(c *cookieConn) string {
	o := c.synAck.Options
	p := []string{fmt.Sprintf("MSS %d", o.MSS)}
	if o.HasWScale {
		p = append(p, fmt.Sprintf("wscale %d", o.WScale))
	}
	if o.SACKPermitted {
		p = append(p, "SACK-permitted")
	}
	if o.HasTimestamps {
		p = append(p, "timestamps")
	}
	if len(p) == 1 {
		p = append(p, "nothing else")
	}
	return strings.Join(p, ", ")
}
