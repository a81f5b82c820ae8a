package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// Scenario ladders for the features of issue 13's core part: receiver SWS
// avoidance in every segment, throttled ACKs of unsent data, CLOSE in
// SYN-RECEIVED, active OPEN on LISTEN, the restart window, RFC 6582's timer
// rule, keep-alive, the user timeout and the urgent event.

// fillWindow brings an endpoint with a 2000-octet receive buffer to a zero
// window: the peer's 2000 octets are in, unread.
func fillWindow(t *testing.T, h *tcptest.Peer) {
	t.Helper()
	h.Send(PSH|ACK, 301, 101, tcptest.Data(make([]byte, 1000)))
	h.Want(ACK, 101, 1301, tcptest.Win(1000))
	h.Send(PSH|ACK, 1301, 101, tcptest.Data(make([]byte, 1000)))
	h.Want(ACK, 101, 2301, tcptest.Win(0))
}

func readN(t *testing.T, h *tcptest.Peer, n int) {
	t.Helper()
	err := h.Call("RECEIVE", func(e *Endpoint, now time.Duration, out *Output) error {
		got, err := e.Receive(now, make([]byte, n), out)
		if got != n {
			t.Fatalf("read %d octets, want %d", got, n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// MUST-39: after the user reads 9 octets of a full buffer, neither a window
// update nor the ACK of the peer's next window probe offers a 9-octet
// window; the window opens once it can open by min(half the buffer, MSS).
func TestReceiverSWSAvoidance(t *testing.T) {
	for _, tt := range []struct {
		name       string
		disable    bool
		probeWin   uint16 // the window in the ACK of the probe
		updateSent bool   // a window update right after the 9-octet read
	}{
		{"on (default)", false, 0, false},
		{"off", true, 8, true}, // 9 free, the probe octet took one
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.RecvBufferSize, cfg.DisableReceiverSWS = 2000, tt.disable
			h := tcptest.New(t, cfg)
			h.Reach(Established)
			fillWindow(t, h)
			readN(t, h, 9)
			if tt.updateSent {
				h.Want(ACK, 101, 2301, tcptest.Win(9))
			}
			h.WantNone()
			h.Send(PSH|ACK, 2301, 101, tcptest.Text("p")) // the peer's window probe
			h.Want(ACK, 101, 2302, tcptest.Win(tt.probeWin))
			if tt.disable {
				return
			}
			readN(t, h, 991) // 999 free (the probe octet took one): below min(1000, MSS 1000)
			h.WantNone()
			readN(t, h, 1) // 1000 free: the edge may move by the threshold
			h.Want(ACK, 101, 2302, tcptest.Win(1000))
		})
	}
}

// RFC 5961 §5.2 and §7: ACKs of data never sent are answered at the
// challenge-ACK rate, so 50 in draw ChallengeACKLimit out, not 50.
func TestACKsOfUnsentDataAreThrottled(t *testing.T) {
	for _, tt := range []struct {
		name        string
		unthrottled bool
		want        int
	}{
		{"throttled (default)", false, testChallenge},
		{"unthrottled", true, 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.UnthrottledUnsentACKs = tt.unthrottled
			h := tcptest.New(t, cfg)
			h.Reach(Established)
			for range 50 {
				h.Send(ACK, 301, 5000)
			}
			segs := h.Discard()
			if len(segs) != tt.want {
				t.Fatalf("%d ACKs out for 50 ACKs of unsent data, want %d", len(segs), tt.want)
			}
			for _, s := range segs {
				if s.Flags != ACK || s.Seq != 101 || s.Ack != 301 {
					t.Fatalf("reply %v, want ACK seq=101 ack=301", &s)
				}
			}
			h.Advance(testChallengeDur) // the next interval has a fresh budget
			h.Send(ACK, 301, 5000)
			h.Want(ACK, 101, 301)
			h.WantState(Established)
		})
	}
}

// §3.10.4: CLOSE in SYN-RECEIVED with nothing queued sends the FIN at once;
// with data queued, the FIN follows the data once the SYN is acknowledged.
func TestCloseInSynReceived(t *testing.T) {
	t.Run("nothing queued", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(SynReceived)
		h.Close()
		h.Want(FIN|ACK, 101, 301)
		h.WantState(FinWait1)
		h.Send(ACK, 301, 102) // acknowledges SYN and FIN
		h.WantNone()
		h.WantState(FinWait2)
		h.Send(FIN|ACK, 301, 102)
		h.Want(ACK, 102, 302)
		h.WantState(TimeWait)
	})
	t.Run("SYN,ACK lost", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(SynReceived)
		h.Close()
		h.Want(FIN|ACK, 101, 301)
		h.Send(SYN, 300, 0) // the peer's SYN again: our SYN,ACK went missing
		h.Want(SYN|ACK, 100, 301)
		h.Send(ACK, 301, 101) // the SYN only
		h.WantState(FinWait1)
		h.Fire()
		h.Want(FIN|ACK, 101, 301)
		h.Send(ACK, 301, 102)
		h.WantState(FinWait2)
	})
	t.Run("data queued", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(SynReceived)
		h.Write("hello")
		h.Close()
		h.WantNone()
		h.WantState(FinWait1)
		h.Send(ACK, 301, 101)
		h.Want(FIN|PSH|ACK, 101, 301, tcptest.Len(5))
		h.Send(ACK, 301, 107)
		h.WantState(FinWait2)
	})
}

// §3.10.1: an active OPEN on a LISTEN endpoint turns it active.
func TestActiveOpenOnListen(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Listen)
	h.OpenActive()
	h.Want(SYN, 100, 0)
	h.WantState(SynSent)
	h.Send(SYN|ACK, 300, 101)
	h.Want(ACK, 101, 301)
	h.WantState(Established)
	// It is active now: a RST in SYN-SENT would have refused it, not
	// returned it to LISTEN.
	h.Send(RST, 301, 0)
	h.WantState(Closed)
	h.WantErr(ErrConnectionReset)
}

// RFC 5681 §4.1: after more than one RTO without sending, cwnd restarts
// from min(IW, cwnd); 20 queued segments do not leave at once.
func TestRestartWindowAfterIdle(t *testing.T) {
	for _, tt := range []struct {
		name    string
		disable bool
		idle    time.Duration
		want    int // segments sent at once after the idle time
	}{
		{"idle past the RTO", false, 30 * time.Second, 4},
		{"idle within the RTO", false, 100 * time.Millisecond, 8},
		{"off", true, 30 * time.Second, 8},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DisableSlowStartAfterIdle = tt.disable
			h := tcptest.New(t, cfg)
			h.Reach(Established)
			h.Write(strings.Repeat("a", 4*testMSS)) // IW = 4 segments
			if n := len(h.Discard()); n != 4 {
				t.Fatalf("%d segments in the initial window", n)
			}
			for i := range 4 {
				h.Send(ACK, 301, 101+Seq((i+1)*testMSS)) // slow start: cwnd 8000
			}
			if c := h.TCB().Cwnd; c != 8*testMSS {
				t.Fatalf("cwnd %d, want %d", c, 8*testMSS)
			}
			h.Advance(tt.idle)
			h.Write(strings.Repeat("b", 20*testMSS))
			if n := len(h.Discard()); n != tt.want {
				t.Fatalf("%d segments left at once after %v idle, want %d (cwnd %d)", n, tt.idle, tt.want, h.TCB().Cwnd)
			}
		})
	}
}

// RFC 6582 §3.2 step 5: the retransmission timer restarts on the first
// partial ACK of fast recovery only ("Impatient"); Slow-but-Steady restarts
// it on every partial ACK.
func TestPartialACKTimerRule(t *testing.T) {
	for _, tt := range []struct {
		name          string
		slowButSteady bool
	}{
		{"impatient (RFC 6582 as stated)", false},
		{"slow-but-steady", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.InitialWindow, cfg.SlowButSteady = 10, tt.slowButSteady
			h := tcptest.New(t, cfg)
			h.Reach(Established)
			h.Write(strings.Repeat("z", 10*testMSS))
			h.Discard()
			// Segments 1, 3 and 5 are lost: three duplicate ACKs, then
			// two partial ACKs.
			for range 3 {
				h.Send(ACK, 301, 101)
			}
			h.Want(ACK, 101, 301, tcptest.Len(testMSS))
			h.Advance(50 * time.Millisecond)
			h.Send(ACK, 301, 2101) // first partial ACK: restart
			h.Want(ACK, 2101, 301, tcptest.Len(testMSS))
			first, _ := h.Endpoint().TimerDeadline(TimerRetransmit)
			if rto := h.TCB().RTO; first != h.Now()+rto {
				t.Fatalf("after the first partial ACK the timer ends at %v, want now+RTO %v", first, h.Now()+rto)
			}
			h.Advance(50 * time.Millisecond)
			h.Send(ACK, 301, 4101) // second partial ACK
			h.Want(ACK, 4101, 301, tcptest.Len(testMSS))
			second, _ := h.Endpoint().TimerDeadline(TimerRetransmit)
			want := first
			if tt.slowButSteady {
				want = h.Now() + h.TCB().RTO
			}
			if second != want {
				t.Fatalf("after the second partial ACK the timer ends at %v, want %v", second, want)
			}
		})
	}
}

func keepAliveConfig() Config {
	cfg := testConfig()
	cfg.KeepAlive = true
	cfg.KeepAliveIdle = 10 * time.Second
	cfg.KeepAliveInterval = time.Second
	cfg.KeepAliveCount = 3
	return cfg
}

// RFC 1122 §4.2.3.6: an idle connection is probed with <SEQ=SND.UNA-1>;
// an answer keeps it, KeepAliveCount unanswered probes reset it.
func TestKeepAlive(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		h := tcptest.New(t, testConfig())
		h.Reach(Established)
		if _, ok := h.Endpoint().TimerDeadline(TimerKeepAlive); ok {
			t.Fatal("keep-alive timer armed with Config.KeepAlive unset")
		}
		h.Advance(3 * time.Hour)
		h.WantNone()
		h.WantState(Established)
	})
	t.Run("answered", func(t *testing.T) {
		h := tcptest.New(t, keepAliveConfig())
		h.Reach(Established)
		h.Advance(5 * time.Second)
		h.Send(PSH|ACK, 301, 101, tcptest.Text("hi")) // the peer speaks: idle restarts
		h.Want(ACK, 101, 303)
		h.Advance(10*time.Second - time.Millisecond)
		h.WantNone()
		h.Advance(time.Millisecond)
		h.Want(ACK, 100, 303) // probe: SND.UNA-1
		h.Send(ACK, 303, 101) // answered
		h.Advance(time.Second)
		h.WantNone() // the next probe waits for a whole idle time again
		h.Advance(9 * time.Second)
		h.Want(ACK, 100, 303)
		h.WantState(Established)
		if n := h.Endpoint().KeepAliveProbes(); n != 1 {
			t.Fatalf("%d probes outstanding, want 1", n)
		}
	})
	t.Run("peer silent", func(t *testing.T) {
		h := tcptest.New(t, keepAliveConfig())
		h.Reach(Established)
		start := h.Now()
		for i := range 3 {
			h.Fire()
			h.Want(ACK, 100, 301)
			if at := h.Now() - start; at != 10*time.Second+time.Duration(i)*time.Second {
				t.Fatalf("probe %d at %v", i+1, at)
			}
		}
		h.Fire()
		h.Want(RST, 101, 0)
		h.WantState(Closed)
		h.WantErr(ErrTimeout)
		if at := h.Now() - start; at != 13*time.Second {
			t.Fatalf("gave up at %v, want idle+3 intervals = 13s", at)
		}
	})
	t.Run("peer silent, user timeout", func(t *testing.T) {
		cfg := keepAliveConfig()
		cfg.KeepAliveCount, cfg.UserTimeout = 100, 12500*time.Millisecond
		h := tcptest.New(t, cfg)
		h.Reach(Established)
		start := h.Now()
		for range 3 {
			h.Fire()
			h.Want(ACK, 100, 301)
		}
		h.Fire()
		h.Want(RST, 101, 0)
		h.WantErr(ErrTimeout)
		if at := h.Now() - start; at != cfg.UserTimeout {
			t.Fatalf("gave up at %v, want the user timeout %v", at, cfg.UserTimeout)
		}
	})
	t.Run("not while data is outstanding", func(t *testing.T) {
		cfg := keepAliveConfig()
		cfg.MaxRetries = 100
		h := tcptest.New(t, cfg)
		h.Reach(Established)
		h.Write("x")
		h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
		h.Advance(11 * time.Second)
		for _, s := range h.Discard() {
			if len(s.Payload) == 0 {
				t.Fatalf("keep-alive probe %v with data outstanding", &s)
			}
		}
	})
}

// RFC 5482: with a user timeout, unacknowledged data ends the connection
// exactly at the timeout (not after MaxRetries), and a shut window probed
// for that long gives up even though the peer answers every probe; without
// one the probing goes on.
func TestUserTimeout(t *testing.T) {
	t.Run("unacknowledged data", func(t *testing.T) {
		cfg := testConfig()
		cfg.UserTimeout = 5 * time.Second
		h := tcptest.New(t, cfg)
		h.Reach(Established)
		h.Write("x")
		h.Want(PSH|ACK, 101, 301, tcptest.Len(1))
		start := h.Now()
		for h.State() == Established && h.Now()-start < time.Minute {
			h.Fire()
		}
		h.WantState(Closed)
		h.WantErr(ErrTimeout)
		if d := h.Now() - start; d != cfg.UserTimeout {
			t.Fatalf("aborted after %v, want %v", d, cfg.UserTimeout)
		}
		last := h.Events()[len(h.Events())-1]
		if st := findState(h.Events(), Closed); st.Cause != CauseUserTimeout || last.Kind != EventTimeout {
			t.Fatalf("closed on %v, last event %v", st.Cause, last)
		}
	})
	for _, tt := range []struct {
		name   string
		ut     time.Duration
		probes int  // probes answered with a zero window
		alive  bool // still ESTABLISHED after them
	}{
		{"persist without user timeout", 0, 200, true},
		{"persist with user timeout", 90 * time.Second, 200, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.UserTimeout = tt.ut
			h := tcptest.New(t, cfg)
			h.Reach(Established)
			h.Send(ACK, 301, 101, tcptest.Win(0))
			h.Write("abc")
			start := time.Duration(-1)
			n := 0
			for ; n < tt.probes && h.State() == Established; n++ {
				h.Fire()
				if h.State() != Established {
					break
				}
				h.Want(ACK, 101, 301, tcptest.Len(1))
				if start < 0 {
					start = h.Now()
				}
				h.Send(ACK, 301, 101, tcptest.Win(0)) // answered, window still shut
			}
			if tt.alive {
				h.WantState(Established)
				if d := h.Now() - start; d < 20*time.Minute {
					t.Fatalf("%d probes over %v", n, d)
				}
				return
			}
			h.WantState(Closed)
			h.WantErr(ErrTimeout)
			if d := h.Now() - start; d != tt.ut {
				t.Fatalf("persist gave up %v after the first probe, want the user timeout %v", d, tt.ut)
			}
		})
	}
}

func findState(evs []Event, to State) Event {
	for _, ev := range evs {
		if ev.Kind == EventStateChanged && ev.To == to {
			return ev
		}
	}
	return Event{}
}

// RFC 9293 §3.10.7.4 sixth step: urgent data is signalled to the user (an
// EventUrgent with RCV.UP) once per advance of the pointer, and the text
// is delivered in order.
func TestUrgentPointerIsAnEvent(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.Reach(Established)
	urgent := func(seq Seq, text string, up uint16) {
		h.SendSegment(Segment{Flags: PSH | ACK | URG, Seq: seq, Ack: 101, Window: 64000, Urgent: up, Payload: []byte(text)})
	}
	urgent(301, "abc!", 4)
	h.Want(ACK, 101, 305)
	urgent(305, "def", 0) // the same pointer (305): no new signal
	h.Want(ACK, 101, 308)
	urgent(308, "gh!", 3)
	h.Want(ACK, 101, 311)
	var ups []Seq
	for _, ev := range h.Events() {
		if ev.Kind == EventUrgent {
			ups = append(ups, ev.Urgent)
		}
	}
	if len(ups) != 2 || ups[0] != 305 || ups[1] != 311 {
		t.Fatalf("urgent events %v, want [305 311]", ups)
	}
	h.Run(tcptest.WantRead("abc!defgh!", nil))
}
