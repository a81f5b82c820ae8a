package tcpexp

import (
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// plots adds a connection's pictures to the report, from the driver's
// records (the lab's view of every segment either way, captured or not)
// and the kernel's state beside each captured one: a time–sequence graph
// of each direction that carried data or a FIN (segments, the other
// side's ACK line and receive window; the lab's direction with the
// engine's snd.una + cwnd), the engine's cwnd and ssthresh, and both
// endpoints' states over time. Sequence numbers are relative to the
// ISSs the ladder uses.
func (r *labRun) plots(title string, c *rawtcp.Conn, lb, pb seqBase) {
	recs := r.connRecs(c.ID())
	if len(recs) == 0 {
		return
	}
	kstate := r.kernelStates(c)
	g := tcpGraphs{lb: lb, pb: pb}
	for _, ri := range recs {
		g.add(&r.recs[ri], kstate[ri])
	}
	g.emit(r.env, title)
}

// kernelStates maps each of the connection's records that has a captured
// packet to the kernel's state beside that packet.
func (r *labRun) kernelStates(c *rawtcp.Conn) map[int]string {
	out := map[int]string{}
	for _, ri := range r.connRecs(c.ID()) {
		p, ok := r.recPkt[ri]
		if !ok || r.convOf[p] < 0 {
			continue
		}
		cc := r.convs[r.convOf[p]]
		for j, q := range cc.pkts {
			if q == p && j < len(cc.kernel) {
				out[ri] = cc.kernel[j].state
			}
		}
	}
	return out
}

// tcpGraphs accumulates one connection's series, record by record.
type tcpGraphs struct {
	lb, pb seqBase

	labSeg, peerSeg   []lab.Point // ranges: segments each way
	peerAck, peerWin  []lab.Point // the kernel's ACK line and window, in the lab's sequence space
	labAck, labWin    []lab.Point // the lab's, in the kernel's
	cwndEdge          []lab.Point // snd.una + cwnd, in the lab's sequence space
	cwnd, ssthresh    []lab.Point
	labMax, peerMax   uint32 // highest relative sequence end seen each way
	labSent, peerSent bool
	labState, kState  []lab.Point // spans
	last              float64
	dataLab, dataPeer bool
}

// add takes one record: its segment into its direction's series, the ACK
// and window into the other's, the TCB's cwnd, and the states.
func (g *tcpGraphs) add(rec *rawtcp.Record, kstate string) {
	t := lab.MS(rec.At)
	g.last = max(g.last, t)
	span(&g.labState, t, rec.State.String())
	if kstate != "" {
		span(&g.kState, t, kstate)
	}
	if rec.Seg.SrcPort == 0 && rec.Seg.DstPort == 0 { // a note, no segment
		return
	}
	s := rec.Seg
	seqLen := uint32(s.Len)
	if s.Flags&tcpstate.SYN != 0 {
		seqLen++
	}
	if s.Flags&tcpstate.FIN != 0 {
		seqLen++
	}
	ack := s.Flags&tcpstate.ACK != 0
	if rec.Sent {
		rel := uint32(s.Seq) - g.lb.v
		if seqLen > 0 {
			pt := lab.Point{X: t, Y: float64(rel), Y2: float64(rel + seqLen), Detail: labComment(rec, g.lb, g.pb)}
			switch {
			case !onWire(rec):
				pt.Fate = lab.FateLost
			case g.labSent && rel+seqLen <= g.labMax:
				pt.Fate = lab.FateRetransmit
			}
			g.labSeg = append(g.labSeg, pt)
			g.labMax, g.labSent = max(g.labMax, rel+seqLen), true
			g.dataLab = g.dataLab || s.Len > 0 || s.Flags&tcpstate.FIN != 0
		}
		if ack && g.pb.set {
			a := float64(uint32(s.Ack) - g.pb.v)
			g.labAck = append(g.labAck, lab.Point{X: t, Y: a})
			g.labWin = append(g.labWin, lab.Point{X: t, Y: a + float64(winBytes(s, rec.TCB.RcvWScale))})
		}
		if st := rec.State; st != tcpstate.Closed && st != tcpstate.Listen && st != tcpstate.SynSent {
			tcb := rec.TCB
			g.cwnd = append(g.cwnd, lab.Point{X: t, Y: float64(tcb.Cwnd)})
			if tcb.Ssthresh < 1<<30 {
				g.ssthresh = append(g.ssthresh, lab.Point{X: t, Y: float64(tcb.Ssthresh)})
			}
			g.cwndEdge = append(g.cwndEdge, lab.Point{X: t, Y: float64(uint32(tcb.SndUna)-g.lb.v) + float64(tcb.Cwnd)})
		}
		return
	}
	if g.pb.set {
		rel := uint32(s.Seq) - g.pb.v
		if seqLen > 0 {
			pt := lab.Point{X: t, Y: float64(rel), Y2: float64(rel + seqLen), Detail: labComment(rec, g.lb, g.pb)}
			if g.peerSent && rel+seqLen <= g.peerMax {
				pt.Fate = lab.FateRetransmit
			}
			g.peerSeg = append(g.peerSeg, pt)
			g.peerMax, g.peerSent = max(g.peerMax, rel+seqLen), true
			g.dataPeer = g.dataPeer || s.Len > 0 || s.Flags&tcpstate.FIN != 0
		}
	}
	if ack {
		a := float64(uint32(s.Ack) - g.lb.v)
		g.peerAck = append(g.peerAck, lab.Point{X: t, Y: a})
		g.peerWin = append(g.peerWin, lab.Point{X: t, Y: a + float64(winBytes(s, rec.TCB.SndWScale))})
	}
}

// winBytes is a segment's receive window in bytes: its field shifted by
// the scale agreed (a SYN's field is never scaled).
func winBytes(s rawtcp.RecSeg, shift uint8) uint32 {
	if s.Flags&tcpstate.SYN != 0 {
		return uint32(s.Window)
	}
	return uint32(s.Window) << shift
}

// span extends the last span of a lane to t, or starts a new one when the
// state changed.
func span(lane *[]lab.Point, t float64, state string) {
	if n := len(*lane); n > 0 {
		last := &(*lane)[n-1]
		last.X2 = max(last.X2, t)
		if last.Label == state {
			return
		}
	}
	*lane = append(*lane, lab.Point{X: t, X2: t, Label: state})
}

// emit adds the plots that have something to show.
func (g *tcpGraphs) emit(env *lab.Env, title string) {
	const x = "time (ms, the lab's clock)"
	if g.dataLab {
		p := env.Plot(title+": time–sequence graph, lab → kernel", lab.PlotXY, x, "relative sequence number (bytes)")
		p.Add("segments sent by the lab", lab.SeriesRanges).Points = g.labSeg
		p.Add("kernel's ACK", lab.SeriesStep).Points = g.peerAck
		p.Add("kernel's receive window edge (ACK + window)", lab.SeriesStep).Points = g.peerWin
		p.Add("lab's snd.una + cwnd", lab.SeriesStep).Points = g.cwndEdge
	}
	if g.dataPeer {
		p := env.Plot(title+": time–sequence graph, kernel → lab", lab.PlotXY, x, "relative sequence number (bytes)")
		p.Add("segments sent by the kernel (as the lab received them)", lab.SeriesRanges).Points = g.peerSeg
		p.Add("lab's ACK", lab.SeriesStep).Points = g.labAck
		p.Add("lab's receive window edge (ACK + window)", lab.SeriesStep).Points = g.labWin
	}
	if len(g.cwnd) > 1 {
		p := env.Plot(title+": the engine's congestion window", lab.PlotXY, x, "bytes")
		p.Add("cwnd", lab.SeriesStep).Points = g.cwnd
		p.Add("ssthresh (once set below 1 GiB)", lab.SeriesStep).Points = g.ssthresh
	}
	if len(g.labState) > 0 {
		for _, lane := range [][]lab.Point{g.labState, g.kState} {
			if n := len(lane); n > 0 {
				lane[n-1].X2 = max(lane[n-1].X2, g.last)
			}
		}
		p := env.Plot(title+": states of both endpoints", lab.PlotTimeline, x, "")
		p.Machine = "tcp"
		p.Add("lab (tcpstate)", lab.SeriesSpans).Points = g.labState
		p.Add("kernel (from the segments)", lab.SeriesSpans).Points = g.kState
	}
}
