package quicconn

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab"
)

func init() {
	register(lab.Experiment{
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
	ev, err := l.finish(ctx, cl, cap)
	if err != nil {
		return err
	}
	if !ev.complete {
		return nil
	}
	st := mb.Stats()
	ds := ev.ds
	first := firstOf(ds, func(d *Datagram) bool { return d.Dst == srv.Addr })
	if first == nil {
		return fmt.Errorf("%w: nothing captured", ErrTransfer)
	}
	real := first.Src
	c := ev.corr
	env.Check("every server qlog packet matches a captured datagram", c.ServerTotal > 0 && c.ServerMatched == c.ServerTotal,
		"%d of %d packets the server logged (sent and received); %d datagrams recognised as byte-identical copies of the client's", c.ServerMatched, c.ServerTotal, c.Copies)
	env.Check("the real client's transfer completes byte-exact", uerr == nil && res.Match,
		"sent %d bytes, server counted %d, sha256 match %t, err %v", res.Sent, res.Received, res.Match, uerr)

	isFake := map[netip.AddrPort]bool{}
	for _, f := range fakes {
		isFake[f] = true
	}
	type tally struct{ in, out, probes, other, responses int }
	per := map[netip.AddrPort]*tally{}
	originals := map[*Datagram]*Datagram{} // the client's datagram → its forged copy
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
			if d.CopyOf != nil {
				originals[d.CopyOf] = d
			}
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
	for _, t := range ev.srv.Tuples() {
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

	// Comments on the originals, and the ladder: every message row a
	// captured datagram, its frames from the qlog record matched to it.
	dropped := 0
	for o, copy := range originals {
		if o.Event != nil && o.Event.Dropped != "" {
			dropped++
		}
		o.Pkt.Comment(fmt.Sprintf("client: the original of the forged copy in frame %d, arriving after it; the server's verdict: %s", copy.Index+1, verdict(o.Event)))
	}
	lad := env.Ladder("Forged addresses get a challenge, never the connection (as captured)", "client / attacker", "server")
	var r rows
	if d := firstOf(ds, func(d *Datagram) bool { return d.Src == real && !d.Long }); d != nil {
		r.send(d.Index, "1-RTT "+frames(d.ClientEvent), "client "+real.String(), "active: "+real.String())
	}
	for _, f := range fakes {
		copy := firstOf(ds, func(d *Datagram) bool { return d.Src == f })
		if copy == nil {
			r.state(len(ds), "attacker "+f.String()+": no forged copy captured", "")
			continue
		}
		r.send(copy.Index, "forged copy of client pn "+pnOf(copy.Parts), "attacker "+f.String(), "new 4-tuple, unvalidated")
		if p := firstOf(ds, func(d *Datagram) bool { return d.Dst == f && d.Event != nil && len(d.Event.Challenge) > 0 }); p != nil {
			r.reply(p.Index, fmt.Sprintf("PATH_CHALLENGE %x to %s (%d B)", p.Event.Challenge[0], f, p.Size), "attacker cannot answer", "active: "+real.String())
		}
		if copy.CopyOf != nil {
			o := copy.CopyOf
			r.send(o.Index, fmt.Sprintf("original of #%d: %s", copy.Index+1, verdict(o.Event)), "client "+real.String(), "")
		}
	}
	if fin := firstOf(ds, func(d *Datagram) bool { return d.Src == real && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), "active: "+real.String())
	}
	r.draw(lad)
	env.Metric("originals_dropped_as_duplicate_count", float64(dropped))
	return nil
}

// verdict says what the server's qlog did with a packet it received.
func verdict(e *PacketEvent) string {
	switch {
	case e == nil:
		return "not in the server's qlog"
	case e.Dropped != "":
		return "dropped (" + e.Dropped + ")"
	}
	return "processed"
}

// pnOf is the packet number the sender logged for a datagram's first
// packet, "?" when none.
func pnOf(parts []Part) string {
	if len(parts) == 0 || parts[0].Sent == nil {
		return "?"
	}
	return fmt.Sprint(parts[0].Sent.PN)
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
