package quicconn

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
		Name:    "quic/rebind-port",
		Summary: "a NAT moves a QUIC upload to a new source port mid-transfer: the connection ID carries it on",
		Shows: "A NAT rebinding moves the client to a new source port mid-upload; the server finds the connection by its " +
			"destination connection ID, probes the new 4-tuple with PATH_CHALLENGE, switches once the client's PATH_RESPONSE " +
			"echoes it, and the upload completes byte-exact in one handshake.",
		Run: func(env *lab.Env) error { return runRebind(env, false) },
	})
	register(lab.Experiment{
		Name:    "quic/rebind-addr",
		Summary: "a NAT moves a QUIC upload to a new source address (127.0.0.2) mid-transfer: the connection ID carries it on",
		Shows: "A NAT rebinding moves the client to a new address mid-upload; the server finds the connection by its " +
			"destination connection ID, validates the new path with PATH_CHALLENGE/PATH_RESPONSE before switching, and the " +
			"upload completes byte-exact in one handshake.",
		Run: func(env *lab.Env) error { return runRebind(env, true) },
	})
}

func runRebind(env *lab.Env, newAddr bool) error {
	l, err := newLab(env)
	if err != nil {
		return err
	}
	srv := l.srv
	mb, err := l.natInFront()
	if err != nil {
		return err
	}
	cap, err := env.Capture(captureOptions(srv.Addr.Port()))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, StepTimeout)
	defer cancel()
	cl, err := l.dial(ctx, mb.Front, "")
	if err != nil {
		return err
	}
	to := loopback1
	if newAddr {
		to = loopback2
	}
	res, rb, uerr := uploadWithRebind(ctx, env, cl, mb, l.data(), to)
	ev, err := l.finish(ctx, cl, cap)
	if err != nil {
		return err
	}
	if !ev.complete {
		return nil
	}
	st := mb.Stats()

	// The record: captured datagrams, each correlated with both qlogs.
	ds := ev.ds
	srvTuples := ev.srv.Tuples()
	wrongPath, inFlight := 0, 0
	for _, d := range ds {
		switch {
		case InFlightAtSwitch(d, srv.Addr, srvTuples):
			inFlight++
			d.Pkt.Comment(fmt.Sprintf("server → %s: packed for the old path (DCID %s) before the switch, written after it", d.Dst, d.DCID))
		case d.Event != nil && d.Event.Remote != peerOf(d, srv.Addr):
			wrongPath++
		}
	}
	c := ev.corr
	env.Check("every server qlog packet matches a captured datagram on the path it claims",
		c.ServerTotal > 0 && c.ServerMatched == c.ServerTotal && wrongPath == 0,
		"%d of %d packets the server logged (sent and received) matched by type, connection ID, size and packet number, %d on another 4-tuple than their qlog path, %d packed before a path switch and written after it; client: %d of %d",
		c.ServerMatched, c.ServerTotal, wrongPath, inFlight, c.ClientMatched, c.ClientTotal)
	env.Metric("inflight_at_switch_count", float64(inFlight))

	inits := map[string]bool{}
	for _, d := range ds {
		if d.Type == "initial" && d.Dst == srv.Addr {
			inits[d.SCID] = true
		}
	}
	env.Check("the transfer completes byte-exact in one handshake",
		uerr == nil && res.Match && len(l.tracer.Conns()) == 2 && len(inits) == 1,
		"sent %d bytes, server counted %d, sha256 match %t (%x…), %d server connection(s), %d client Initial SCID(s) in the capture, err %v",
		res.Sent, res.Received, res.Match, res.Sum[:4], len(l.tracer.Conns())-1, len(inits), uerr)

	moved := rb.New.IsValid() && rb.New != rb.Old && (newAddr && rb.New.Addr() == loopback2 || !newAddr && rb.New.Addr() == rb.Old.Addr())
	env.Check("the NAT moved the client's flow mid-transfer", moved,
		"binding %s → %s, %d server datagrams to the forgotten binding dropped", rb.Old, rb.New, st.DroppedOld)
	if !moved {
		return nil
	}
	path1 := fmt.Sprintf("client path 1 (%s)", rb.Old)
	path2 := fmt.Sprintf("client path 2 (%s)", rb.New)

	// The server's first packet to the new 4-tuple.
	var probe, firstNew, response, lastOld *Datagram
	for _, d := range ds {
		switch {
		case d.Src == rb.Old && !d.Long:
			lastOld = d
		case d.Src == rb.New && firstNew == nil:
			firstNew = d
		case d.Dst == rb.New && probe == nil:
			probe = d
		}
	}
	var chal [8]byte
	okProbe := probe != nil && probe.Event != nil && len(probe.Event.Challenge) > 0
	if okProbe {
		chal = probe.Event.Challenge[0]
		probe.Pkt.Comment(fmt.Sprintf("server → %s: PATH_CHALLENGE %x (probing the new 4-tuple, DCID %s)", path2, chal, probe.DCID))
	}
	env.Check("the server's first packet to the new 4-tuple carries PATH_CHALLENGE", okProbe,
		"first datagram to %s: %s", rb.New, describe(probe))
	if okProbe {
		for _, d := range ds {
			if d.Src == rb.New && d.Event != nil && slices.Contains(d.Event.Response, chal) {
				response = d
				break
			}
		}
	}
	clientEcho := response != nil && response.ClientEvent != nil && slices.Contains(response.ClientEvent.Response, chal)
	if response != nil {
		response.Pkt.Comment(fmt.Sprintf("%s → server: PATH_RESPONSE %x (echoes the challenge: path validated)", path2, chal))
	}
	env.Check("the client's PATH_RESPONSE echoes the challenge data", okProbe && response != nil && clientEcho,
		"challenge %x; PATH_RESPONSE from %s: %s; sent so by the client's qlog: %t", chal, rb.New, describe(response), clientEcho)

	// The client's destination connection ID across the rebinding.
	newDCIDs := map[string]int{}
	for _, d := range ds {
		if d.Src == rb.New && !d.Long {
			newDCIDs[d.DCID]++
		}
	}
	sameCID := lastOld != nil && firstNew != nil && len(newDCIDs) == 1 && newDCIDs[lastOld.DCID] > 0
	if firstNew != nil {
		firstNew.Pkt.Comment(fmt.Sprintf("%s → server: first packet after the NAT rebinding, DCID %s unchanged: the server finds the connection by ID", path2, firstNew.DCID))
	}
	env.Check("the client's destination connection ID is unchanged across the rebinding", sameCID,
		"last DCID on %s: %s; DCIDs on %s: %v", rb.Old, dcidOf(lastOld), rb.New, keys(newDCIDs))

	// Anti-amplification on the unvalidated path (RFC 9000 §8.1).
	until := len(ds)
	if response != nil {
		until = slices.Index(ds, response)
	}
	sent, recv, worst, limitOK := antiAmplification(ds[:until], rb.New)
	env.Check("before validation the server sends at most 3× what it received on the new path", response != nil && limitOK,
		"sent %d bytes to %s, received %d before the PATH_RESPONSE (worst ratio %.2f)", sent, rb.New, recv, worst)
	env.Metric("prevalidation_sent_bytes", float64(sent))
	env.Metric("prevalidation_received_bytes", float64(recv))

	// The switch: the server moves its active path, and with it a fresh
	// connection ID of the client's (RFC 9000 §9.5).
	var switched *TupleEvent
	for _, t := range srvTuples {
		if t.ID == "" && t.Remote == rb.New {
			switched = &t
			break
		}
	}
	toOldAfter := 0
	oldCIDs, newCIDs := map[string]bool{}, map[string]bool{}
	var firstNewCID *Datagram // the server's first packet on the new path with a fresh DCID
	for _, d := range ds {
		if d.Src != srv.Addr || d.Long {
			continue
		}
		if d.Dst == rb.Old {
			oldCIDs[d.DCID] = true
			if switched != nil && d.Event != nil && d.Event.Seq > switched.Seq {
				toOldAfter++
			}
		}
		if d.Dst == rb.New && !InFlightAtSwitch(d, srv.Addr, srvTuples) {
			newCIDs[d.DCID] = true
		}
	}
	env.Check("the server switches to the validated path and stops sending to the old one",
		switched != nil && response != nil && toOldAfter == 0,
		"active path → %s: %t; packets to %s after the switch: %d", rb.New, switched != nil, rb.Old, toOldAfter)
	fresh := len(newCIDs) > 0
	for c := range newCIDs {
		if oldCIDs[c] {
			fresh = false
		}
	}
	for _, d := range ds {
		if firstNewCID == nil && d.Src == srv.Addr && d.Dst == rb.New && !d.Long && !oldCIDs[d.DCID] && response != nil && d.Index > response.Index {
			firstNewCID = d
		}
	}
	env.Check("the packets the server builds for the new path carry a fresh connection ID of the client's", fresh,
		"server→client DCIDs on %s: %v, in packets built for %s: %v", rb.Old, keys(oldCIDs), rb.New, keys(newCIDs))
	if inFlight > 0 {
		env.Note("%d packet(s) built for the old path before the switch were written to %s with the old connection ID: "+
			"quic-go v0.65 picks the peer address when it writes a queued packet, not when it builds it "+
			"(send_conn.go:72-73, connection.go:1332). After a NAT rebinding RFC 9000 §9.5 lets the server keep "+
			"the connection ID, so here this links nothing new; during active migration it would, which is why "+
			"quic/migrate migrates at a quiet moment", inFlight, rb.New)
	}
	if switched != nil && firstNew != nil && response != nil {
		env.Metric("validation_ms", float64(response.Time.Sub(firstNew.Time).Microseconds())/1000)
	}
	env.Metric("transfer_bytes", float64(res.Received))
	env.Metric("dropped_at_old_binding_count", float64(st.DroppedOld))
	env.Metric("datagrams_count", float64(len(ds)))

	// A comment on every packet the NAT dropped: sent by the server to
	// the forgotten binding after the rebinding, never received.
	var droppedAtOld []*Datagram
	for _, d := range ds {
		if d.Dst == rb.Old && d.Src == srv.Addr && lastOld != nil && d.Index > lastOld.Index && d.ClientEvent == nil {
			droppedAtOld = append(droppedAtOld, d)
			d.Pkt.Comment(fmt.Sprintf("server → %s: the NAT has forgotten this binding; dropped (the client's qlog never received it)", path1))
		}
	}

	// The ladder: every row a captured datagram (its frames from the
	// qlog records matched to it), between the NAT's outside and the server.
	lad := env.Ladder("The connection outlives its 4-tuple (as captured between the NAT and the server)", "client (via NAT)", "server")
	var r rows
	firstInit := firstOf(ds, func(d *Datagram) bool { return d.Type == "initial" && d.Dst == srv.Addr })
	first := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr && !d.Long })
	fin := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr && d.ClientEvent != nil && d.ClientEvent.Fin })
	if firstInit != nil {
		r.send(firstInit.Index, fmt.Sprintf("Initial SCID %s (%d handshake)", cidShort(firstInit.SCID), len(inits)), path1, "")
	}
	if first != nil {
		r.send(first.Index, fmt.Sprintf("1-RTT %s DCID %s", frames(first.ClientEvent), cidShort(first.DCID)), path1, "active: "+rb.Old.String())
	}
	if firstNew != nil {
		at := firstNew.Index // the NAT forgets the old binding before it forwards this
		if len(droppedAtOld) > 0 {
			at = min(at, droppedAtOld[0].Index)
		}
		r.state(at, "NAT rebinds: "+rb.Old.String()+" → "+rb.New.String(), "")
		r.send(firstNew.Index, fmt.Sprintf("1-RTT %s DCID %s (same)", frames(firstNew.ClientEvent), cidShort(firstNew.DCID)), "unaware: same DCID", "new 4-tuple "+rb.New.String())
	}
	if len(droppedAtOld) > 0 {
		r.reply(droppedAtOld[0].Index, fmt.Sprintf("%d to the old binding", len(droppedAtOld)), "NAT drops: never arrive", "")
	}
	if okProbe {
		r.reply(probe.Index, fmt.Sprintf("PATH_CHALLENGE %x", chal), "", fmt.Sprintf("unvalidated; sent %d ≤ 3×%d", sent, recv))
	} else if firstNew != nil {
		r.state(firstNew.Index+1, "", "no PATH_CHALLENGE captured")
	}
	if response != nil {
		r.send(response.Index, fmt.Sprintf("PATH_RESPONSE %x", chal), "echoes it", "path validated")
	}
	if firstNewCID != nil {
		r.reply(firstNewCID.Index, fmt.Sprintf("1-RTT %s DCID %s (new)", frames(firstNewCID.Event), cidShort(firstNewCID.DCID)), "", "active: "+rb.New.String())
	}
	if fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), fmt.Sprintf("%d bytes", res.Received))
	}
	r.draw(lad)
	return nil
}

// frames names a qlog record's frames for a ladder row: "STREAM ACK".
func frames(e *PacketEvent) string {
	if e == nil {
		return "(no qlog record)"
	}
	return strings.Join(slices.Compact(slices.Clone(e.Frames)), " ")
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

func peerOf(d *Datagram, server netip.AddrPort) netip.AddrPort {
	if d.Src == server {
		return d.Dst
	}
	return d.Src
}

func describe(d *Datagram) string {
	if d == nil {
		return "none"
	}
	if d.Event == nil {
		return fmt.Sprintf("#%d %d bytes DCID %s, no qlog record", d.Index+1, d.Size, d.DCID)
	}
	return fmt.Sprintf("#%d %d bytes DCID %s [%s]", d.Index+1, d.Size, d.DCID, strings.Join(d.Event.Frames, " "))
}

func dcidOf(d *Datagram) string {
	if d == nil {
		return "none"
	}
	return d.DCID
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func first1(m map[string]bool) string {
	if k := keys(m); len(k) > 0 {
		return k[0]
	}
	return ""
}

func firstOf(ds []*Datagram, f func(*Datagram) bool) *Datagram {
	for _, d := range ds {
		if f(d) {
			return d
		}
	}
	return nil
}

// uploadWithRebind uploads data through the middlebox, arming a rebinding
// to addr once a third is written; rb is zero if none happened.
func uploadWithRebind(ctx context.Context, env *lab.Env, cl *Client, mb *Middlebox, data []byte, to netip.Addr) (UploadResult, Rebinding, error) {
	var rebound <-chan Rebinding
	res, err := cl.Upload(ctx, data, 16<<10, func(n int64) {
		if rebound == nil && n >= int64(len(data)/3) {
			rebound = mb.Rebind(to, LargeDatagram)
			env.Logf("NAT rebinding armed after %d bytes", n)
		}
	})
	var rb Rebinding
	select {
	case rb = <-rebound:
	default:
	}
	return res, rb, err
}
