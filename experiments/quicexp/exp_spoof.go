package quicexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/quicconn"
)

// runSpoof is quic/spoofed-path: an attacker on the path replays the
// client's packets from forged addresses.
func runSpoof(env *lab.Env) error {
	l, err := setUp(env, setupOptions{nat: true})
	if err != nil {
		return err
	}
	res, fakes, uerr := l.uploadSpoofed()
	ev, err := l.finish()
	if err != nil || !ev.complete {
		return err
	}
	ds := ev.ds
	first := firstOf(ds, func(d *Datagram) bool { return d.Dst == l.srv.Addr })
	if first == nil {
		return fmt.Errorf("%w: nothing captured", quicconn.ErrTransfer)
	}
	real := first.Src
	c := ev.corr
	env.Check("every server qlog packet matches a captured datagram", c.ServerTotal > 0 && c.ServerMatched == c.ServerTotal,
		"%d of %d packets the server logged (sent and received); %d datagrams recognised as byte-identical copies of the client's", c.ServerMatched, c.ServerTotal, c.Copies)
	env.Check("the real client's transfer completes byte-exact", uerr == nil && res.Match,
		"sent %d bytes, server counted %d, sha256 match %t, error: %s", res.Sent, res.Received, res.Match, lab.ErrText(uerr))
	a := tallyForged(ds, fakes)
	a.comment()
	a.check(env, l.mb.Stats().Forged)
	checkStaysOnRealPath(env, ds, ev.srv.Tuples(), a, real, res)
	env.Metric("forged_copies_count", float64(l.mb.Stats().Forged))
	env.Metric("transfer_bytes", float64(res.Received))
	env.Metric("originals_dropped_as_duplicate_count", float64(a.commentOriginals()))
	spoofLadder(env, ds, a, real, res)
	return nil
}

// uploadSpoofed uploads the seed's data through the NAT, arming the
// attacker once a third is written; fakes are its forged source addresses
// once every copy was sent.
func (l *labSetup) uploadSpoofed() (quicconn.UploadResult, []netip.AddrPort, error) {
	var forged <-chan []netip.AddrPort
	res, err := l.upload(func(n int64) {
		if forged == nil && n >= transferSize/3 {
			forged = l.mb.Spoof([]netip.Addr{loopback3, loopback4}, spoofedPackets, largeDatagram)
		}
	})
	var fakes []netip.AddrPort
	select {
	case fakes = <-forged:
	default:
	}
	return res, fakes, err
}

// forgedTally is what went between the server and each forged address.
type forgedTally struct {
	in, out   int // bytes from and to the forged address
	probes    int // server datagrams to it with a PATH_CHALLENGE
	other     int // server datagrams to it with anything but probing frames
	responses int // datagrams from it the server logged with a PATH_RESPONSE
}

// spoofing is the attack as the capture tells it.
type spoofing struct {
	fakes  []netip.AddrPort
	isFake map[netip.AddrPort]bool
	per    map[netip.AddrPort]*forgedTally
	// copies are the datagrams from forged addresses, in capture order;
	// toFake the server's to them.
	copies, toFake []*Datagram
}

// tallyForged counts what the server exchanged with each forged address.
func tallyForged(ds []*Datagram, fakes []netip.AddrPort) *spoofing {
	a := &spoofing{fakes: fakes, isFake: map[netip.AddrPort]bool{}, per: map[netip.AddrPort]*forgedTally{}}
	for _, f := range fakes {
		a.isFake[f] = true
		a.per[f] = &forgedTally{}
	}
	for _, d := range ds {
		switch {
		case a.isFake[d.Src]:
			t := a.per[d.Src]
			t.in += d.Size
			if d.Event != nil && len(d.Event.Response) > 0 {
				t.responses++
			}
			a.copies = append(a.copies, d)
		case a.isFake[d.Dst]:
			t := a.per[d.Dst]
			t.out += d.Size
			if d.Event != nil && len(d.Event.Challenge) > 0 {
				t.probes++
			}
			if d.Event == nil || !onlyProbing(d.Event.Frames) {
				t.other++
			}
			a.toFake = append(a.toFake, d)
		}
	}
	return a
}

// comment marks the attacker's copies and the server's probes of them.
func (a *spoofing) comment() {
	for _, d := range a.copies {
		d.Pkt.Comment(annotate.Append(fmt.Sprintf("attacker: forged copy of a client packet from %s (DCID %s), sent before the original", d.Src, d.DCID), annotate.Block{}.Str(annotate.Event, "forged copy")))
	}
	for _, d := range a.toFake {
		if d.Event != nil && len(d.Event.Challenge) > 0 {
			d.Pkt.Comment(annotate.Append(fmt.Sprintf("server → forged %s: PATH_CHALLENGE %x; no answer will come", d.Dst, d.Event.Challenge[0]), annotate.Block{}.Str(annotate.Event, "PATH_CHALLENGE")))
		}
	}
}

// probedAll reports how many forged addresses were probed, whether the
// server stayed within 3× what each sent it, whether it sent them anything
// but probes (or got a PATH_RESPONSE from one), and describes each.
func (a *spoofing) probedAll() (probed int, ampOK bool, others int, desc []string) {
	ampOK = true
	for _, f := range a.fakes {
		t := a.per[f]
		if t.probes > 0 {
			probed++
		}
		if t.out > 3*t.in {
			ampOK = false
		}
		others += t.other + t.responses
		desc = append(desc, fmt.Sprintf("%s: got %d B, sent %d B (%d PATH_CHALLENGE, %d other, %d PATH_RESPONSE back)", f, t.in, t.out, t.probes, t.other, t.responses))
	}
	return probed, ampOK, others, desc
}

// check judges what the server did with the forged addresses.
func (a *spoofing) check(env *lab.Env, forged int) {
	probed, ampOK, others, desc := a.probedAll()
	env.Check("the attacker's copies reached the server from forged addresses", len(a.fakes) == 2 && forged == spoofedPackets,
		"%d forged copies from %d addresses", forged, len(a.fakes))
	env.Check("the server probes every forged address with PATH_CHALLENGE", len(a.fakes) > 0 && probed == len(a.fakes), "%s", strings.Join(desc, "; "))
	env.Check("the server sends forged addresses nothing but probes, within 3× what they sent", others == 0 && ampOK, "%s", strings.Join(desc, "; "))
}

// checkStaysOnRealPath checks that the server's active path never moved to
// a forged address and that the real client carried on after the attack.
func checkStaysOnRealPath(env *lab.Env, ds []*Datagram, tuples []TupleEvent, a *spoofing, real netip.AddrPort, res quicconn.UploadResult) {
	switched := 0
	for _, t := range tuples {
		if t.ID == "" && a.isFake[t.Remote] {
			switched++
		}
	}
	after := 0
	if len(a.copies) > 0 {
		for _, d := range ds {
			if d.Src == real && d.Time.After(a.copies[0].Time) {
				after++
			}
		}
	}
	env.Check("the server never switches the connection to an unvalidated path", switched == 0,
		"active path changes to a forged address: %d", switched)
	env.Check("the real client carries on from its own address", after > 0 && res.Match,
		"%d client datagrams from %s after the first forged copy", after, real)
}

// commentOriginals comments each forged copy's original with the server's
// verdict on it, and counts those it dropped as duplicates.
func (a *spoofing) commentOriginals() (dropped int) {
	for _, c := range a.copies {
		o := c.CopyOf
		if o == nil {
			continue
		}
		if o.Event != nil && o.Event.Dropped != "" {
			dropped++
		}
		o.Pkt.Comment(annotate.Append(fmt.Sprintf("client: the original of the forged copy in frame %d, arriving after it; the server's verdict: %s", c.Index+1, verdict(o.Event)), annotate.Block{}.Str(annotate.Event, "original of a forged copy")))
	}
	return dropped
}

// spoofLadder draws the attack, every message row a captured datagram,
// its frames from the qlog record matched to it.
func spoofLadder(env *lab.Env, ds []*Datagram, a *spoofing, real netip.AddrPort, res quicconn.UploadResult) {
	lad := env.Ladder("Forged addresses get a challenge, never the connection (as captured)", "client / attacker", "server")
	var r rows
	if d := firstOf(ds, func(d *Datagram) bool { return d.Src == real && !d.Long }); d != nil {
		r.send(d.Index, "1-RTT "+frames(d.ClientEvent), "client "+real.String(), "active: "+real.String())
	}
	for _, f := range a.fakes {
		copy := firstOf(ds, func(d *Datagram) bool { return d.Src == f })
		if copy == nil {
			r.state(len(ds), "attacker "+f.String()+": no forged copy captured", "")
			continue
		}
		r.send(copy.Index, "forged copy of client pn "+pnOf(copy.Parts), "attacker "+f.String(), "new 4-tuple, unvalidated")
		if p := firstOf(ds, func(d *Datagram) bool { return d.Dst == f && d.Event != nil && len(d.Event.Challenge) > 0 }); p != nil {
			r.reply(p.Index, fmt.Sprintf("PATH_CHALLENGE %x to %s (%d B)", p.Event.Challenge[0], f, p.Size), "attacker cannot answer", "active: "+real.String())
		}
		if o := copy.CopyOf; o != nil {
			r.send(o.Index, fmt.Sprintf("original of #%d: %s", copy.Index+1, verdict(o.Event)), "client "+real.String(), "")
		}
	}
	if fin := firstOf(ds, func(d *Datagram) bool { return d.Src == real && d.ClientEvent != nil && d.ClientEvent.Fin }); fin != nil {
		r.send(fin.Index, "STREAM FIN", fmt.Sprintf("sha256 match %t", res.Match), "active: "+real.String())
	}
	if d := firstOf(ds, func(d *Datagram) bool { return d.Src == real }); d != nil {
		r.drawTimed(lad, ds, d.Dst) // the server is where the client sends
	} else {
		r.draw(lad)
	}
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
