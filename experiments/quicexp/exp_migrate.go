package quicexp

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
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/quicconn"
)

// migrationHops are the local addresses the client moves to, ending on
// its first address (with a new port: a new path).
var migrationHops = []netip.Addr{loopback2, loopback3, loopback1}

// runMigrate is quic/migrate: the client migrates three times during an
// upload, each time at a quiescent moment.
func runMigrate(env *lab.Env) error {
	l, err := setUp(env, setupOptions{})
	if err != nil {
		return err
	}
	res, hops, uerr := l.uploadMigrating()
	ev, err := l.finish()
	if err != nil || !ev.complete {
		return err
	}
	srv := l.srv.Addr
	first := firstOf(ev.ds, func(d *Datagram) bool { return d.Dst == srv })
	if first == nil {
		return fmt.Errorf("%w: nothing captured", quicconn.ErrTransfer)
	}
	tuples := ev.srv.Tuples()
	checkClaimedPaths(env, ev, srv, tuples)
	checkOneHandshake(env, l, ev, res, uerr)
	checkHops(env, hops, first.Src)
	checkOldPathsUnused(env, ev.ds, srv, first.Src, hops, tuples)
	cids := readPathCIDs(ev.ds, srv)
	cids.check(env, len(ev.ds))
	env.Metric("transfer_bytes", float64(res.Received))
	for i, h := range hops {
		env.Metric(fmt.Sprintf("hop%d_probe_ms", i+1), ms(h.probeDuration))
	}
	commentPathValidation(ev.ds, srv, cids.order)
	migrateLadder(env, ev.ds, srv, first.Src, hops, res)
	return nil
}

// uploadMigrating uploads the seed's data, migrating at 1/4, 2/4 and 3/4
// of it, the writer held meanwhile so every path carries data — and at a
// quiescent moment: see quiesce.
func (l *labSetup) uploadMigrating() (quicconn.UploadResult, []*hop, error) {
	var hops []*hop
	res, err := l.upload(func(n int64) {
		if k := len(hops); k < len(migrationHops) && n >= int64(transferSize*(k+1)/(len(migrationHops)+1)) {
			hops = append(hops, migrate(l.ctx, l.env.Logf, l.cl, migrationHops[k], quiesce(l.ctx, l.tracer)))
		}
	})
	return res, hops, err
}

// checkClaimedPaths checks that every packet either endpoint logged is a
// captured datagram on the 4-tuple its record claims; a server packet
// built for the old path before a switch and written after it counts as
// wrong (and is commented).
func checkClaimedPaths(env *lab.Env, ev *evidence, srv netip.AddrPort, tuples []TupleEvent) {
	wrong, leaked, cliWrong := 0, 0, 0
	for _, d := range ev.ds {
		if InFlightAtSwitch(d, srv, tuples) {
			leaked++
			d.Pkt.Comment(annotate.Append(fmt.Sprintf("server → %s: built for the old path (DCID %s) before the switch, written after it", d.Dst, d.DCID), annotate.Block{}.Str(annotate.Event, "old path")))
		}
		if d.Event != nil && d.Event.Remote != peerOf(d, srv) {
			wrong++
		}
		if e := d.ClientEvent; e != nil && e.Local != peerOf(d, srv) {
			cliWrong++
		}
	}
	c := ev.corr
	env.Check("every qlog packet matches a captured datagram on the path it claims",
		c.ClientTotal > 0 && c.ClientMatched == c.ClientTotal && c.ServerMatched == c.ServerTotal && wrong == 0 && cliWrong == 0,
		"client: %d of %d packets (sent and received) matched, %d on another 4-tuple than their qlog path; server: %d of %d, %d on another 4-tuple (%d built before a switch and written after it)",
		c.ClientMatched, c.ClientTotal, cliWrong, c.ServerMatched, c.ServerTotal, wrong, leaked)
	env.Metric("inflight_at_switch_count", float64(leaked))
	// In quic-go v0.65 the address is read in send_conn.go:72-73 and the
	// server switches in connection.go:1332 (ChangeRemoteAddr);
	// quicconn.TestMigrateMidBurstLeaksOldCID measures the race.
	env.Note("Migrating mid-burst can leak an old connection ID onto a new path in quic-go v0.65: it picks the peer's " +
		"address when it writes a queued packet, not when it builds it, so after the server switches, packets already built " +
		"for the old path, with its connection ID, reach the new address — a linkability leak (RFC 9000 §9.5). This " +
		"experiment therefore pauses the upload and migrates only when nothing is in flight on either side.")
}

// checkHops checks each hop as the client made it: Switch before Probe
// refused, quiescent, probed and switched, and the last back on the
// client's first address.
func checkHops(env *lab.Env, hops []*hop, firstPath netip.AddrPort) {
	refused, done := 0, 0
	var desc []string
	for _, h := range hops {
		if errors.Is(h.early, quic.ErrPathNotValidated) {
			refused++
		}
		if h.ok() {
			done++
		}
		desc = append(desc, fmt.Sprintf("%s→%s (quiescent: %v; early Switch: %s; probe: %s; switch: %s)", h.from, h.to, h.quiet == nil, lab.OK(h.early), lab.OK(h.probe), lab.OK(h.sw)))
	}
	env.Check("Switch before Probe is refused", len(hops) == len(migrationHops) && refused == len(hops),
		"%d of %d early Switch calls returned ErrPathNotValidated", refused, len(hops))
	back := len(hops) > 0 && hops[len(hops)-1].to.Addr() == firstPath.Addr()
	env.Check("three hops, each at a quiescent moment, probed and switched, and back to the first address", done == len(migrationHops) && back,
		"%s", strings.Join(desc, "; "))
}

// checkOldPathsUnused checks that after each Switch no client packet
// leaves on the path it left, nor does the server send to a path after
// switching away from it.
func checkOldPathsUnused(env *lab.Env, ds []*Datagram, srv, firstPath netip.AddrPort, hops []*hop, tuples []TupleEvent) {
	late := clientLate(ds, hops)
	if len(late) > 0 {
		d := late[0]
		d.Pkt.Comment(annotate.Append(fmt.Sprintf("client sent this on %s after switching away from it (hop %d)", d.Src, hopLeaving(hops, d.Src)), annotate.Block{}.Str(annotate.Event, "after switch")))
	}
	srvLate, switches := serverLate(ds, srv, firstPath, tuples)
	env.Check("after each Switch no packet uses the old path", len(hops) > 0 && len(late) == 0 && srvLate == 0,
		"client packets on a path after leaving it: %d; server packets to a path after switching away: %d (server switches: %d)", len(late), srvLate, len(switches))
}

// clientLate are the client's packets sent on a path after a hop left it
// (by the client's qlog), one per hop and packet.
func clientLate(ds []*Datagram, hops []*hop) []*Datagram {
	var late []*Datagram
	for _, h := range hops {
		for _, d := range ds {
			e := d.ClientEvent
			if e != nil && e.Sent && d.Src == h.from && e.Time.After(h.switchedAt) {
				late = append(late, d)
			}
		}
	}
	return late
}

// hopLeaving is the number (from 1) of the first hop that left path.
func hopLeaving(hops []*hop, path netip.AddrPort) int {
	return slices.IndexFunc(hops, func(h *hop) bool { return h.from == path }) + 1
}

// serverLate counts the server's packets to a client path logged after
// the server switched away from it (unless a later switch made it the
// active path again first), and returns the server's switches.
func serverLate(ds []*Datagram, srv, firstPath netip.AddrPort, tuples []TupleEvent) (late int, switches []TupleEvent) {
	for _, t := range tuples {
		if t.ID == "" {
			switches = append(switches, t)
		}
	}
	for _, d := range ds {
		if d.Src != srv || d.Event == nil {
			continue
		}
		for i, t := range switches {
			old := firstPath
			if i > 0 {
				old = switches[i-1].Remote
			}
			if d.Dst == old && d.Event.Seq > t.Seq && old != t.Remote && !activeAgain(switches[i:], old, d.Event.Seq) {
				late++
			}
		}
	}
	return late, switches
}

// activeAgain reports whether a later server switch (after sw[0]) made
// old the active path again before the event seq (then sending to it is
// right).
func activeAgain(sw []TupleEvent, old netip.AddrPort, seq int) bool {
	for _, s := range sw[1:] {
		if s.Remote == old && s.Seq < seq {
			return true
		}
	}
	return false
}

// pathCIDs are the connection IDs each client path carried, over every
// captured datagram.
type pathCIDs struct {
	order    []netip.AddrPort                   // client paths, in capture order
	paths    map[string]map[netip.AddrPort]bool // connection ID → the paths it appeared on
	firstCID map[netip.AddrPort]string          // the first 1-RTT DCID the client sent on each path
	shared   []string                           // connection IDs on more than one path, sorted
}

func readPathCIDs(ds []*Datagram, srv netip.AddrPort) pathCIDs {
	p := pathCIDs{paths: map[string]map[netip.AddrPort]bool{}, firstCID: map[netip.AddrPort]string{}}
	for _, d := range ds {
		c := peerOf(d, srv)
		if !slices.Contains(p.order, c) {
			p.order = append(p.order, c)
		}
		for _, id := range []string{d.DCID, d.TailDCID} {
			if id == "" {
				continue
			}
			if p.paths[id] == nil {
				p.paths[id] = map[netip.AddrPort]bool{}
			}
			p.paths[id][c] = true
		}
		if d.Dst == srv && !d.Long && p.firstCID[c] == "" {
			p.firstCID[c] = d.DCID
		}
	}
	for id, ps := range p.paths {
		if len(ps) > 1 {
			p.shared = append(p.shared, id)
		}
	}
	slices.Sort(p.shared)
	return p
}

// newPerPath reports whether there are want paths and each began with a
// connection ID no earlier path began with.
func (p pathCIDs) newPerPath(want int) bool {
	if len(p.order) != want {
		return false
	}
	for i, a := range p.order {
		for _, b := range p.order[:i] {
			if p.firstCID[a] == p.firstCID[b] {
				return false
			}
		}
	}
	return true
}

// check judges unlinkability over every packet: a connection ID on one
// path only, a new one on each path (RFC 9000 §9.5).
func (p pathCIDs) check(env *lab.Env, datagrams int) {
	for _, id := range p.shared {
		env.Logf("connection ID %s on %d paths", id, len(p.paths[id]))
	}
	env.Check("each new path uses a new connection ID and no connection ID appears on two paths",
		p.newPerPath(len(migrationHops)+1) && len(p.shared) == 0 && len(p.paths) > len(p.order),
		"%d client 4-tuples, %d connection IDs over all %d captured datagrams, %d on more than one path; first client DCID per path: %s",
		len(p.order), len(p.paths), datagrams, len(p.shared), p.describe())
	env.Metric("paths_count", float64(len(p.order)))
	env.Metric("connection_ids_count", float64(len(p.paths)))
}

func (p pathCIDs) describe() string {
	var s []string
	for i, c := range p.order {
		s = append(s, fmt.Sprintf("%d %s %s", i+1, c, cidShort(p.firstCID[c])))
	}
	return strings.Join(s, ", ")
}

// commentPathValidation comments each path's PATH_CHALLENGE and
// PATH_RESPONSE frames, as their sender logged them.
func commentPathValidation(ds []*Datagram, srv netip.AddrPort, order []netip.AddrPort) {
	for _, d := range ds {
		for _, e := range []*PacketEvent{d.Event, d.ClientEvent} {
			if e == nil || !e.Sent {
				continue
			}
			c := peerOf(d, srv)
			idx := slices.Index(order, c) + 1
			dir := fmt.Sprintf("client path %d (%s) → server", idx, c)
			if d.Src == srv {
				dir = fmt.Sprintf("server → client path %d (%s)", idx, c)
			}
			for _, x := range e.Challenge {
				d.Pkt.Comment(annotate.Append(fmt.Sprintf("%s: PATH_CHALLENGE %x, DCID %s", dir, x, d.DCID), annotate.Block{}.Str(annotate.Event, "PATH_CHALLENGE")))
			}
			for _, x := range e.Response {
				d.Pkt.Comment(annotate.Append(fmt.Sprintf("%s: PATH_RESPONSE %x, DCID %s", dir, x, d.DCID), annotate.Block{}.Str(annotate.Event, "PATH_RESPONSE")))
			}
		}
	}
}

// migrateLadder draws the migration, every message row a captured
// datagram, its frames from the qlog record matched to it.
func migrateLadder(env *lab.Env, ds []*Datagram, srv, firstPath netip.AddrPort, hops []*hop, res quicconn.UploadResult) {
	lad := env.Ladder("One connection, four paths, a connection ID per path (as captured)", "client", "server")
	var r rows
	if init := firstOf(ds, func(d *Datagram) bool { return d.Type == "initial" && d.Dst == srv }); init != nil {
		r.send(init.Index, "Initial SCID "+cidShort(init.SCID), "path 1 "+firstPath.String(), "")
	}
	for i, h := range hops {
		hopRows(&r, ds, i, h)
	}
	if fin := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), fmt.Sprintf("%d bytes", res.Received))
	}
	r.drawTimed(lad, ds, srv)
}

// hopRows adds hop i's rows: AddPath and the refused early Switch, the
// client's PATH_CHALLENGE, the server's PATH_RESPONSE and its own
// challenge of the new 4-tuple, and the client's answer with Switch.
func hopRows(r *rows, ds []*Datagram, i int, h *hop) {
	early := "early Switch refused"
	if h.early == nil {
		early = "early Switch accepted!"
	}
	probe := firstOf(ds, func(d *Datagram) bool {
		return d.Src == h.to && d.ClientEvent != nil && len(d.ClientEvent.Challenge) > 0
	})
	if probe == nil {
		r.state(len(ds), fmt.Sprintf("AddPath %s: %s; no PATH_CHALLENGE captured from it", h.to, early), "")
		return
	}
	r.state(probe.Index, fmt.Sprintf("AddPath %s: %s", h.to, early), "")
	r.send(probe.Index, fmt.Sprintf("PATH_CHALLENGE %x", probe.ClientEvent.Challenge[0]),
		fmt.Sprintf("path %d DCID %s", i+2, cidShort(probe.DCID)), "new 4-tuple: challenge it too")
	answer := firstOf(ds, func(d *Datagram) bool {
		return d.Dst == h.to && d.Event != nil && slices.Contains(d.Event.Response, probe.ClientEvent.Challenge[0])
	})
	if answer == nil {
		r.state(probe.Index+1, "", "no PATH_RESPONSE captured to "+h.to.String())
		return
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
		r.send(back.Index, frames(back.ClientEvent), "Switch: "+lab.OK(h.sw), "validated: "+h.to.String())
	} else {
		r.state(answer.Index+1, "Switch: "+lab.OK(h.sw), "no PATH_RESPONSE captured from "+h.to.String())
	}
}

// hop is one migration as the client made it.
type hop struct {
	from, to      netip.AddrPort
	early         error // Switch before Probe
	probe, sw     error
	switchedAt    time.Time
	probeDuration time.Duration
	quiet         error // waiting for quiescence before AddPath or Switch
}

// ok: the hop was probed and switched (at quiescent moments, when asked).
func (h *hop) ok() bool { return h.probe == nil && h.sw == nil && h.quiet == nil }

// quiesce returns the wait migrate makes before AddPath and before
// Switch: until, by both endpoints' qlogs, nothing is in flight and no
// packet moved for quietTime. The upload's writer is held meanwhile.
func quiesce(ctx context.Context, tr *quicconn.Tracer) func() error {
	return func() error {
		qctx, cancel := context.WithTimeout(ctx, stepTimeout/4)
		defer cancel()
		return tr.WaitQuiet(qctx, quietTime)
	}
}

// migrate moves the client to a new path on addr: Switch first (which
// must be refused), then Probe and Switch. quiet, when set, is waited for
// before AddPath and before Switch, so that no packet is built for the old
// path and written to the new one (see the experiment's Note).
func migrate(ctx context.Context, logf func(string, ...any), cl *quicconn.Client, addr netip.Addr, quiet func() error) *hop {
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
	pctx, cancel := context.WithTimeout(ctx, stepTimeout/2)
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
