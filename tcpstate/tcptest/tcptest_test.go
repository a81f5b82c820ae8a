package tcptest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// recordT is a tcptest.TB that keeps what a failing script says.
type recordT struct{ msgs []string }

func (r *recordT) Helper() {}
func (r *recordT) Fatalf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

const (
	ack = tcpstate.ACK
	fin = tcpstate.FIN | tcpstate.ACK
	rst = tcpstate.RST
)

// A broken expectation says what was wanted, what came, and the ladder so
// far.
func TestFailurePrintsTheExpectationAndTheLadder(t *testing.T) {
	established := func(p *tcptest.Peer) { p.Reach(tcpstate.Established) }
	tests := []struct {
		name   string
		script func(p *tcptest.Peer)
		want   []string
	}{
		{"a wrong field", func(p *tcptest.Peer) {
			established(p)
			p.Send(fin, 301, 101)
			p.Want(ack, 101, 303)
		}, []string{"want ACK seq=101 ack=303 len=0\n got  ACK seq=101 ack=302 win=65535 len=0 (ack)",
			"ladder so far:", "ESTABLISHED → CLOSE-WAIT (rcv FIN)    <--  FIN|ACK seq=301 ack=101 win=64000 len=0",
			"CLOSE-WAIT                            -->  ACK seq=101 ack=302"}},
		{"no segment", func(p *tcptest.Peer) {
			established(p)
			p.Want(ack, 101, 301, tcptest.Text("x"))
		}, []string{`want ACK seq=101 ack=301 len=1 text="x"` + "\n got  no segment (the endpoint is in ESTABLISHED)"}},
		{"a segment where none is wanted", func(p *tcptest.Peer) {
			established(p)
			p.Send(rst, 400, 0)
			p.WantNone()
		}, []string{"want no segment\n got  1:\n      ACK seq=101 ack=301", "<--  RST seq=400"}},
		{"a window that differs in an exact segment", func(p *tcptest.Peer) {
			established(p)
			p.Send(rst, 400, 0)
			p.WantExact(tcpstate.Segment{Flags: ack, Seq: 101, Ack: 301, Window: 1000})
		}, []string{"want exactly ACK seq=101 ack=301 win=1000 len=0\n got          ACK seq=101 ack=301 win=65535 len=0 (window)"}},
		{"a state", func(p *tcptest.Peer) {
			established(p)
			p.WantState(tcpstate.CloseWait)
		}, []string{"want state CLOSE-WAIT\n got  ESTABLISHED"}},
		{"an error", func(p *tcptest.Peer) {
			established(p)
			p.Send(rst, 301, 0)
			p.WantErr(nil)
		}, []string{"want the connection's error <nil>\n got  tcpstate: connection reset", "ESTABLISHED → CLOSED (rcv RST)"}},
		{"no timer to fire", func(p *tcptest.Peer) {
			p.Fire()
		}, []string{"want a timer armed\n got  none (the endpoint is in CLOSED)"}},
		{"a user call that fails", func(p *tcptest.Peer) {
			p.Close()
		}, []string{"user CLOSE: tcpstate: connection does not exist (state CLOSED)", "[user CLOSE: tcpstate: connection does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recordT{}
			tt.script(tcptest.New(r, tcpstate.Config{}))
			if len(r.msgs) == 0 {
				t.Fatal("the script did not fail")
			}
			for _, w := range tt.want {
				if !strings.Contains(r.msgs[0], w) {
					t.Errorf("the failure lacks %q:\n%s", w, r.msgs[0])
				}
			}
		})
	}
}

// Time moves only by Advance and Fire, timers fire when they fall due, and
// the ladder shows when.
func TestTimersFireOnTheSimulatedClock(t *testing.T) {
	p := tcptest.New(t, tcpstate.Config{InitialRTO: time.Second, MinRTO: time.Second, MSL: time.Second})
	p.OpenActive()
	p.Want(tcpstate.SYN, 100, 0)
	p.Advance(999 * time.Millisecond)
	p.WantNone()
	p.Advance(time.Millisecond)
	p.Want(tcpstate.SYN, 100, 0) // the retransmission, after the 1 s RTO
	p.Fire()                     // then after 2 s
	p.Want(tcpstate.SYN, 100, 0)
	if got := p.Now() - time.Second; got != 3*time.Second {
		t.Errorf("the clock moved %v, want 3s", got)
	}
	var fired []string
	for _, line := range strings.Split(p.Ladder(), "\n") {
		if strings.Contains(line, "[timer retransmit fires]") {
			fired = append(fired, strings.Fields(line)[0])
		}
	}
	if strings.Join(fired, " ") != "+1.000s +3.000s" {
		t.Errorf("the retransmission timer fired at %v, want +1.000s +3.000s:\n%s", fired, p.Ladder())
	}
}

// Reach takes an endpoint to each of the 11 states, with the endpoint's
// own ISS when Config.ISS sets one.
func TestReachEveryState(t *testing.T) {
	for _, s := range tcpstate.States() {
		t.Run(s.String(), func(t *testing.T) {
			p := tcptest.New(t, tcpstate.Config{ISS: func() tcpstate.Seq { return 0xfffffff0 }})
			p.Reach(s)
			if tc := p.TCB(); s != tcpstate.Closed && s != tcpstate.Listen && tc.ISS != 0xfffffff0 {
				t.Errorf("ISS %d", tc.ISS)
			}
		})
	}
}

// Segment options reach the endpoint, and Want checks the ones it names.
func TestOptionsAndPorts(t *testing.T) {
	p := tcptest.New(t, tcpstate.Config{})
	p.OpenPassive()
	p.Send(tcpstate.SYN, 300, 0, tcptest.MSS(500), tcptest.WScale(2), tcptest.Win(1000))
	p.Want(tcpstate.SYN|ack, 100, 301, tcptest.MSS(1460), tcptest.WScale(3))
	p.Send(ack, 301, 101, tcptest.Win(1000))
	if tc := p.TCB(); tc.SndMSS != 500 || tc.SndWnd != 4000 {
		t.Errorf("SND.MSS %d SND.WND %d, want 500 and 4000", tc.SndMSS, tc.SndWnd)
	}
	p.Send(rst, 301, 0, tcptest.Ports(tcptest.PeerPort+1, tcptest.LocalPort)) // another connection's
	p.WantState(tcpstate.Established)
	p.Send(ack|tcpstate.PSH, 301, 101, tcptest.Len(10))
	p.Want(ack, 101, 311)
	p.Run(tcptest.WantRead(string(make([]byte, 10)), nil), tcptest.Write("hi"),
		tcptest.Want(ack|tcpstate.PSH, 101, 311, tcptest.Text("hi")))
}
