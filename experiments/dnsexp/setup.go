package dnsexp

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// labServerAddr is where the experiments' DNS server listens: port 53 of
// the lab's own namespace (root there, so no privilege is needed), so that
// Wireshark dissects the captures as DNS with no "Decode As".
const labServerAddr = "127.0.0.1:53"

// serveLab starts the experiment's in-process server on labServerAddr: the
// built-in zone wrapped in mw (the first outermost). It is closed when the
// experiment ends, if the experiment has not closed it before.
// Tests make a capture short through these.
var (
	// testCaptureKeep, when set, also decides which packets a capture
	// keeps: one that drops some leaves the capture short of the counts.
	testCaptureKeep func(*capture.Packet) bool
	// captureDrain bounds how long a capture waits to hold what the
	// sources counted (0: the capture's default).
	captureDrain time.Duration
)

func serveLab(env *lab.Env, mw ...dnsfault.Middleware) (*udpdns.Server, error) {
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: labServerAddr, Handler: dnsfault.Chain(udpdns.BuiltinZone(), mw...)})
	if err != nil {
		return nil, err
	}
	env.Cleanup(func() { srv.Close() })
	return srv, nil
}

// rig is what every dns/* experiment sets up the same way once its server
// runs: the kernel's ICMP count before the traffic, the capture of the
// server's port, and the client — IDs from the run's seed, every verdict
// on a datagram it read noted for the capture's comments.
type rig struct {
	env    *lab.Env
	server netip.AddrPort
	want   wireWant
	cap    *capture.Capture
	cl     *udpdns.Client
	said   verdicts
	first  firstSends
	// client is the client's socket.
	client netip.AddrPort
	// tl times the client's events for the report's pictures.
	tl *timeline
}

// rigConfig is what differs between the experiments' rigs.
type rigConfig struct {
	timeout time.Duration
	retries int
	// trace sees the client's events too.
	trace func(udpdns.Event)
	// clientPort captures the client's port as well as the server's (for
	// datagrams forged from other ports).
	clientPort bool
	// udpSize, cookies and tcpFallback are the client's Config.UDPSize,
	// Cookies and TCPFallback.
	udpSize     uint16
	cookies     bool
	tcpFallback bool
	// tcp: the capture must hold every TCP segment the kernel sends from
	// now on (the server serves TCP too).
	tcp bool
}

// newRig sets up the rig for a server listening at server.
func newRig(env *lab.Env, server netip.AddrPort, c rigConfig) (*rig, error) {
	r := &rig{env: env, server: server, first: newFirstSends(), tl: newTimeline()}
	var err error
	if r.want, err = startWant(); err != nil {
		return nil, err
	}
	if c.tcp {
		r.want.tcp = true
		if r.want.tcpBase, err = kernelTCPSent(); err != nil {
			return nil, fmt.Errorf("reading the kernel's TCP segment count: %w", err)
		}
	}
	var clientPort atomic.Uint32 // known once the client exists
	keepSrv := keepPorts(server.Port())
	keep := func(p *capture.Packet) bool {
		if testCaptureKeep != nil && !testCaptureKeep(p) {
			return false
		}
		if keepSrv(p) {
			return true
		}
		m, ok := p.Decode()
		port := uint16(clientPort.Load())
		return ok && port != 0 && m.Involves(port)
	}
	if r.cap, err = env.Capture(capture.Options{Keep: keep, MaxDrain: captureDrain}); err != nil {
		return nil, err
	}
	r.cl, err = udpdns.NewClient(udpdns.Config{Server: server, Timeout: c.timeout, Retries: c.retries, Rand: env.Bytes("client"),
		UDPSize: c.udpSize, Cookies: c.cookies, TCPFallback: c.tcpFallback,
		Trace: func(e udpdns.Event) {
			r.first.trace(e)
			r.said.trace(e)
			r.tl.trace(e)
			if c.trace != nil {
				c.trace(e)
			}
		}})
	if err != nil {
		return nil, err
	}
	env.Cleanup(func() { r.cl.Close() })
	r.client = r.cl.LocalAddrs()[0]
	if c.clientPort {
		clientPort.Store(uint32(r.client.Port()))
	}
	return r, nil
}

// ask sends one A query for name, its IDs (and any retry's) from the
// name's own stream, so how many retries another query needed changes
// none of its IDs.
func (r *rig) ask(name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	return r.cl.ExchangeRand(r.env.Ctx, m, queryRand(r.env, name))
}

// collect ends the traffic: the client closes, its counters final, and
// the capture stops once it holds what every source counted (the client's
// queries, the replies repliesBy counted, the kernel's ICMP messages; at
// least icmpAtLeast of those), recorded as the first check. Call it once
// the server's count is final.
func (r *rig) collect(replies int, repliesBy string, icmpAtLeast int) ([]*capture.Packet, udpdns.Stats, error) {
	st := r.cl.Stats()
	r.cl.Close()
	r.want.server, r.want.client = r.server, r.client
	r.want.queries = int(st.Sent - st.SendFailed)
	r.want.replies, r.want.repliesBy, r.want.icmpAtLeast = replies, repliesBy, icmpAtLeast
	pkts, err := stopComplete(r.env, r.cap, r.want)
	r.tl.emit(r.env)
	return pkts, st, err
}

// queryRand is the random source of the lab's query called name: the same
// for one seed, whichever other queries run and in what order.
func queryRand(env *lab.Env, name string) io.Reader {
	return env.Bytes("query " + strings.ToLower(name))
}

// firstSends lets queries run concurrently while their first attempts go
// out in a fixed order: see inOrder.
type firstSends chan struct{}

func newFirstSends() firstSends { return make(firstSends, 1) }

// trace is for udpdns.Config.Trace: it notes a first attempt on the wire.
func (f firstSends) trace(e udpdns.Event) {
	if e.Kind == udpdns.EventSent && e.Attempt == 0 {
		select {
		case f <- struct{}{}:
		default:
		}
	}
}

// inOrder runs query(i) for i in [0, n), each in a goroutine of its own so
// that they are in flight together, but starts query i+1 only once query
// i's first attempt is on the wire (or query i returned without sending):
// the capture shows the queries in index order, whatever the scheduler
// does. It returns when every query has returned.
func (f firstSends) inOrder(ctx context.Context, n int, query func(i int)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			query(i)
		}()
		select {
		case <-f:
		case <-done: // returned: its first send, if any, was traced before
			select {
			case <-f:
			default:
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// synthName is prefix<i>.synth.lab.
func synthName(prefix string, i int) string {
	return fmt.Sprintf("%s%d.%s", prefix, i, udpdns.SynthSuffix)
}

// askOne asks name and judges the answer: its own, A = SynthA(name), for
// the QNAME asked.
func (r *rig) askOne(name string) outcome {
	start := time.Now()
	m, err := r.ask(name)
	if err != nil {
		return outcome{name: name, err: err}
	}
	a := answerA(m)
	return outcome{name: name, ok: a == udpdns.SynthA(name) && len(m.Question) == 1 && m.Question[0].Name == name,
		got: a.String(), rtt: float64(time.Since(start).Microseconds()) / 1000}
}

// askAll asks every name, all in flight together, their first attempts in
// order (firstSends.inOrder).
func (r *rig) askAll(names []string) ([]outcome, error) {
	outs := make([]outcome, len(names))
	err := r.first.inOrder(r.env.Ctx, len(names), func(i int) { outs[i] = r.askOne(names[i]) })
	return outs, err
}
