package quicconn

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "quic/migrate",
		Summary: "active client migration over three hops and back (AddPath/Probe/Switch): a fresh connection ID per path",
		Shows: "The client moves its connection across three new paths and back to its first address with AddPath, " +
			"Probe and Switch; Switch before Probe is refused, nothing uses a path after leaving it, and every path " +
			"carries connection IDs no other path carried (RFC 9000 §9.5), checked over every captured packet with no exception. " +
			"Each hop is made at a quiescent moment: the upload is paused and nothing is in flight on either side, because " +
			"quic-go v0.65 picks a packet's destination when it writes it, not when it builds it, so migrating mid-burst " +
			"can send a packet built for the old path, with the old path's connection ID, to the new address.",
		Run: runMigrate,
	})
}

// migrationHops are the local addresses the client moves to, ending on
// its first address (with a new port: a new path).
var migrationHops = []netip.Addr{loopback2, loopback3, loopback1}

// hop is one migration as the client made it.
type hop struct {
	from, to      netip.AddrPort
	early         error // Switch before Probe
	probe, sw     error
	switchedAt    time.Time
	probeDuration time.Duration
	quiet         error // waiting for quiescence before AddPath or Switch
}

// QuietTime is how long the migrate experiment waits with nothing in flight and no
// packet on the wire before it probes or switches: longer than the
// default max_ack_delay (25 ms), so a pending delayed ACK has gone out.
var QuietTime = 60 * time.Millisecond

func runMigrate(env *lab.Env) error {
	l, err := newLab(env)
	if err != nil {
		return err
	}
	srv := l.srv
	cap, err := env.Capture(captureOptions(srv.Addr.Port()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, StepTimeout)
	defer cancel()
	cl, err := l.dial(ctx, srv.Addr, "127.0.0.1:0")
	if err != nil {
		return err
	}
	data := l.data()
	var hops []*hop
	next := 0
	res, uerr := cl.Upload(ctx, data, 16<<10, func(n int64) {
		// Migrate at 1/4, 2/4 and 3/4 of the upload, the writer held
		// meanwhile so every path carries data — and at a quiescent
		// moment: see quiesce.
		if next < len(migrationHops) && n >= int64(len(data)*(next+1)/(len(migrationHops)+1)) {
			hops = append(hops, migrate(ctx, env.Logf, cl, migrationHops[next], quiesce(ctx, l.tracer)))
			next++
		}
	})
	ev, err := l.finish(ctx, cl, cap)
	if err != nil {
		return err
	}
	if !ev.complete {
		return nil
	}
	ds := ev.ds
	first := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr })
	if first == nil {
		return fmt.Errorf("%w: nothing captured", ErrTransfer)
	}
	srvTuples := ev.srv.Tuples()
	wrong, leaked, cliWrong := 0, 0, 0
	for _, d := range ds {
		if InFlightAtSwitch(d, srv.Addr, srvTuples) {
			leaked++
			d.Pkt.Comment(fmt.Sprintf("server → %s: built for the old path (DCID %s) before the switch, written after it", d.Dst, d.DCID))
		}
		if d.Event != nil && d.Event.Remote != peerOf(d, srv.Addr) {
			wrong++
		}
		if e := d.ClientEvent; e != nil && e.Local != peerOf(d, srv.Addr) {
			cliWrong++
		}
	}
	c := ev.corr
	env.Check("every qlog packet matches a captured datagram on the path it claims",
		c.ClientTotal > 0 && c.ClientMatched == c.ClientTotal && c.ServerMatched == c.ServerTotal && wrong == 0 && cliWrong == 0,
		"client: %d of %d packets (sent and received) matched, %d on another 4-tuple than their qlog path; server: %d of %d, %d on another 4-tuple (%d built before a switch and written after it)",
		c.ClientMatched, c.ClientTotal, cliWrong, c.ServerMatched, c.ServerTotal, wrong, leaked)
	env.Metric("inflight_at_switch_count", float64(leaked))
	env.Note("Migrating mid-burst can leak an old connection ID onto a new path in quic-go v0.65: sconn.Write reads the peer " +
		"address when it writes a queued packet (send_conn.go:72-73), and the server's switch (connection.go:1332, " +
		"ChangeRemoteAddr) applies to packets already built for the old path with its connection ID, which then reach the new " +
		"address — a linkability leak (RFC 9000 §9.5). This experiment therefore pauses the upload and migrates only when nothing " +
		"is in flight on either side (TestMigrateMidBurstLeaksOldCID measures the race).")

	inits := map[string]bool{}
	for _, d := range ds {
		if d.Type == "initial" && d.Dst == srv.Addr {
			inits[d.SCID] = true
		}
	}
	env.Check("the transfer completes byte-exact in one handshake", uerr == nil && res.Match && len(l.tracer.Conns()) == 2 && len(inits) == 1,
		"sent %d bytes, server counted %d, sha256 match %t, %d client Initial SCID(s), err %v", res.Sent, res.Received, res.Match, len(inits), uerr)

	refused, done := 0, 0
	var hopDesc []string
	for _, h := range hops {
		if errors.Is(h.early, quic.ErrPathNotValidated) {
			refused++
		}
		if h.probe == nil && h.sw == nil && h.quiet == nil {
			done++
		}
		hopDesc = append(hopDesc, fmt.Sprintf("%s→%s (quiescent: %v; early Switch: %v; probe %v; switch %v)", h.from, h.to, h.quiet == nil, h.early, h.probe, h.sw))
	}
	env.Check("Switch before Probe is refused", len(hops) == len(migrationHops) && refused == len(hops),
		"%d of %d early Switch calls returned ErrPathNotValidated", refused, len(hops))
	back := len(hops) > 0 && hops[len(hops)-1].to.Addr() == first.Src.Addr()
	env.Check("three hops, each at a quiescent moment, probed and switched, and back to the first address", done == len(migrationHops) && back,
		"%s", strings.Join(hopDesc, "; "))

	// After each Switch, no client packet on the path it left.
	late := 0
	for i, h := range hops {
		for _, d := range ds {
			e := d.ClientEvent
			if e != nil && e.Sent && d.Src == h.from && e.Time.After(h.switchedAt) {
				late++
				if late == 1 {
					d.Pkt.Comment(fmt.Sprintf("client sent this on %s after switching away from it (hop %d)", h.from, i+1))
				}
			}
		}
	}
	// Nor server packets to a path after the server switched away.
	var srvSwitch []TupleEvent
	for _, t := range srvTuples {
		if t.ID == "" {
			srvSwitch = append(srvSwitch, t)
		}
	}
	srvLate := 0
	for _, d := range ds {
		if d.Src != srv.Addr || d.Event == nil {
			continue
		}
		for i, t := range srvSwitch {
			old := first.Src
			if i > 0 {
				old = srvSwitch[i-1].Remote
			}
			if d.Dst == old && d.Event.Seq > t.Seq && old != t.Remote && !later(srvSwitch[i:], old, d.Event.Seq) {
				srvLate++
			}
		}
	}
	env.Check("after each Switch no packet uses the old path", len(hops) > 0 && late == 0 && srvLate == 0,
		"client packets on a path after leaving it: %d; server packets to a path after switching away: %d (server switches: %d)", late, srvLate, len(srvSwitch))

	// Unlinkability over every packet: a connection ID on one path only.
	paths := map[string]map[netip.AddrPort]bool{}
	order := []netip.AddrPort{}
	seenPath := map[netip.AddrPort]bool{}
	firstCID := map[netip.AddrPort]string{}
	for _, d := range ds {
		c := peerOf(d, srv.Addr)
		if !seenPath[c] {
			seenPath[c] = true
			order = append(order, c)
		}
		for _, id := range []string{d.DCID, d.TailDCID} {
			if id == "" {
				continue
			}
			if paths[id] == nil {
				paths[id] = map[netip.AddrPort]bool{}
			}
			paths[id][c] = true
		}
		if d.Dst == srv.Addr && !d.Long && firstCID[c] == "" {
			firstCID[c] = d.DCID
		}
	}
	shared := 0
	for id, ps := range paths {
		if len(ps) > 1 {
			shared++
			env.Logf("connection ID %s on %d paths", id, len(ps))
		}
	}
	newCID := len(order) == len(migrationHops)+1
	for i, p := range order {
		for _, q := range order[:i] {
			if firstCID[p] == firstCID[q] {
				newCID = false
			}
		}
	}
	env.Check("each new path uses a new connection ID and no connection ID appears on two paths",
		newCID && shared == 0 && len(paths) > len(order),
		"%d client 4-tuples, %d connection IDs over all %d captured datagrams, %d on more than one path; first client DCID per path: %s",
		len(order), len(paths), len(ds), shared, describePaths(order, firstCID))
	env.Metric("paths_count", float64(len(order)))
	env.Metric("connection_ids_count", float64(len(paths)))
	env.Metric("transfer_bytes", float64(res.Received))
	for i, h := range hops {
		env.Metric(fmt.Sprintf("hop%d_probe_ms", i+1), float64(h.probeDuration.Microseconds())/1000)
	}

	// Comments: each path's challenge and response.
	for _, d := range ds {
		for _, e := range []*PacketEvent{d.Event, d.ClientEvent} {
			if e == nil || !e.Sent {
				continue
			}
			c := peerOf(d, srv.Addr)
			idx := indexOf(order, c) + 1
			dir := fmt.Sprintf("client path %d (%s) → server", idx, c)
			if d.Src == srv.Addr {
				dir = fmt.Sprintf("server → client path %d (%s)", idx, c)
			}
			for _, x := range e.Challenge {
				d.Pkt.Comment(fmt.Sprintf("%s: PATH_CHALLENGE %x, DCID %s", dir, x, d.DCID))
			}
			for _, x := range e.Response {
				d.Pkt.Comment(fmt.Sprintf("%s: PATH_RESPONSE %x, DCID %s", dir, x, d.DCID))
			}
		}
	}

	// The ladder: every message row a captured datagram, its frames from
	// the qlog record matched to it.
	lad := env.Ladder("One connection, four paths, a connection ID per path (as captured)", "client", "server")
	var r rows
	if init := firstOf(ds, func(d *Datagram) bool { return d.Type == "initial" && d.Dst == srv.Addr }); init != nil {
		r.send(init.Index, "Initial SCID "+cidShort(init.SCID), "path 1 "+first.Src.String(), "")
	}
	for i, h := range hops {
		early := "early Switch refused"
		if h.early == nil {
			early = "early Switch accepted!"
		}
		probe := firstOf(ds, func(d *Datagram) bool {
			return d.Src == h.to && d.ClientEvent != nil && len(d.ClientEvent.Challenge) > 0
		})
		if probe == nil {
			r.state(len(ds), fmt.Sprintf("AddPath %s: %s; no PATH_CHALLENGE captured from it", h.to, early), "")
			continue
		}
		r.state(probe.Index, fmt.Sprintf("AddPath %s: %s", h.to, early), "")
		r.send(probe.Index, fmt.Sprintf("PATH_CHALLENGE %x", probe.ClientEvent.Challenge[0]),
			fmt.Sprintf("path %d DCID %s", i+2, cidShort(probe.DCID)), "new 4-tuple: challenge it too")
		answer := firstOf(ds, func(d *Datagram) bool {
			return d.Dst == h.to && d.Event != nil && slices.Contains(d.Event.Response, probe.ClientEvent.Challenge[0])
		})
		if answer == nil {
			r.state(probe.Index+1, "", "no PATH_RESPONSE captured to "+h.to.String())
			continue
		}
		r.reply(answer.Index, frames(answer.Event), "validated", "")
		// The server validates the client's new address too (its own
		// PATH_CHALLENGE, in the same packet or another).
		chal := firstOf(ds, func(d *Datagram) bool { return d.Dst == h.to && d.Event != nil && len(d.Event.Challenge) > 0 })
		if chal != nil && chal != answer {
			r.reply(chal.Index, frames(chal.Event), "", "challenges the new 4-tuple")
		}
		var back *Datagram
		if chal != nil {
			back = firstOf(ds, func(d *Datagram) bool {
				return d.Src == h.to && d.ClientEvent != nil && slices.Contains(d.ClientEvent.Response, chal.Event.Challenge[0])
			})
		}
		if back != nil {
			r.send(back.Index, frames(back.ClientEvent), fmt.Sprintf("Switch: %v", h.sw), "validated: "+h.to.String())
		} else {
			r.state(answer.Index+1, fmt.Sprintf("Switch: %v", h.sw), "no PATH_RESPONSE captured from "+h.to.String())
		}
	}
	if fin := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), fmt.Sprintf("%d bytes", res.Received))
	}
	r.draw(lad)
	return nil
}

// later reports whether a later server switch made old the active path
// again before the event seq (then sending to it is right).
func later(sw []TupleEvent, old netip.AddrPort, seq int) bool {
	for _, s := range sw[1:] {
		if s.Remote == old && s.Seq < seq {
			return true
		}
	}
	return false
}

func indexOf(xs []netip.AddrPort, x netip.AddrPort) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func describePaths(order []netip.AddrPort, cid map[netip.AddrPort]string) string {
	var s []string
	for i, p := range order {
		s = append(s, fmt.Sprintf("%d %s %s", i+1, p, cidShort(cid[p])))
	}
	return strings.Join(s, ", ")
}

// quiesce returns the wait migrate makes before AddPath and before
// Switch: until, by both endpoints' qlogs, nothing is in flight and no
// packet moved for QuietTime. The upload's writer is held meanwhile.
func quiesce(ctx context.Context, tr *Tracer) func() error {
	return func() error {
		qctx, cancel := context.WithTimeout(ctx, StepTimeout/4)
		defer cancel()
		return tr.WaitQuiet(qctx, QuietTime)
	}
}

// migrate moves the client to a new path on addr: Switch first (which
// must be refused), then Probe and Switch. quiet, when set, is waited for
// before AddPath and before Switch, so that no packet is built for the old
// path and written to the new one (see the experiment's Note).
func migrate(ctx context.Context, logf func(string, ...any), cl *Client, addr netip.Addr, quiet func() error) *hop {
	h := &hop{from: cl.LocalAddr()}
	wait := func() {
		if quiet != nil && h.quiet == nil {
			h.quiet = quiet()
		}
	}
	wait()
	p, err := cl.NewPath(netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		h.probe = err
		return h
	}
	h.to = p.Local
	h.early = p.Switch()
	pctx, cancel := context.WithTimeout(ctx, StepTimeout/2)
	defer cancel()
	start := time.Now()
	h.probe = p.Probe(pctx)
	h.probeDuration = time.Since(start)
	if h.probe == nil {
		wait() // the probe's packets acknowledged too
		h.sw = p.Switch()
	}
	h.switchedAt = time.Now()
	logf("hop %s → %s: quiescent %v, early switch %v, probe %v (%v), switch %v", h.from, h.to, h.quiet, h.early, h.probe, h.probeDuration, h.sw)
	return h
}
