package tcpexp

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/nagle-delayed-ack: the classic write-write-read stall. A client
// writes a small header, then a small body, then reads the response; the
// server answers once it holds the whole request. With Nagle on at the
// client the body waits for the ACK of the header, and the server, with
// nothing to send yet, delays that ACK: every round waits for the
// delayed-ACK timer. Four connections show it both ways — the lab's Nagle
// against the kernel's delayed ACK, the kernel's Nagle against the lab's —
// and TCP_NODELAY (the kernel socket's, the lab's SetNoDelay) removing it.

const (
	nagleRoundCount = 12 // rounds per connection
	nagleHeader     = 12 // octets of each request's header write
	nagleBody       = 8  // and of its body write
	nagleResp       = 16 // octets of each response

	// nagleDelayedACK and nagleQuickACKs are the lab's delayed-ACK timer
	// and quick-ACK count: tcpstate's defaults (Linux's TCP_DELACK_MIN and
	// TCP_MAX_QUICKACKS), set by name so the checks can use them.
	nagleDelayedACK = 40 * time.Millisecond
	nagleQuickACKs  = 16
	// nagleQuickRounds are the rounds of the lab's quick-ACK mode: two data
	// segments a round with Nagle on.
	nagleQuickRounds = nagleQuickACKs / 2
	// kernelDelACKFloor is below any delay the kernel's delayed-ACK timer
	// gives (TCP_DELACK_MIN, 40 ms, less a tick of the coarsest clock) and
	// far above the time a loopback ACK takes otherwise.
	kernelDelACKFloor = 30 * time.Millisecond
	// kernelProbeFloor is TCP_RTO_MIN (200 ms), the part of a Linux
	// sender's tail-loss probe timer with one segment unacknowledged
	// (2·SRTT + TCP_RTO_MIN, tcp_schedule_loss_probe) that does not depend
	// on SRTT, which the lab does not see here: a body sent before the ACK
	// sooner than this is Nagle failing.
	kernelProbeFloor = 200 * time.Millisecond
)

// nagleCase is one connection of the experiment.
type nagleCase struct {
	label     string
	labClient bool // the lab writes the requests (else the kernel does)
	noDelay   bool // the client turned Nagle off
	c         *rawtcp.Conn
	rounds    []nagleRound
	wall      []time.Duration // each round as the client application timed it
	err       error
}

// nagleExp is tcp/nagle-delayed-ack's run.
type nagleExp struct {
	*labRun
	cases []*nagleCase
}

func runNagleDelayedACK(env *lab.Env) error {
	cfg := labConfig(env)
	cfg.DelayedACK, cfg.QuickACKs = nagleDelayedACK, nagleQuickACKs // the defaults, named for the checks
	r, kp, err := newKernelRun(env, cfg, 0)
	if err != nil {
		return err
	}
	x := &nagleExp{labRun: r, cases: []*nagleCase{
		{label: "lab Nagle, kernel delayed ACK", labClient: true},
		{label: "lab NoDelay, kernel delayed ACK", labClient: true, noDelay: true},
		{label: "kernel Nagle, lab delayed ACK"},
		{label: "kernel TCP_NODELAY, lab delayed ACK", noDelay: true},
	}}
	for _, nc := range x.cases {
		if nc.labClient {
			err = x.labClient(kp, nc)
		} else {
			err = x.kernelClient(nc)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", nc.label, err)
		}
	}
	r.recNotes = x.notes
	r.stop()
	x.check()
	x.report()
	return nil
}

// request and response are a round's payloads: round i's header, body
// and response, each its own recognisable text.
func nagleRequest(i int) (header, body []byte) {
	return fmt.Appendf(nil, "REQ %02d HDR\r\n", i)[:nagleHeader], fmt.Appendf(nil, "BODY %02d\n", i)[:nagleBody]
}

func nagleResponse(i int) []byte { return fmt.Appendf(nil, "RESP %02d OK.....\n", i)[:nagleResp] }

// labClient: the lab connects to the kernel's listener and writes the
// requests; the kernel's socket answers each once it holds all of it.
func (x *nagleExp) labClient(kp *kernelPeer, nc *nagleCase) error {
	ctx := x.env.Ctx
	c, k, err := x.connectKernel(ctx, kp, nc.label, nil, 30*time.Second)
	if err != nil {
		return err
	}
	nc.c = c
	if err := c.SetNoDelay(nc.noDelay); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- serveRequests(k, nagleRoundCount) }()
	nc.wall, err = runRequests(ctx, c, nagleRoundCount)
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	if _, err := io.ReadAll(k); err != nil {
		return fmt.Errorf("kernel read to EOF: %w", err)
	}
	_ = k.Close()
	return c.WaitState(ctx, tcpstate.Closed)
}

// kernelClient: a kernel socket connects to a lab listener and writes the
// requests, Nagle on (SetNoDelay(false): Go turns it off by default) or
// off; the lab's connection answers.
func (x *nagleExp) kernelClient(nc *nagleCase) error {
	ctx := x.env.Ctx
	l, err := x.st.Listen(0, nil)
	if err != nil {
		return err
	}
	x.env.Cleanup(func() { l.Close() })
	dialed := make(chan net.Conn, 1)
	go func() {
		d := net.Dialer{Timeout: 5 * time.Second}
		k, err := d.DialContext(ctx, "tcp4", l.Addr().String())
		if err != nil {
			close(dialed)
			return
		}
		dialed <- k
	}()
	c, err := l.AcceptConn(ctx)
	x.track(c, nc.label)
	if err != nil {
		return err
	}
	nc.c = c
	k, ok := <-dialed
	if !ok {
		return io.ErrUnexpectedEOF
	}
	x.env.Cleanup(func() { k.Close() })
	_ = k.SetDeadline(deadline(ctx, 30*time.Second))
	if err := k.(*net.TCPConn).SetNoDelay(nc.noDelay); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- serveRequests(c, nagleRoundCount) }()
	nc.wall, err = runRequests(ctx, k, nagleRoundCount)
	if serr := <-served; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	_ = k.Close() // the kernel closes first; the lab's side follows
	if _, err := io.ReadAll(c); err != nil {
		return fmt.Errorf("lab read to EOF: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	return c.WaitState(ctx, tcpstate.Closed)
}

// runRequests is the client: per round a header write, a body write, and
// a read of the whole response, timed on the wall clock.
func runRequests(ctx context.Context, c net.Conn, rounds int) ([]time.Duration, error) {
	wall := make([]time.Duration, 0, rounds)
	resp := make([]byte, nagleResp)
	for i := range rounds {
		if err := ctx.Err(); err != nil {
			return wall, err
		}
		h, b := nagleRequest(i)
		t0 := time.Now()
		if _, err := c.Write(h); err != nil {
			return wall, fmt.Errorf("round %d header: %w", i+1, err)
		}
		if _, err := c.Write(b); err != nil {
			return wall, fmt.Errorf("round %d body: %w", i+1, err)
		}
		if _, err := io.ReadFull(c, resp); err != nil {
			return wall, fmt.Errorf("round %d response: %w", i+1, err)
		}
		wall = append(wall, time.Since(t0))
		if want := nagleResponse(i); string(resp) != string(want) {
			return wall, fmt.Errorf("round %d: response %q, want %q", i+1, resp, want)
		}
	}
	return wall, nil
}

// serveRequests is the server: it reads each whole request (header and
// body), checks it, and only then answers.
func serveRequests(c net.Conn, rounds int) error {
	req := make([]byte, nagleHeader+nagleBody)
	for i := range rounds {
		if _, err := io.ReadFull(c, req); err != nil {
			return fmt.Errorf("server round %d: %w", i+1, err)
		}
		h, b := nagleRequest(i)
		if string(req) != string(h)+string(b) {
			return fmt.Errorf("server round %d: request %q, want %q", i+1, req, string(h)+string(b))
		}
		if _, err := c.Write(nagleResponse(i)); err != nil {
			return fmt.Errorf("server round %d: %w", i+1, err)
		}
	}
	return nil
}

// notes reads every case's rounds from the driver's records and returns
// the comments for their segments (labRun.recNotes).
func (x *nagleExp) notes(recs []rawtcp.Record) map[int][]string {
	out := map[int][]string{}
	x.rungNotes = map[int]string{}
	for _, nc := range x.cases {
		t := nc.c.TCB()
		start, client, server := t.ISS+1, "lab", "kernel" // the lab's first data octet
		if !nc.labClient {
			start, client, server = t.IRS+1, "kernel", "lab" // the kernel's
		}
		nc.rounds = nagleRounds(recs, nc.c.ID(), nc.labClient, start, nagleRoundCount, nagleHeader, nagleBody)
		for i := range nc.rounds {
			x.wire(&nc.rounds[i])
		}
		for k, v := range roundNotes(nc.rounds, client, server, !nc.noDelay) {
			out[k] = append(out[k], v...)
		}
		maps.Copy(x.rungNotes, rungNotes(nc.rounds, !nc.noDelay))
	}
	return out
}

// wire sets rd's header-to-body gap on the wire, when the capture holds
// both (recPkt is set before the comments are made).
func (x *nagleExp) wire(rd *nagleRound) {
	hp, ok1 := x.recPkt[rd.hdrRec]
	bp, ok2 := x.recPkt[rd.bodyRec]
	if rd.found && ok1 && ok2 {
		rd.wireGap, rd.wired = x.pkts[bp].Time.Sub(x.pkts[hp].Time), true
	}
}
