package dnsexp

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// goneName is dns/client-gone's one query.
var goneName = "gone." + udpdns.SynthSuffix

func runClientGone(env *lab.Env) error {
	// Set up: the zone behind a hold on the one query, reporting its
	// write; the rig.
	arrived, release, written := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	srv, err := serveLab(env, dnsfault.Act(func(_ dns.ResponseWriter, q *dns.Msg) dnsfault.Action {
		if !strings.EqualFold(q.Question[0].Name, goneName) {
			return dnsfault.Action{}
		}
		close(arrived)
		return dnsfault.Action{Hold: release, Sent: func(err error) { written <- err }}
	}))
	if err != nil {
		return err
	}
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	// Drive: the query reaches the server, the client leaves, and only
	// then the answer goes out.
	m := new(dns.Msg)
	m.SetQuestion(goneName, dns.TypeA)
	call, err := r.cl.Send(env.Ctx, m)
	if err != nil {
		return err
	}
	if err := waitFor(env, arrived); err != nil {
		return err
	}
	r.cl.Close() // the client leaves with its query unanswered
	_, callErr := call.Wait(env.Ctx)
	close(release)
	var werr error
	select {
	case werr = <-written:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	// Collect: each answer written to the closed port makes the client's
	// kernel send one ICMP error (loopback is not rate-limited), perhaps a
	// moment after the write returned, so the capture waits for it; the
	// count checked is the kernel's own.
	srv.Close()
	sst := srv.Stats()
	pkts, st, err := r.collect(int(sst.Written), fmt.Sprintf("the server (%d answers written)", sst.Written), int(sst.Written))
	if err != nil {
		return err
	}
	env.Check("the caller learned its client closed", errors.Is(callErr, udpdns.ErrClosed), "call error: %v", callErr)
	env.Check("the server's write succeeded: UDP cannot tell it nobody listens", werr == nil, "write error: %s", lab.ErrText(werr))
	w := readClientGone(pkts, r.server, r.client)
	commentRest(pkts)
	lad := capturedLadder(env, fmt.Sprintf("the client (%s) leaves before its answer, as captured", r.client), "client", "server")
	lad.Rows = w.ladder
	env.Check("the capture shows query, answer, then ICMP port unreachable", w.ok(),
		"query=%v answer=%v icmp=%v (after the answer: %v), id=%#04x", w.query, w.answer, w.icmp, w.icmpAfterAnswer, w.id)
	env.Check("counters balance: the abandoned query is lost, nothing in flight", st.Consistent() && st.Cancelled == 1 && st.InFlight == 0, "%s", st)
	env.Metric("icmp_port_unreachable_count", map[bool]float64{true: 1, false: 0}[w.icmp])
	env.Note("the server's socket is unconnected too, so the ICMP error is not reported to it: a stateless server neither knows nor cares that the client left")
	return nil
}

// waitFor waits for ch to close, or the run to end.
func waitFor(env *lab.Env, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
}

// goneWire is what the capture of dns/client-gone shows.
type goneWire struct {
	id                                   uint16 // the query's ID
	query, answer, icmp, icmpAfterAnswer bool
	ladder                               []lab.Rung
}

// ok: query, answer, then the ICMP error quoting the answer.
func (w goneWire) ok() bool { return w.query && w.answer && w.icmp && w.icmpAfterAnswer }

// readClientGone finds the query, its answer to the closed port and the
// kernel's ICMP error quoting that answer; comments and draws them.
func readClientGone(pkts []*capture.Packet, server, client netip.AddrPort) goneWire {
	var w goneWire
	var lad lab.Ladder
	for _, p := range pkts {
		if u, ok := icmpUnreachable(p); ok {
			if u.code == portUnreachable && u.src == server && u.dst.Port() == client.Port() && u.quoted.ID == w.id && w.query {
				w.icmp, w.icmpAfterAnswer = true, w.answer
				p.Comment(annotate.Append(fmt.Sprintf("ICMP port unreachable from the client's kernel: nobody listens on port %d any more; quotes the answer id=%#04x", u.dst.Port(), u.quoted.ID),
					dnsBlock("kernel", "icmp", u.quoted.ID)))
				lad.Send(fmt.Sprintf("ICMP port unreachable (quotes id=%#04x)", u.quoted.ID), "(kernel: no socket)", "learns nothing: unconnected")
			}
			continue
		}
		d, ok := dnsPacket(p)
		switch {
		case !ok:
		case d.meta.Dst == server && !d.head.Response():
			w.query, w.id = true, d.head.ID
			p.Comment(annotate.Append("query 0 (attempt 1): "+d.question()+" from "+d.meta.Src.String(), queryBlock(d, 0, 1)))
			lad.Send(d.question(), "in flight", "holds the answer")
			lad.When(d.p.Time)
			lad.State("socket closed", "")
		case d.meta.Src == server && d.head.Response() && d.head.ID == w.id:
			w.answer = true
			p.Comment(annotate.Append(fmt.Sprintf("answer to query 0 %s → %s, to a port nobody listens on: the client closed before it came", d.question(), d.answer()),
				dnsBlock("server", "answer", d.head.ID).Uint(annotate.Query, 0).Str(annotate.Verdict, "not read").Str(annotate.Reason, "client closed")))
			lad.Reply(d.question()+" "+d.answer(), "(gone)", "write succeeded")
			lad.When(d.p.Time)
		}
	}
	w.ladder = lad.Rows
	return w
}
