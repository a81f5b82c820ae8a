package quicexp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/statelab/statelab/lab"
)

// drawTimed is draw with each captured packet's row given its time in
// the capture (from the first datagram), its whole comment as the row's
// detail, and a forged copy marked as forged, for pictures that draw
// time to scale.
func (r *rows) drawTimed(l *lab.Ladder, ds []*Datagram, server netip.AddrPort) {
	byIndex := map[int]*Datagram{}
	for _, d := range ds {
		byIndex[d.Index] = d
	}
	var t0 time.Time
	if len(ds) > 0 {
		t0 = ds[0].Time
	}
	idx := make([]int, len(r.at))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(r.at[a], r.at[b]) })
	for _, i := range idx {
		g := r.r[i]
		if d, ok := byIndex[int(r.at[i])]; ok && g.Label != "" && float64(int(r.at[i])) == r.at[i] {
			g.AtMS = lab.MS(d.Time.Sub(t0))
			g.Detail = DatagramComment(d, server)
			if d.CopyOf != nil {
				g.Kind = lab.FateForged
			}
			l.Timed = true
		}
		l.Rows = append(l.Rows, g)
	}
}

// plots adds the connection's pictures: which connection ID each
// direction of each 4-tuple carried over time with the path validation
// frames and the attacker's copies, and the bytes each path carried.
func plots(env *lab.Env, ds []*Datagram, server netip.AddrPort) {
	if len(ds) == 0 {
		return
	}
	t0 := ds[0].Time
	p := env.Plot("connection IDs on each 4-tuple over time (the DCID each datagram carried, from its cleartext header), path validation, forged copies",
		lab.PlotTimeline, "time (ms, from the first captured datagram)", "")
	lanes := map[string]*lab.Series{}
	var order []string
	lane := func(name string, kind lab.SeriesKind) *lab.Series {
		if s, ok := lanes[name]; ok {
			return s
		}
		s := &lab.Series{Name: name, Kind: kind}
		lanes[name] = s
		order = append(order, name)
		return s
	}
	type bytesKey struct {
		tuple string
		up    bool
	}
	bytes := map[bytesKey]int{}
	var tuples []string
	for _, d := range ds {
		at := lab.MS(d.Time.Sub(t0))
		peer := peerOf(d, server).String()
		up := d.Src != server
		if d.CopyOf == nil {
			k := bytesKey{peer, up}
			if _, ok := bytes[bytesKey{peer, true}]; !ok {
				if _, ok := bytes[bytesKey{peer, false}]; !ok {
					tuples = append(tuples, peer)
				}
			}
			bytes[k] += d.Size
		}
		name := peer + " → server"
		if !up {
			name = "server → " + peer
		}
		if d.CopyOf != nil {
			s := lane("forged copies (attacker)", lab.SeriesEvents)
			s.Put(lab.Point{X: at, Label: fmt.Sprintf("#%d from %s, a copy of #%d", d.Index+1, d.Src, d.CopyOf.Index+1), Fate: lab.FateForged,
				Detail: DatagramComment(d, server)})
			continue
		}
		s := lane(name, lab.SeriesSpans)
		cid := cidShort(d.DCID)
		if last := s.Last(); last != nil && last.Label == cid {
			last.X2 = at
		} else {
			s.Span(at, at, cid)
		}
		for _, part := range d.Parts {
			e := part.Sent
			if e == nil {
				e = part.Recv
			}
			if e == nil {
				continue
			}
			for _, c := range e.Challenge {
				lane("path validation", lab.SeriesEvents).Event(at, fmt.Sprintf("PATH_CHALLENGE %x on %s (#%d)", c, name, d.Index+1))
			}
			for _, c := range e.Response {
				lane("path validation", lab.SeriesEvents).Event(at, fmt.Sprintf("PATH_RESPONSE %x on %s (#%d)", c, name, d.Index+1))
			}
		}
	}
	for _, kind := range []lab.SeriesKind{lab.SeriesSpans, lab.SeriesEvents} { // the 4-tuples, then the marks
		for _, n := range order {
			if lanes[n].Kind == kind {
				p.Series = append(p.Series, lanes[n])
			}
		}
	}
	b := env.Plot("bytes each 4-tuple carried (UDP payload, from the capture; forged copies not counted)", lab.PlotBars, "", "bytes")
	upS, downS := b.Add("client → server", lab.SeriesPoints), b.Add("server → client", lab.SeriesPoints)
	for _, t := range tuples {
		upS.Put(lab.Point{Label: t, Y: float64(bytes[bytesKey{t, true}])})
		downS.Put(lab.Point{Label: t, Y: float64(bytes[bytesKey{t, false}])})
	}
}
