package quicexp

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn/nat"
)

// runTCPContrast is quic/tcp-contrast: the same port rebinding applied to
// a QUIC upload and to a kernel TCP upload.
func runTCPContrast(env *lab.Env) error {
	tl, err := newTCPLab(env)
	if err != nil {
		return err
	}
	l, err := setUp(env, setupOptions{nat: true, alsoKeep: tl.keep})
	if err != nil {
		return err
	}
	qres, qrb, qerr := l.uploadRebinding(loopback1)
	tcp := tl.upload(l)
	extra, err := tl.expect(l, tcp.rb)
	if err != nil {
		return err
	}
	ev, err := l.finish(extra...)
	if err != nil {
		return err
	}
	// Every TCP segment commented, even in a short capture.
	segs := commentTCP(ev.pkts, tl.outside, tl.sink.addr, tcp.rb)
	if !ev.complete {
		return nil
	}
	stall := quicStall(ev.logs.Server)
	env.Check("QUIC: the upload survives the port rebinding byte-exact", qerr == nil && qres.Match && qrb.New.IsValid(),
		"binding %s → %s; %d bytes, sha256 match %t, longest stall %.1f ms, error: %s", qrb.Old, qrb.New, qres.Received, qres.Match, ms(stall), lab.ErrText(qerr))
	o := readTCPReset(segs, tcp, tl.sink.addr)
	o.check(env, tl.sink.received(), transferSize)
	env.Metric("quic_stall_ms", ms(stall))
	env.Metric("quic_delivered_bytes", float64(qres.Received))
	env.Metric("tcp_rst_ms", ms(o.rstAfter))
	env.Metric("tcp_client_reset_ms", ms(o.resetAfter))
	env.Metric("tcp_delivered_bytes", float64(tl.sink.received()))
	env.Table("The same port rebinding", [][]string{
		{"protocol", "identified by", "rebinding", "outcome", "delivered", "stall"},
		{"QUIC", "connection ID", qrb.Old.String() + " → " + qrb.New.String(), outcome(qres.Match, "completed, sha256 match", "FAILED"),
			fmt.Sprintf("%d B", qres.Received), fmt.Sprintf("%.1f ms", ms(stall))},
		{"TCP", "4-tuple", o.rb.Old.String() + " → " + o.rb.New.String(), outcome(o.rst != nil && o.reset, fmt.Sprintf("RST after %.3f ms; client: ECONNRESET after %.3f ms", ms(o.rstAfter), ms(o.resetAfter)), "no RST seen or not relayed"),
			fmt.Sprintf("%d B", tl.sink.received()), "∞ (never resumed)"},
	})
	o.ladder(env, segs, tl.outside, tl.sink.received())
	return nil
}

// tcpLab is the contrast's TCP side: a server (the sink) behind the TCP
// NAT, set up before the capture starts so that it keeps their segments.
type tcpLab struct {
	sink    *tcpSink
	nat     *nat.TCP
	outside netip.AddrPort // the NAT's outside connection, once a client connected
}

func newTCPLab(env *lab.Env) (*tcpLab, error) {
	s, err := newTCPSink()
	if err != nil {
		return nil, err
	}
	env.Cleanup(s.close)
	n, err := nat.NewTCP("127.0.0.1:0", s.addr)
	if err != nil {
		return nil, err
	}
	env.Cleanup(func() { n.Close() })
	return &tcpLab{sink: s, nat: n}, nil
}

// keep keeps the segments to or from the sink's port.
func (t *tcpLab) keep(m capture.Meta) bool {
	return m.Proto == capture.ProtoTCP && m.Involves(t.sink.addr.Port())
}

// tcpRun is what happened to the TCP upload: its result, and the
// rebinding as the NAT reported it (zero if it reported none).
type tcpRun struct {
	tcpResult
	rb nat.TCPRebinding
}

// upload sends the seed's data through the TCP NAT, which rebinds after a
// third, and waits for the NAT's report (bounded by the experiment's
// deadline).
func (t *tcpLab) upload(l *labSetup) tcpRun {
	r := tcpRun{tcpResult: tcpUpload(l.ctx, t.nat, l.data())}
	if r.rebound != nil {
		select {
		case r.rb = <-r.rebound:
		case <-l.ctx.Done():
		}
	}
	return r
}

// expect reads what the TCP endpoints counted, before anything closes
// and once they are done: the server has read every byte the NAT relayed
// on the old connection (nothing more is relayed after the rebinding), so
// the NAT's outside socket has sent them all, and the server's delayed
// ACK is out. Read earlier, the counts would miss the segments still
// queued, and a capture missing them would meet them. That is what the
// capture must hold of TCP.
func (t *tcpLab) expect(l *labSetup, rb nat.TCPRebinding) ([]expect, error) {
	if err := t.sink.waitReceived(l.ctx, rb.RelayedBytes); err != nil {
		return nil, err
	}
	outside, outCount := t.nat.Outside()
	sinkCount := t.sink.count(l.ctx)
	if outCount.Err != nil || sinkCount.Err != nil {
		return nil, fmt.Errorf("%w: reading tcp_info: NAT outside: %v; server: %v", nat.ErrNAT, outCount.Err, sinkCount.Err)
	}
	t.outside = outside
	return tcpExpect(outside, t.sink.addr, outCount, sinkCount, rb), nil
}

// quicStall is the longest gap between packets carrying STREAM data the
// server received, by its qlog.
func quicStall(server []PacketEvent) time.Duration {
	var stall time.Duration
	var last time.Time
	for _, e := range server {
		if e.Sent || e.Stream == 0 {
			continue
		}
		if !last.IsZero() && e.Time.Sub(last) > stall {
			stall = e.Time.Sub(last)
		}
		last = e.Time
	}
	return stall
}

// tcpReset is the TCP rebinding as captured: the segment the NAT crafted
// from the new port, the server's RST to it, and the client's error.
type tcpReset struct {
	rb         nat.TCPRebinding
	seg, rst   *tcpSegment
	rstAfter   time.Duration // from the crafted segment to the RST, in the capture
	reset      bool          // the client's error is ECONNRESET
	resetAfter time.Duration // from the rebinding to the client's error
	clientErr  error
}

// readTCPReset finds the crafted segment and the server's RST in the
// captured segments.
func readTCPReset(segs []*tcpSegment, r tcpRun, server netip.AddrPort) tcpReset {
	o := tcpReset{rb: r.rb, clientErr: r.err}
	for _, g := range segs {
		switch {
		case o.seg == nil && g.m.Src == r.rb.New && g.m.Dst == server:
			o.seg = g
		case o.seg != nil && o.rst == nil && g.m.Src == server && g.m.Dst == r.rb.New && g.m.Flags&capture.FlagRST != 0:
			o.rst = g
			o.rstAfter = g.p.Time.Sub(o.seg.p.Time)
		}
	}
	o.reset = errors.Is(r.err, syscall.ECONNRESET)
	if o.reset && !r.rb.At.IsZero() {
		o.resetAfter = r.at.Sub(r.rb.At)
	}
	return o
}

// check judges the TCP side: the server resets the rebound segment, the
// client's kernel reports it, and the upload never completes.
func (o tcpReset) check(env *lab.Env, received int64, size int) {
	env.Check("TCP: the server answers the rebound segment with RST", o.rb.Err == nil && o.seg != nil && o.rst != nil,
		"segment from %s captured: %t; RST back: %t after %.3f ms; error: %s", o.rb.New, o.seg != nil, o.rst != nil, ms(o.rstAfter), lab.ErrText(o.rb.Err))
	env.Check("TCP: the NAT relays the RST and the client's kernel reports ECONNRESET", o.reset && o.rb.Relayed && received < int64(size),
		"RST relayed to the client: %t; client error %.3f ms after the rebinding: %v; server received %d of %d bytes on the old connection",
		o.rb.Relayed, ms(o.resetAfter), o.clientErr, received, size)
	env.Note("TCP goes through a TCP NAT built like the UDP middlebox (which cannot carry TCP): the same rebinding, and " +
		"the server's RST translated back to the client's socket as a real NAT does.")
}

// ladder draws the TCP side, every message row a captured segment.
func (o tcpReset) ladder(env *lab.Env, segs []*tcpSegment, outside netip.AddrPort, received int64) {
	lad := env.Ladder("TCP: the same rebinding (as captured between the NAT and the server)", "client (via NAT)", "server kernel")
	var r rows
	var relayed []*tcpSegment
	n := 0
	for _, g := range segs {
		if g.m.Src == outside && len(g.m.Payload) > 0 {
			relayed = append(relayed, g)
			n += len(g.m.Payload)
		}
	}
	if len(relayed) > 0 {
		r.send(relayed[0].index, fmt.Sprintf("… %d data segments, %d B", len(relayed), n), "from "+outside.String(), "ESTABLISHED "+outside.String())
	}
	if o.seg != nil {
		r.state(o.seg.index, "NAT rebinds → "+o.rb.New.String(), "")
		label := fmt.Sprintf("ACK|PSH seq %d of the old conn (%d B)", 1+o.rb.RelayedBytes, len(o.seg.m.Payload))
		if !o.rb.SeqKnown {
			label = fmt.Sprintf("ACK|PSH, seq unknown (%d B)", len(o.seg.m.Payload))
		}
		r.send(o.seg.index, label, "from "+o.rb.New.String(), "no socket for this 4-tuple")
	}
	if o.rst != nil {
		r.reply(o.rst.index, "RST", "", fmt.Sprintf("after %.3f ms", ms(o.rstAfter)))
		r.state(o.rst.index+1, fmt.Sprintf("NAT relays RST: client ECONNRESET after %.3f ms", ms(o.resetAfter)), fmt.Sprintf("old conn stuck at %d B", received))
	}
	r.draw(lad)
}

func outcome(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}
