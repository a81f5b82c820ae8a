package httpexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// wanted is what an http experiment's capture should hold, counted at the
// source: for each server address (a calculator server, a balancer, a
// backend), how many HTTP exchanges — requests answered — its own request
// counter (Running.Answered) or its clients counted. It is never counted
// from the capture.
type wanted struct {
	source string // who counted, for the check: "the servers' request counters"
	addrs  []netip.AddrPort
	names  map[netip.AddrPort]string
	n      map[netip.AddrPort]int
}

func newWanted(source string) *wanted {
	return &wanted{source: source, names: map[netip.AddrPort]string{}, n: map[netip.AddrPort]int{}}
}

// add counts n more answered requests at addr, which the report calls name.
func (w *wanted) add(name string, addr netip.AddrPort, n int) {
	if _, ok := w.n[addr]; !ok {
		w.addrs = append(w.addrs, addr)
		w.names[addr] = name
	}
	w.n[addr] += n
}

func (w *wanted) total() int {
	t := 0
	for _, n := range w.n {
		t += n
	}
	return t
}

// captured counts, for each address, the exchanges the capture holds whole
// (request and response to its last byte), at most as many as were
// counted there, so that an extra exchange at one address cannot hide a
// missing one at another. short lists the addresses that lack some.
func (w *wanted) captured(pkts []*capture.Packet) (got int, short []string) {
	streams := capture.TCPStreams(pkts)
	for _, a := range w.addrs {
		exs, _ := exchangesIn(streams, a) // a stream cut short still counts what parsed
		n := 0
		for _, ex := range exs {
			if ex.Response != nil {
				n++
			}
		}
		got += min(n, w.n[a])
		if n < w.n[a] {
			short = append(short, fmt.Sprintf("%s (%s) %d of %d", w.names[a], a, n, w.n[a]))
		}
	}
	return got, short
}

// stopComplete stops the capture once it holds every exchange counted at
// the source (or Options.MaxDrain has passed), then records the check
// "capture complete" before anything is read from the packets: a short
// capture fails that check alone and leaves every later check unjudged.
func stopComplete(env *lab.Env, cp *capture.Capture, w *wanted) ([]*capture.Packet, error) {
	want := w.total()
	pkts, err := cp.StopWhen(func(pkts []*capture.Packet) bool {
		if env.Ctx.Err() != nil {
			return true // the run is over: nothing more is coming
		}
		got, _ := w.captured(pkts)
		return got >= want
	})
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if err := env.Ctx.Err(); err != nil {
		return nil, err
	}
	got, short := w.captured(pkts)
	if !env.CaptureComplete(cp, got, want, "HTTP exchanges", w.source) && len(short) > 0 {
		env.Note("the capture lacks exchanges at %s", strings.Join(short, ", "))
	}
	// Whatever the analysis leaves bare gets a comment saying what it is,
	// just before the capture is written.
	env.Cleanup(func() { commentSegments(pkts, w.names) })
	return pkts, nil
}
