package tcpstate_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

type rowKey struct {
	from, to State
	cause    Cause
}

// exhaust fires the retransmission timer until the connection gives up.
func exhaust(h *tcptest.Peer) {
	for i := 0; i < 2*testMaxRetry+2 && h.Endpoint().State() != Closed; i++ {
		h.Fire()
	}
	h.Discard()
}

func abort(h *tcptest.Peer) { h.Abort() }

// rowDrivers apply, in state From, the cause of one row of the table.
var rowDrivers = map[rowKey]func(h *tcptest.Peer){
	{Closed, Listen, CausePassiveOpen}: func(h *tcptest.Peer) { h.OpenPassive() },
	{Closed, SynSent, CauseActiveOpen}: func(h *tcptest.Peer) { h.OpenActive() },

	{Listen, SynReceived, CauseRcvSYN}: func(h *tcptest.Peer) { h.Send(SYN, peerISS, 0) },
	{Listen, SynSent, CauseActiveOpen}: func(h *tcptest.Peer) { h.OpenActive() },
	{Listen, Closed, CauseClose}:       func(h *tcptest.Peer) { h.Close() },
	{Listen, Closed, CauseAbort}:       abort,

	{SynSent, SynReceived, CauseRcvSYN}:       func(h *tcptest.Peer) { h.Send(SYN, peerISS, 0) },
	{SynSent, Established, CauseRcvSYNACK}:    func(h *tcptest.Peer) { h.Send(SYN|ACK, peerISS, localISS+1) },
	{SynSent, Closed, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST|ACK, 0, localISS+1) },
	{SynSent, Closed, CauseClose}:             func(h *tcptest.Peer) { h.Close() },
	{SynSent, Closed, CauseAbort}:             abort,
	{SynSent, Closed, CauseRetransmitTimeout}: exhaust,
	{SynSent, Closed, CauseUserTimeout}:       exhaust,

	{SynReceived, Established, CauseRcvACKOfSYN}:  func(h *tcptest.Peer) { h.Send(ACK, 301, 101) },
	{SynReceived, FinWait1, CauseClose}:           func(h *tcptest.Peer) { h.Close() },
	{SynReceived, Listen, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST, 301, 0) },
	{SynReceived, Listen, CauseRcvSYN}:            func(h *tcptest.Peer) { h.Send(SYN, 400, 0) },
	{SynReceived, Closed, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST, 301, 0) },
	{SynReceived, Closed, CauseAbort}:             abort,
	{SynReceived, Closed, CauseRetransmitTimeout}: exhaust,
	{SynReceived, Closed, CauseUserTimeout}:       exhaust,

	{Established, FinWait1, CauseClose}:   func(h *tcptest.Peer) { h.Close() },
	{Established, CloseWait, CauseRcvFIN}: func(h *tcptest.Peer) { h.Send(FIN|ACK, 301, 101) },
	{Established, Closed, CauseRcvRST}:    func(h *tcptest.Peer) { h.Send(RST, 301, 0) },
	{Established, Closed, CauseAbort}:     abort,
	{Established, Closed, CauseRetransmitTimeout}: func(h *tcptest.Peer) {
		h.Write("data")
		exhaust(h)
	},
	{Established, Closed, CauseUserTimeout}: func(h *tcptest.Peer) {
		h.Write("data")
		exhaust(h)
	},
	{Established, Closed, CauseKeepAliveTimeout}: exhaust,

	{FinWait1, FinWait2, CauseRcvACKOfFIN}:     func(h *tcptest.Peer) { h.Send(ACK, 301, 102) },
	{FinWait1, Closing, CauseRcvFIN}:           func(h *tcptest.Peer) { h.Send(FIN|ACK, 301, 101) },
	{FinWait1, TimeWait, CauseRcvFINACK}:       func(h *tcptest.Peer) { h.Send(FIN|ACK, 301, 102) },
	{FinWait1, Closed, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST, 301, 0) },
	{FinWait1, Closed, CauseAbort}:             abort,
	{FinWait1, Closed, CauseRetransmitTimeout}: exhaust,
	{FinWait1, Closed, CauseUserTimeout}:       exhaust,

	{FinWait2, TimeWait, CauseRcvFIN}: func(h *tcptest.Peer) { h.Send(FIN|ACK, 301, 102) },
	{FinWait2, Closed, CauseRcvRST}:   func(h *tcptest.Peer) { h.Send(RST, 301, 0) },
	{FinWait2, Closed, CauseAbort}:    abort,

	{CloseWait, LastAck, CauseClose}: func(h *tcptest.Peer) { h.Close() },
	{CloseWait, Closed, CauseRcvRST}: func(h *tcptest.Peer) { h.Send(RST, 302, 0) },
	{CloseWait, Closed, CauseAbort}:  abort,
	{CloseWait, Closed, CauseRetransmitTimeout}: func(h *tcptest.Peer) {
		h.Write("data")
		exhaust(h)
	},
	{CloseWait, Closed, CauseUserTimeout}: func(h *tcptest.Peer) {
		h.Write("data")
		exhaust(h)
	},
	{CloseWait, Closed, CauseKeepAliveTimeout}: exhaust,

	{Closing, TimeWait, CauseRcvACKOfFIN}:     func(h *tcptest.Peer) { h.Send(ACK, 302, 102) },
	{Closing, Closed, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST, 302, 0) },
	{Closing, Closed, CauseAbort}:             abort,
	{Closing, Closed, CauseRetransmitTimeout}: exhaust,
	{Closing, Closed, CauseUserTimeout}:       exhaust,

	{LastAck, Closed, CauseRcvACKOfFIN}:       func(h *tcptest.Peer) { h.Send(ACK, 302, 102) },
	{LastAck, Closed, CauseRcvRST}:            func(h *tcptest.Peer) { h.Send(RST, 302, 0) },
	{LastAck, Closed, CauseAbort}:             abort,
	{LastAck, Closed, CauseRetransmitTimeout}: exhaust,
	{LastAck, Closed, CauseUserTimeout}:       exhaust,

	{TimeWait, Closed, CauseTimeWaitTimeout}: func(h *tcptest.Peer) { h.Fire() },
	{TimeWait, Closed, CauseRcvRST}:          func(h *tcptest.Peer) { h.Send(RST, 302, 0) },
	{TimeWait, Closed, CauseAbort}:           abort,
}

// rowConfigs change the configuration of a row's endpoint.
var rowConfigs = map[Cause]func(c *Config){
	CauseUserTimeout: func(c *Config) { c.UserTimeout = 3 * time.Second },
	CauseKeepAliveTimeout: func(c *Config) {
		c.KeepAlive, c.KeepAliveIdle, c.KeepAliveInterval, c.KeepAliveCount = true, 10*time.Second, time.Second, 3
	},
}

// rowStarts reach the From state of a row another way than Reach's.
var rowStarts = map[rowKey]func(h *tcptest.Peer){
	// SYN-RECEIVED by simultaneous open: there is no LISTEN to go back to.
	{SynReceived, Closed, CauseRcvRST}: func(h *tcptest.Peer) {
		h.OpenActive()
		h.Send(SYN, peerISS, 0)
		h.WantState(SynReceived)
		h.Discard()
		h.NewEvents()
	},
}

// TestEveryTransitionRowIsTaken reaches From, applies the cause and checks
// that the engine reports exactly that row and lands in To.
func TestEveryTransitionRowIsTaken(t *testing.T) {
	for _, row := range Transitions() {
		t.Run(row.String(), func(t *testing.T) {
			drive, ok := rowDrivers[rowKey{row.From, row.To, row.Cause}]
			if !ok {
				t.Fatal("no test drives this row")
			}
			cfg := testConfig()
			if c, ok := rowConfigs[row.Cause]; ok {
				c(&cfg)
			}
			h := tcptest.New(t, cfg)
			if start, ok := rowStarts[rowKey{row.From, row.To, row.Cause}]; ok {
				start(h)
			} else {
				h.Reach(row.From)
			}
			drive(h)
			h.WantState(row.To)
			found := false
			for _, ev := range h.NewEvents() {
				if ev.Kind == EventStateChanged && ev.From == row.From && ev.To == row.To && ev.Cause == row.Cause {
					found = true
				}
			}
			if !found {
				t.Fatalf("no event %v", row)
			}
		})
	}
	if len(rowDrivers) != len(Transitions()) {
		t.Errorf("%d drivers for %d rows", len(rowDrivers), len(Transitions()))
	}
}

func TestTransitionTableHasNoDuplicateRows(t *testing.T) {
	seen := map[rowKey]bool{}
	for _, r := range Transitions() {
		k := rowKey{r.From, r.To, r.Cause}
		if seen[k] {
			t.Errorf("duplicate row %v", r)
		}
		seen[k] = true
	}
}

func TestEveryStateHasAWayOut(t *testing.T) {
	out := map[State]bool{}
	in := map[State]bool{}
	for _, r := range Transitions() {
		out[r.From], in[r.To] = true, true
	}
	for _, s := range States() {
		if !out[s] || !in[s] {
			t.Errorf("%v: in=%v out=%v", s, in[s], out[s])
		}
	}
}

func TestStateStringsAndPredicates(t *testing.T) {
	tests := []struct {
		s                                    State
		name                                 string
		sync, sendClosed, rcvClosed, accepts bool
	}{
		{Closed, "CLOSED", false, false, false, false},
		{Listen, "LISTEN", false, false, false, false},
		{SynSent, "SYN-SENT", false, false, false, false},
		{SynReceived, "SYN-RECEIVED", false, false, false, false},
		{Established, "ESTABLISHED", true, false, false, true},
		{FinWait1, "FIN-WAIT-1", true, true, false, true},
		{FinWait2, "FIN-WAIT-2", true, true, false, true},
		{CloseWait, "CLOSE-WAIT", true, false, true, false},
		{Closing, "CLOSING", true, true, true, false},
		{LastAck, "LAST-ACK", true, true, true, false},
		{TimeWait, "TIME-WAIT", true, true, true, false},
	}
	for _, tt := range tests {
		if tt.s.String() != tt.name || tt.s.Synchronized() != tt.sync || tt.s.SendClosed() != tt.sendClosed ||
			tt.s.ReceiveClosed() != tt.rcvClosed || tt.s.AcceptsData() != tt.accepts {
			t.Errorf("%v: got %q sync=%v sendClosed=%v rcvClosed=%v accepts=%v", tt.s, tt.s.String(),
				tt.s.Synchronized(), tt.s.SendClosed(), tt.s.ReceiveClosed(), tt.s.AcceptsData())
		}
	}
	if State(42).String() != "State(42)" || Cause(99).String() != "Cause(99)" {
		t.Error("out-of-range String")
	}
}

func TestDiagramDrawsEveryRowOnce(t *testing.T) {
	dot := DiagramDOT()
	if !strings.HasPrefix(dot, "digraph tcp {") || !strings.HasSuffix(dot, "}\n") {
		t.Fatalf("not a digraph:\n%s", dot)
	}
	edges := DiagramEdges()
	drawn := map[string]int{}
	lines := 0
	for _, e := range edges {
		if !strings.Contains(dot, fmt.Sprintf("%q -> %q", e.From, e.To)) {
			t.Errorf("DOT lacks the edge %s -> %s", e.From, e.To)
		}
		for _, l := range e.Labels {
			drawn[e.From+"|"+e.To+"|"+l]++
			lines++
		}
	}
	for _, r := range Transitions() {
		to := r.To.String()
		if r.To == Closed && r.From != Listen && (r.Cause == CauseRcvRST || r.Cause == CauseAbort || r.Cause == CauseRetransmitTimeout ||
			r.Cause == CauseUserTimeout || r.Cause == CauseKeepAliveTimeout) {
			to = TornDown
		}
		label := r.Cause.String()
		if r.Action != "" {
			label += " / " + r.Action
		}
		if drawn[r.From.String()+"|"+to+"|"+label] != 1 {
			t.Errorf("row %v is drawn %d times, want once", r, drawn[r.From.String()+"|"+to+"|"+label])
		}
	}
	if lines != len(Transitions()) {
		t.Errorf("%d labels drawn for %d rows", lines, len(Transitions()))
	}
}
