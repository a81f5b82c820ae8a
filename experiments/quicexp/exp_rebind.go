package quicexp

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

// runRebind is quic/rebind-port (newAddr false) and quic/rebind-addr: the
// NAT moves the client's upload to a new port or address mid-transfer.
func runRebind(env *lab.Env, newAddr bool) error {
	l, err := setUp(env, setupOptions{nat: true})
	if err != nil {
		return err
	}
	to := loopback1
	if newAddr {
		to = loopback2
	}
	res, rb, uerr := l.uploadRebinding(to)
	ev, err := l.finish()
	if err != nil || !ev.complete {
		return err
	}
	srv, tuples := l.srv.Addr, ev.srv.Tuples()
	inFlight := checkServerPaths(env, ev, srv, tuples)
	inits := checkOneHandshake(env, l, ev, res, uerr)
	st := l.mb.Stats()
	moved := rb.New.IsValid() && rb.New != rb.Old && (newAddr && rb.New.Addr() == loopback2 || !newAddr && rb.New.Addr() == rb.Old.Addr())
	env.Check("the NAT moved the client's flow mid-transfer", moved,
		"binding %s → %s, %d server datagrams to the forgotten binding dropped", rb.Old, rb.New, st.DroppedOld)
	if !moved {
		return nil
	}
	s := readRebind(ev.ds, srv, tuples, rb)
	s.comment()
	s.check(env, inFlight)
	env.Metric("transfer_bytes", float64(res.Received))
	env.Metric("dropped_at_old_binding_count", float64(st.DroppedOld))
	env.Metric("datagrams_count", float64(len(ev.ds)))
	s.ladder(env, ev.ds, srv, res, inits)
	return nil
}

// checkServerPaths checks that every packet the server logged is a
// captured datagram on the path its record claims, counting apart (and
// commenting) those packed for the old path before a switch and written
// to the new one.
func checkServerPaths(env *lab.Env, ev *evidence, srv netip.AddrPort, tuples []TupleEvent) (inFlight int) {
	wrongPath := 0
	for _, d := range ev.ds {
		switch {
		case InFlightAtSwitch(d, srv, tuples):
			inFlight++
			d.Pkt.Comment(annotate.Append(fmt.Sprintf("server → %s: packed for the old path (DCID %s) before the switch, written after it", d.Dst, d.DCID), annotate.Block{}.Str(annotate.Event, "old path")))
		case d.Event != nil && d.Event.Remote != peerOf(d, srv):
			wrongPath++
		}
	}
	c := ev.corr
	env.Check("every server qlog packet matches a captured datagram on the path it claims",
		c.ServerTotal > 0 && c.ServerMatched == c.ServerTotal && wrongPath == 0,
		"%d of %d packets the server logged (sent and received) matched by type, connection ID, size and packet number, %d on another 4-tuple than their qlog path, %d packed before a path switch and written after it; client: %d of %d",
		c.ServerMatched, c.ServerTotal, wrongPath, inFlight, c.ClientMatched, c.ClientTotal)
	env.Metric("inflight_at_switch_count", float64(inFlight))
	return inFlight
}

// checkOneHandshake checks that the upload arrived whole over one
// connection, and returns the client Initials' source connection IDs.
func checkOneHandshake(env *lab.Env, l *labSetup, ev *evidence, res quicconn.UploadResult, uerr error) map[string]bool {
	inits := initialSCIDs(ev.ds, l.srv.Addr)
	env.Check("the transfer completes byte-exact in one handshake",
		uerr == nil && res.Match && len(l.tracer.Conns()) == 2 && len(inits) == 1,
		"sent %d bytes, server counted %d, sha256 match %t (%x…), %d server connection(s), %d client Initial SCID(s) in the capture, error: %s",
		res.Sent, res.Received, res.Match, res.Sum[:4], len(l.tracer.Conns())-1, len(inits), lab.ErrText(uerr))
	return inits
}

// initialSCIDs are the source connection IDs of the client's Initials.
func initialSCIDs(ds []*Datagram, srv netip.AddrPort) map[string]bool {
	inits := map[string]bool{}
	for _, d := range ds {
		if d.Type == "initial" && d.Dst == srv {
			inits[d.SCID] = true
		}
	}
	return inits
}

// rebindStory is a NAT rebinding as the capture tells it.
type rebindStory struct {
	rb           nat.Rebinding
	path1, path2 string // the client's old and new paths, for comments
	rebindPackets
	// newDCIDs are the destination connection IDs of the client's 1-RTT
	// datagrams from the new binding; sameCID: one, the last old one.
	newDCIDs map[string]int
	sameCID  bool
	// Anti-amplification on the new path before its validation.
	sent, recv int
	worst      float64
	limitOK    bool
	serverMove
	// dropped are the server's datagrams the NAT dropped at the old binding.
	dropped []*Datagram
}

// readRebind reads a rebinding's story from the correlated datagrams.
func readRebind(ds []*Datagram, srv netip.AddrPort, tuples []TupleEvent, rb nat.Rebinding) *rebindStory {
	s := &rebindStory{rb: rb, path1: fmt.Sprintf("client path 1 (%s)", rb.Old), path2: fmt.Sprintf("client path 2 (%s)", rb.New)}
	s.rebindPackets = findRebindPackets(ds, rb)
	s.newDCIDs = shortDCIDsFrom(ds, rb.New)
	s.sameCID = s.lastOld != nil && s.firstNew != nil && len(s.newDCIDs) == 1 && s.newDCIDs[s.lastOld.DCID] > 0
	until := len(ds)
	if s.response != nil {
		until = slices.Index(ds, s.response)
	}
	s.sent, s.recv, s.worst, s.limitOK = antiAmplification(ds[:until], rb.New)
	s.serverMove = findServerMove(ds, srv, tuples, rb, s.response)
	s.dropped = droppedAtOld(ds, srv, rb, s.lastOld)
	return s
}

// rebindPackets are the datagrams a rebinding turns on.
type rebindPackets struct {
	lastOld  *Datagram // the client's last 1-RTT datagram from the old binding
	firstNew *Datagram // the first datagram from the new binding
	probe    *Datagram // the first datagram to the new binding
	okProbe  bool      // probe carries a PATH_CHALLENGE (chal) by the server's record
	chal     [8]byte
	response *Datagram // the first from the new binding the server logged with PATH_RESPONSE chal
	// clientEcho: the client's own record of response carries chal too.
	clientEcho bool
}

func findRebindPackets(ds []*Datagram, rb nat.Rebinding) rebindPackets {
	var p rebindPackets
	for _, d := range ds {
		switch {
		case d.Src == rb.Old && !d.Long:
			p.lastOld = d
		case d.Src == rb.New && p.firstNew == nil:
			p.firstNew = d
		case d.Dst == rb.New && p.probe == nil:
			p.probe = d
		}
	}
	p.okProbe = p.probe != nil && p.probe.Event != nil && len(p.probe.Event.Challenge) > 0
	if !p.okProbe {
		return p
	}
	p.chal = p.probe.Event.Challenge[0]
	p.response = firstOf(ds, func(d *Datagram) bool {
		return d.Src == rb.New && d.Event != nil && slices.Contains(d.Event.Response, p.chal)
	})
	p.clientEcho = p.response != nil && p.response.ClientEvent != nil && slices.Contains(p.response.ClientEvent.Response, p.chal)
	return p
}

// shortDCIDsFrom counts the destination connection IDs of the 1-RTT
// datagrams from addr.
func shortDCIDsFrom(ds []*Datagram, addr netip.AddrPort) map[string]int {
	ids := map[string]int{}
	for _, d := range ds {
		if d.Src == addr && !d.Long {
			ids[d.DCID]++
		}
	}
	return ids
}

// serverMove is the server's switch to the new binding (RFC 9000 §9.5: a
// fresh connection ID of the client's for the new path).
type serverMove struct {
	switched   *TupleEvent // the server's active path becoming the new binding
	toOldAfter int         // server datagrams to the old binding logged after that
	// oldCIDs and newCIDs are the DCIDs of the server's 1-RTT datagrams to
	// the old binding, and of those built for the new one.
	oldCIDs, newCIDs map[string]bool
	fresh            bool      // no DCID built for the new path was used on the old
	firstNewCID      *Datagram // the server's first to the new path with a fresh DCID, after response
}

func findServerMove(ds []*Datagram, srv netip.AddrPort, tuples []TupleEvent, rb nat.Rebinding, response *Datagram) serverMove {
	m := serverMove{oldCIDs: map[string]bool{}, newCIDs: map[string]bool{}}
	for _, t := range tuples {
		if t.ID == "" && t.Remote == rb.New {
			m.switched = &t
			break
		}
	}
	for _, d := range ds {
		if d.Src != srv || d.Long {
			continue
		}
		if d.Dst == rb.Old {
			m.oldCIDs[d.DCID] = true
			if m.switched != nil && d.Event != nil && d.Event.Seq > m.switched.Seq {
				m.toOldAfter++
			}
		}
		if d.Dst == rb.New && !InFlightAtSwitch(d, srv, tuples) {
			m.newCIDs[d.DCID] = true
		}
	}
	m.fresh = len(m.newCIDs) > 0
	for c := range m.newCIDs {
		if m.oldCIDs[c] {
			m.fresh = false
		}
	}
	if response != nil {
		m.firstNewCID = firstOf(ds, func(d *Datagram) bool {
			return d.Src == srv && d.Dst == rb.New && !d.Long && !m.oldCIDs[d.DCID] && d.Index > response.Index
		})
	}
	return m
}

// droppedAtOld are the server's datagrams to the forgotten binding after
// the client's last one from it that the client never received: the NAT
// dropped them.
func droppedAtOld(ds []*Datagram, srv netip.AddrPort, rb nat.Rebinding, lastOld *Datagram) []*Datagram {
	var out []*Datagram
	for _, d := range ds {
		if d.Dst == rb.Old && d.Src == srv && lastOld != nil && d.Index > lastOld.Index && d.ClientEvent == nil {
			out = append(out, d)
		}
	}
	return out
}

// comment marks the rebinding's datagrams in the capture.
func (s *rebindStory) comment() {
	if s.okProbe {
		s.probe.Pkt.Comment(annotate.Append(fmt.Sprintf("server → %s: PATH_CHALLENGE %x (probing the new 4-tuple, DCID %s)", s.path2, s.chal, s.probe.DCID), annotate.Block{}.Str(annotate.Event, "PATH_CHALLENGE")))
	}
	if s.response != nil {
		s.response.Pkt.Comment(annotate.Append(fmt.Sprintf("%s → server: PATH_RESPONSE %x (echoes the challenge: path validated)", s.path2, s.chal), annotate.Block{}.Str(annotate.Event, "PATH_RESPONSE")))
	}
	if s.firstNew != nil {
		s.firstNew.Pkt.Comment(annotate.Append(fmt.Sprintf("%s → server: first packet after the NAT rebinding, DCID %s unchanged: the server finds the connection by ID", s.path2, s.firstNew.DCID), annotate.Block{}.Str(annotate.Event, "rebinding")))
	}
	for _, d := range s.dropped {
		d.Pkt.Comment(annotate.Append(fmt.Sprintf("server → %s: the NAT has forgotten this binding; dropped (the client's qlog never received it)", s.path1), annotate.Block{}.Str(annotate.Event, "dropped by the NAT")))
	}
}

// check judges the rebinding: path validation, connection IDs,
// anti-amplification and the server's switch.
func (s *rebindStory) check(env *lab.Env, inFlight int) {
	rb := s.rb
	env.Check("the server's first packet to the new 4-tuple carries PATH_CHALLENGE", s.okProbe,
		"first datagram to %s: %s", rb.New, describe(s.probe))
	env.Check("the client's PATH_RESPONSE echoes the challenge data", s.okProbe && s.response != nil && s.clientEcho,
		"challenge %x; PATH_RESPONSE from %s: %s; sent so by the client's qlog: %t", s.chal, rb.New, describe(s.response), s.clientEcho)
	env.Check("the client's destination connection ID is unchanged across the rebinding", s.sameCID,
		"last DCID on %s: %s; DCIDs on %s: %v", rb.Old, dcidOf(s.lastOld), rb.New, keys(s.newDCIDs))
	env.Check("before validation the server sends at most 3× what it received on the new path", s.response != nil && s.limitOK,
		"sent %d bytes to %s, received %d before the PATH_RESPONSE (worst ratio %.2f)", s.sent, rb.New, s.recv, s.worst)
	env.Metric("prevalidation_sent_bytes", float64(s.sent))
	env.Metric("prevalidation_received_bytes", float64(s.recv))
	env.Check("the server switches to the validated path and stops sending to the old one",
		s.switched != nil && s.response != nil && s.toOldAfter == 0,
		"active path → %s: %t; packets to %s after the switch: %d", rb.New, s.switched != nil, rb.Old, s.toOldAfter)
	env.Check("the packets the server builds for the new path carry a fresh connection ID of the client's", s.fresh,
		"server→client DCIDs on %s: %v, in packets built for %s: %v", rb.Old, keys(s.oldCIDs), rb.New, keys(s.newCIDs))
	if inFlight > 0 {
		env.Note("%d packet(s) built for the old path before the switch were written to %s with the old connection ID: "+
			"quic-go v0.65 picks the peer address when it writes a queued packet, not when it builds it. After a NAT rebinding RFC 9000 §9.5 lets the server keep "+
			"the connection ID, so here this links nothing new; during active migration it would, which is why "+
			"quic/migrate migrates at a quiet moment", inFlight, rb.New)
	}
	if s.switched != nil && s.firstNew != nil && s.response != nil {
		env.Metric("validation_ms", ms(s.response.Time.Sub(s.firstNew.Time)))
	}
}

// ladder draws the rebinding between the NAT's outside and the server,
// every row a captured datagram (its frames from the qlog records matched
// to it).
func (s *rebindStory) ladder(env *lab.Env, ds []*Datagram, srv netip.AddrPort, res quicconn.UploadResult, inits map[string]bool) {
	rb := s.rb
	lad := env.Ladder("The connection outlives its 4-tuple (as captured between the NAT and the server)", "client (via NAT)", "server")
	var r rows
	if d := firstOf(ds, func(d *Datagram) bool { return d.Type == "initial" && d.Dst == srv }); d != nil {
		r.send(d.Index, fmt.Sprintf("Initial SCID %s (%d handshake)", cidShort(d.SCID), len(inits)), s.path1, "")
	}
	if d := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv && !d.Long }); d != nil {
		r.send(d.Index, fmt.Sprintf("1-RTT %s DCID %s", frames(d.ClientEvent), cidShort(d.DCID)), s.path1, "active: "+rb.Old.String())
	}
	if s.firstNew != nil {
		at := s.firstNew.Index // the NAT forgets the old binding before it forwards this
		if len(s.dropped) > 0 {
			at = min(at, s.dropped[0].Index)
		}
		r.state(at, "NAT rebinds: "+rb.Old.String()+" → "+rb.New.String(), "")
		r.send(s.firstNew.Index, fmt.Sprintf("1-RTT %s DCID %s (same)", frames(s.firstNew.ClientEvent), cidShort(s.firstNew.DCID)), "unaware: same DCID", "new 4-tuple "+rb.New.String())
	}
	if len(s.dropped) > 0 {
		r.reply(s.dropped[0].Index, fmt.Sprintf("%d to the old binding", len(s.dropped)), "NAT drops: never arrive", "")
	}
	if s.okProbe {
		r.reply(s.probe.Index, fmt.Sprintf("PATH_CHALLENGE %x", s.chal), "", fmt.Sprintf("unvalidated; sent %d ≤ 3×%d", s.sent, s.recv))
	} else if s.firstNew != nil {
		r.state(s.firstNew.Index+1, "", "no PATH_CHALLENGE captured")
	}
	if s.response != nil {
		r.send(s.response.Index, fmt.Sprintf("PATH_RESPONSE %x", s.chal), "echoes it", "path validated")
	}
	if d := s.firstNewCID; d != nil {
		r.reply(d.Index, fmt.Sprintf("1-RTT %s DCID %s (new)", frames(d.Event), cidShort(d.DCID)), "", "active: "+rb.New.String())
	}
	if fin := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), fmt.Sprintf("%d bytes", res.Received))
	}
	r.drawTimed(lad, ds, srv)
}

// antiAmplification replays ds (the datagrams before the one that
// validated peer) and reports the bytes sent to peer and received from it,
// the worst ratio, and whether the sender stayed within 3× what it had
// received at every datagram it sent (RFC 9000 §8.1).
func antiAmplification(ds []*Datagram, peer netip.AddrPort) (sent, recv int, worst float64, ok bool) {
	ok = true
	for _, d := range ds {
		switch {
		case d.Src == peer:
			recv += d.Size
		case d.Dst == peer:
			sent += d.Size
			if sent > 3*recv {
				ok = false
			}
			worst = max(worst, float64(sent)/float64(max(recv, 1)))
		}
	}
	return sent, recv, worst, ok
}
