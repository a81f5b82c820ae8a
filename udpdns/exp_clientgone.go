package udpdns

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "dns/client-gone",
		Summary: "the client socket closes before its answer arrives: the kernel answers the server with ICMP port unreachable",
		Shows: "The server keeps no connection, so it cannot know the client left: its answer goes out, the write succeeds, " +
			"and only the client's kernel replies — ICMP port unreachable, because nobody is listening on that port any more.",
		Run: runClientGone,
	})
}

func runClientGone(env *lab.Env) error {
	name := "gone." + SynthSuffix
	arrived := make(chan struct{})
	release := make(chan struct{})
	written := make(chan error, 1)
	srv, err := StartServer(ServerConfig{Addr: labServerAddr, Seed: env.Stream("server").Uint64(), Policy: func(q *dns.Msg, _ netip.AddrPort, a *Action) {
		if strings.EqualFold(q.Question[0].Name, name) {
			a.Hold = release
			a.Sent = func(err error) { written <- err }
			close(arrived)
		}
	}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { srv.Close() })
	want, err := startWant()
	if err != nil {
		return err
	}
	cap, err := env.Capture(capture.Options{Keep: keepPorts(srv.Addr().Port())})
	if err != nil {
		return err
	}
	cl, err := NewClient(Config{Server: srv.Addr(), Timeout: 5 * time.Second, Rand: env.Bytes("client")})
	if err != nil {
		return err
	}
	env.Cleanup(func() { cl.Close() })
	local := cl.LocalAddrs()[0]

	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	call, err := cl.Send(env.Ctx, m)
	if err != nil {
		return err
	}
	select {
	case <-arrived:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	cl.Close() // the client leaves with its query unanswered
	_, callErr := call.Wait(env.Ctx)
	close(release)
	var werr error
	select {
	case werr = <-written:
	case <-env.Ctx.Done():
		return env.Ctx.Err()
	}
	srv.Close() // its count is final
	st := cl.Stats()
	sst := srv.Stats()
	server := srv.Addr()
	want.server, want.client = server, local
	want.queries = int(st.Sent - st.SendFailed)
	want.replies, want.repliesBy = int(sst.Written), fmt.Sprintf("the server (%d answers written)", sst.Written)
	// Each answer written to the closed port makes the client's kernel send
	// one ICMP error (loopback is not rate-limited); it may send it a moment
	// after the write returned, so the capture waits for it. The count
	// checked is the kernel's own.
	want.icmpAtLeast = int(sst.Written)
	pkts, err := stopComplete(env, cap, want)
	if err != nil {
		return err
	}

	env.Check("the caller learned its client closed", errors.Is(callErr, ErrClosed), "call error: %v", callErr)
	env.Check("the server's write succeeded: UDP cannot tell it nobody listens", werr == nil, "write error: %v", werr)
	var qID uint16
	sawQuery, sawAnswer, sawICMP, icmpAfterAnswer := false, false, false, false
	lad := env.Ladder(fmt.Sprintf("the client (%s) leaves before its answer, as captured", local), "client", "server")
	for _, p := range pkts {
		if code, src, dst, quoted, ok := icmpUnreachable(p); ok {
			h, _ := ParseHead(quoted)
			if code == 3 && src == server && dst.Port() == local.Port() && h.ID == qID && sawQuery {
				sawICMP = true
				icmpAfterAnswer = sawAnswer
				p.Comment(fmt.Sprintf("ICMP port unreachable from the client's kernel: nobody listens on port %d any more; quotes the answer id=%#04x", dst.Port(), h.ID))
				lad.Send(fmt.Sprintf("ICMP port unreachable (quotes id=%#04x)", h.ID), "(kernel: no socket)", "learns nothing: unconnected")
			}
			continue
		}
		w := dnsPackets([]*capture.Packet{p})
		if len(w) == 0 {
			continue
		}
		d := w[0]
		switch {
		case d.meta.Dst == server && !d.head.Response():
			sawQuery, qID = true, d.head.ID
			p.Comment("query 0 (attempt 1): " + d.question() + " from " + d.meta.Src.String())
			lad.Send(d.question(), "in flight", "holds the answer")
			lad.State("socket closed", "")
		case d.meta.Src == server && d.head.Response() && d.head.ID == qID:
			sawAnswer = true
			p.Comment(fmt.Sprintf("answer to query 0 %s → %s, to a port nobody listens on: the client closed before it came", d.question(), d.answer()))
			lad.Reply(d.question()+" "+d.answer(), "(gone)", "write succeeded")
		}
	}
	commentRest(pkts)
	env.Check("the capture shows query, answer, then ICMP port unreachable", sawQuery && sawAnswer && sawICMP && icmpAfterAnswer,
		"query=%v answer=%v icmp=%v (after the answer: %v), id=%#04x", sawQuery, sawAnswer, sawICMP, icmpAfterAnswer, qID)
	env.Check("counters balance: the abandoned query is lost, nothing in flight", st.Consistent() && st.Cancelled == 1 && st.InFlight == 0, "%s", st)
	env.Metric("icmp_port_unreachable_count", map[bool]float64{true: 1, false: 0}[sawICMP])
	env.Note("the server's socket is unconnected too, so the ICMP error is not reported to it: a stateless server neither knows nor cares that the client left")
	return nil
}
