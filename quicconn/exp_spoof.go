package quicconn

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/internal/lab"
)

func init() {
	lab.Register(lab.Experiment{
		Name:    "quic/spoofed-path",
		Summary: "an attacker replays client packets from forged addresses: the server probes but never switches",
		Shows: "An on-path attacker races copies of the client's packets to the server from forged loopback addresses; " +
			"the server accepts the data, probes each forged address with PATH_CHALLENGE, gets no PATH_RESPONSE and never " +
			"moves the connection there, and the real client's upload completes untouched (RFC 9000 §9.3.2).",
		Run: runSpoof,
	})
}

// SpoofedPackets is how many client packets the attacker replays.
var SpoofedPackets = 4

func runSpoof(env *lab.Env) error {
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
	data := l.data()
	var forged <-chan []netip.AddrPort
	res, uerr := cl.Upload(ctx, data, 16<<10, func(n int64) {
		if forged == nil && n >= int64(len(data)/3) {
			forged = mb.Spoof([]netip.Addr{loopback3, loopback4}, SpoofedPackets, LargeDatagram)
		}
	})
	var fakes []netip.AddrPort
	select {
	case fakes = <-forged:
	default:
	}
	pkts, err := l.finish(ctx, cl, cap)
	if err != nil {
		return err
	}
	st := mb.Stats()
	ds := Datagrams(pkts, srv.Addr, 8)
	srvTr := l.tracer.Role("server")
	if srvTr == nil {
		return fmt.Errorf("%w: no server qlog", ErrTransfer)
	}
	first := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr })
	if first == nil {
		return fmt.Errorf("%w: nothing captured", ErrTransfer)
	}
	real := first.Src
	events := srvTr.Packets()
	ClaimPaths(events, srvTr.Tuples(), real)
	matched, total := Match(ds, srv.Addr, events)
	env.Check("every server qlog packet matches a captured datagram", total > 0 && matched == total, "%d of %d 1-RTT packets", matched, total)
	env.Check("the real client's transfer completes byte-exact", uerr == nil && res.Match,
		"sent %d bytes, server counted %d, sha256 match %t, err %v", res.Sent, res.Received, res.Match, uerr)

	isFake := map[netip.AddrPort]bool{}
	for _, f := range fakes {
		isFake[f] = true
	}
	type tally struct{ in, out, probes, other, responses int }
	per := map[netip.AddrPort]*tally{}
	for _, f := range fakes {
		per[f] = &tally{}
	}
	for _, d := range ds {
		switch {
		case isFake[d.Src]:
			t := per[d.Src]
			t.in += d.Size
			if d.Event != nil && len(d.Event.Response) > 0 {
				t.responses++
			}
			d.Pkt.Comment(fmt.Sprintf("attacker: forged copy of a client packet from %s (DCID %s), sent before the original", d.Src, d.DCID))
		case isFake[d.Dst]:
			t := per[d.Dst]
			t.out += d.Size
			if d.Event != nil && len(d.Event.Challenge) > 0 {
				t.probes++
				d.Pkt.Comment(fmt.Sprintf("server → forged %s: PATH_CHALLENGE %x; no answer will come", d.Dst, d.Event.Challenge[0]))
			}
			if d.Event == nil || !onlyProbing(d.Event.Frames) {
				t.other++
			}
		}
	}
	probed, ampOK := 0, true
	var desc []string
	for _, f := range fakes {
		t := per[f]
		if t.probes > 0 {
			probed++
		}
		if t.out > 3*t.in {
			ampOK = false
		}
		desc = append(desc, fmt.Sprintf("%s: got %d B, sent %d B (%d PATH_CHALLENGE, %d other, %d PATH_RESPONSE back)", f, t.in, t.out, t.probes, t.other, t.responses))
	}
	env.Check("the attacker's copies reached the server from forged addresses", len(fakes) == 2 && st.Forged == SpoofedPackets,
		"%d forged copies from %d addresses", st.Forged, len(fakes))
	env.Check("the server probes every forged address with PATH_CHALLENGE", len(fakes) > 0 && probed == len(fakes), "%s", strings.Join(desc, "; "))
	others := 0
	for _, f := range fakes {
		others += per[f].other + per[f].responses
	}
	env.Check("the server sends forged addresses nothing but probes, within 3× what they sent", others == 0 && ampOK, "%s", strings.Join(desc, "; "))

	switched := 0
	for _, t := range srvTr.Tuples() {
		if t.ID == "" && isFake[t.Remote] {
			switched++
		}
	}
	after := 0
	for _, d := range ds {
		if d.Src == real && len(fakes) > 0 && d.Time.After(firstOf(ds, func(x *Datagram) bool { return isFake[x.Src] }).Time) {
			after++
		}
	}
	env.Check("the server never switches the connection to an unvalidated path", switched == 0,
		"active path changes to a forged address: %d", switched)
	env.Check("the real client carries on from its own address", after > 0 && res.Match,
		"%d client datagrams from %s after the first forged copy", after, real)
	env.Metric("forged_copies_count", float64(st.Forged))
	env.Metric("transfer_bytes", float64(res.Received))

	lad := env.Ladder("Forged addresses get a challenge, never the connection", "client / attacker", "server")
	lad.Send("1-RTT STREAM", "client "+real.String(), "active: "+real.String())
	for _, f := range fakes {
		t := per[f]
		lad.Send("forged copy of a client packet", "attacker "+f.String(), "new 4-tuple, unvalidated")
		lad.Reply(fmt.Sprintf("PATH_CHALLENGE ×%d (%d B)", t.probes, t.out), "attacker cannot answer", "active: "+real.String())
	}
	lad.Send("1-RTT STREAM (original: duplicate, dropped)", "client "+real.String(), "")
	lad.Send("STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), "active: "+real.String())
	return nil
}

// onlyProbing reports whether a packet's frames are path probing ones.
func onlyProbing(frames []string) bool {
	for _, f := range frames {
		if f != "PATH_CHALLENGE" && f != "PATH_RESPONSE" && f != "NEW_CONNECTION_ID" && !strings.Contains(f, "Padding") {
			return false
		}
	}
	return true
}
