package quicconn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "quic/tcp-contrast",
		Summary: "the same NAT port rebinding breaks a kernel TCP connection (RST, ECONNRESET) and not a QUIC one",
		Shows: "The same mid-transfer port rebinding applied to a QUIC upload and to a kernel TCP upload. The UDP middlebox " +
			"cannot carry TCP, so TCP goes through a TCP NAT built like it (a relay from an outside port of its own that " +
			"forgets the binding and sends the client's next bytes from a new port). QUIC carries on by connection ID after " +
			"a short stall; the server's TCP answers the segment from the new port with RST, because a TCP connection is " +
			"its 4-tuple, the NAT translates that RST back to the client as a real NAT would, and the client's kernel reports " +
			"ECONNRESET: the TCP upload never completes.",
		Run: runTCPContrast,
	})
}

func runTCPContrast(env *lab.Env) error {
	l, err := newLab(env)
	if err != nil {
		return err
	}
	srv := l.srv
	mb, err := l.natInFront()
	if err != nil {
		return err
	}
	ts, err := newTCPSink()
	if err != nil {
		return err
	}
	env.Cleanup(ts.close)
	nat, err := NewTCPNAT("127.0.0.1:0", ts.addr)
	if err != nil {
		return err
	}
	env.Cleanup(func() { nat.Close() })
	qport, tport := srv.Addr.Port(), ts.addr.Port()
	cap, err := env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && (m.Proto == capture.ProtoUDP && m.Involves(qport) || m.Proto == capture.ProtoTCP && m.Involves(tport))
	}, MaxDrain: captureDrain})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, StepTimeout)
	defer cancel()
	data := l.data()

	// QUIC through the UDP NAT.
	cl, err := l.dial(ctx, mb.Front, "")
	if err != nil {
		return err
	}
	qres, qrb, qerr := uploadWithRebind(ctx, env, cl, mb, data, loopback1)

	// TCP through the TCP NAT.
	tres := tcpUpload(ctx, nat, data)
	var trb TCPRebinding
	if tres.rebound != nil { // armed: the NAT reports (bounded by StepTimeout)
		select {
		case trb = <-tres.rebound:
		case <-ctx.Done():
		}
	}

	// What the TCP endpoints counted, read before anything closes.
	outside, outCount := nat.Outside()
	sinkCount := ts.count(ctx)
	if outCount.Err != nil || sinkCount.Err != nil {
		return fmt.Errorf("%w: reading tcp_info: NAT outside: %v; server: %v", ErrMiddlebox, outCount.Err, sinkCount.Err)
	}
	ev, err := l.finish(ctx, cl, cap, tcpExpect(outside, ts.addr, outCount, sinkCount, trb)...)
	if err != nil {
		return err
	}
	// Every TCP segment commented, even in a short capture.
	segs := CommentTCP(ev.pkts, outside, ts.addr, trb)
	if !ev.complete {
		return nil
	}
	// QUIC's stall: the longest gap between packets carrying STREAM data
	// the server received.
	var stall time.Duration
	var last time.Time
	for _, e := range ev.logs.Server {
		if e.Sent || e.Stream == 0 {
			continue
		}
		if !last.IsZero() && e.Time.Sub(last) > stall {
			stall = e.Time.Sub(last)
		}
		last = e.Time
	}
	env.Check("QUIC: the upload survives the port rebinding byte-exact", qerr == nil && qres.Match && qrb.New.IsValid(),
		"binding %s → %s; %d bytes, sha256 match %t, longest stall %.1f ms, err %v", qrb.Old, qrb.New, qres.Received, qres.Match, ms(stall), qerr)

	// TCP, from the capture: the crafted segment and the server's RST.
	var seg, rst *tcpSegment
	var rstAfter time.Duration
	for _, g := range segs {
		switch {
		case seg == nil && g.m.Src == trb.New && g.m.Dst == ts.addr:
			seg = g
		case seg != nil && rst == nil && g.m.Src == ts.addr && g.m.Dst == trb.New && g.m.Flags&capture.FlagRST != 0:
			rst = g
			rstAfter = g.p.Time.Sub(seg.p.Time)
		}
	}
	env.Check("TCP: the server answers the rebound segment with RST", trb.Err == nil && seg != nil && rst != nil,
		"segment from %s captured: %t; RST back: %t after %.3f ms; err %v", trb.New, seg != nil, rst != nil, ms(rstAfter), trb.Err)
	reset := errors.Is(tres.err, syscall.ECONNRESET)
	var resetAfter time.Duration
	if reset && !trb.At.IsZero() {
		resetAfter = tres.at.Sub(trb.At)
	}
	env.Check("TCP: the NAT relays the RST and the client's kernel reports ECONNRESET", reset && trb.Relayed && ts.received() < int64(len(data)),
		"RST relayed to the client: %t; client error %.3f ms after the rebinding: %v; server received %d of %d bytes on the old connection",
		trb.Relayed, ms(resetAfter), tres.err, ts.received(), len(data))
	env.Note("TCP goes through a TCP NAT built like the UDP middlebox (which cannot carry TCP): the same rebinding, and " +
		"the server's RST translated back to the client's socket as a real NAT does.")

	env.Metric("quic_stall_ms", ms(stall))
	env.Metric("quic_delivered_bytes", float64(qres.Received))
	env.Metric("tcp_rst_ms", ms(rstAfter))
	env.Metric("tcp_client_reset_ms", ms(resetAfter))
	env.Metric("tcp_delivered_bytes", float64(ts.received()))
	env.Table("The same port rebinding", [][]string{
		{"protocol", "identified by", "rebinding", "outcome", "delivered", "stall"},
		{"QUIC", "connection ID", qrb.Old.String() + " → " + qrb.New.String(), outcome(qres.Match, "completed, sha256 match", "FAILED"),
			fmt.Sprintf("%d B", qres.Received), fmt.Sprintf("%.1f ms", ms(stall))},
		{"TCP", "4-tuple", trb.Old.String() + " → " + trb.New.String(), outcome(rst != nil && reset, fmt.Sprintf("RST after %.3f ms; client: ECONNRESET after %.3f ms", ms(rstAfter), ms(resetAfter)), "no RST seen or not relayed"),
			fmt.Sprintf("%d B", ts.received()), "∞ (never resumed)"},
	})
	// The ladder: every message row a captured segment.
	lad := env.Ladder("TCP: the same rebinding (as captured between the NAT and the server)", "client (via NAT)", "server kernel")
	var r rows
	var relayed []*tcpSegment
	for _, g := range segs {
		if g.m.Src == outside && len(g.m.Payload) > 0 {
			relayed = append(relayed, g)
		}
	}
	if len(relayed) > 0 {
		n := 0
		for _, g := range relayed {
			n += len(g.m.Payload)
		}
		r.send(relayed[0].index, fmt.Sprintf("… %d data segments, %d B", len(relayed), n), "from "+outside.String(), "ESTABLISHED "+outside.String())
	}
	if seg != nil {
		r.state(seg.index, "NAT rebinds → "+trb.New.String(), "")
		label := fmt.Sprintf("ACK|PSH seq %d of the old conn (%d B)", 1+trb.RelayedBytes, len(seg.m.Payload))
		if !trb.SeqKnown {
			label = fmt.Sprintf("ACK|PSH, seq unknown (%d B)", len(seg.m.Payload))
		}
		r.send(seg.index, label, "from "+trb.New.String(), "no socket for this 4-tuple")
	}
	if rst != nil {
		r.reply(rst.index, "RST", "", fmt.Sprintf("after %.3f ms", ms(rstAfter)))
		r.state(rst.index+1, fmt.Sprintf("NAT relays RST: client ECONNRESET after %.3f ms", ms(resetAfter)), fmt.Sprintf("old conn stuck at %d B", ts.received()))
	}
	r.draw(lad)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func outcome(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

type tcpResult struct {
	err     error
	at      time.Time // of err
	rebound <-chan TCPRebinding
}

// tcpUpload writes data through the NAT, which rebinds once a third has
// been relayed, then reads the server's digest, until the connection
// fails (at most StepTimeout).
func tcpUpload(ctx context.Context, nat *TCPNAT, data []byte) (r tcpResult) {
	defer func() {
		if r.err != nil {
			r.at = time.Now()
		}
	}()
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", nat.Front.String())
	if err != nil {
		r.err = err
		return r
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(StepTimeout))
	r.rebound = nat.Rebind(int64(len(data) / 3))
	for off := 0; off < len(data); off += 16 << 10 {
		if _, err := c.Write(data[off:min(off+16<<10, len(data))]); err != nil {
			r.err = err
			return r
		}
	}
	c.(*net.TCPConn).CloseWrite()
	var reply [32]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: no reply within %v (timeout): %w", ErrTransfer, StepTimeout, err)
		}
		r.err = err
	}
	return r
}

// tcpSink is the TCP server: it hashes what it receives and replies with
// the sha256 at EOF.
type tcpSink struct {
	addr     netip.AddrPort
	ln       net.Listener
	wg       sync.WaitGroup
	accepted chan struct{} // closed at the first connection
	mu       sync.Mutex
	n        int64
	cs       []net.Conn
}

func newTCPSink() (*tcpSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrListen, err)
	}
	s := &tcpSink{addr: ln.Addr().(*net.TCPAddr).AddrPort(), ln: ln, accepted: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.cs = append(s.cs, c)
			if len(s.cs) == 1 {
				close(s.accepted)
			}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				h := sha256.New()
				buf := make([]byte, 32<<10)
				for {
					k, err := c.Read(buf)
					h.Write(buf[:k])
					s.mu.Lock()
					s.n += int64(k)
					s.mu.Unlock()
					if err != nil {
						break
					}
				}
				c.Write(h.Sum(nil))
			}()
		}
	}()
	return s, nil
}

// count is what the server's socket counted (its first connection's
// tcp_info), once it has accepted it: under load the kernel completes the
// handshake and takes data long before the server's goroutine accepts.
func (s *tcpSink) count(ctx context.Context) TCPCount {
	select {
	case <-s.accepted:
	case <-ctx.Done():
		return TCPCount{Err: fmt.Errorf("%w: the server accepted no connection: %w", ErrTransfer, context.Cause(ctx))}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _ := s.cs[0].(*net.TCPConn)
	return tcpCount(c)
}

func (s *tcpSink) received() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *tcpSink) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.cs {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
