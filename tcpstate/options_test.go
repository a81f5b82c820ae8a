package tcpstate_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/statelab/statelab/tcpstate"

	"github.com/statelab/statelab/tcpstate/tcptest"
)

// SACK and timestamps, as ladders against the scripted peer.

func TestSACKAndTimestampsNegotiation(t *testing.T) {
	cases := []struct {
		name           string
		peerSACK       bool
		peerTS         bool
		disableSACK    bool
		disableTS      bool
		wantSACK       bool
		wantTS         bool
		wantSYNACKSack bool
	}{
		{name: "the peer offers both: both on", peerSACK: true, peerTS: true, wantSACK: true, wantTS: true, wantSYNACKSack: true},
		{name: "the peer offers SACK only", peerSACK: true, wantSACK: true, wantSYNACKSack: true},
		{name: "the peer offers timestamps only", peerTS: true, wantTS: true},
		{name: "the peer offers neither", wantSACK: false},
		{name: "SACK disabled here", peerSACK: true, peerTS: true, disableSACK: true, wantTS: true},
		{name: "timestamps disabled here", peerSACK: true, peerTS: true, disableTS: true, wantSACK: true, wantSYNACKSack: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DisableSACK, cfg.DisableTimestamps = c.disableSACK, c.disableTS
			h := tcptest.New(t, cfg)
			h.OpenPassive()
			syn := Segment{Flags: SYN, Seq: peerISS, Window: 64000, Options: Options{MSS: testMSS, SACKPermitted: c.peerSACK}}
			if c.peerTS {
				syn.Options.HasTimestamps, syn.Options.TSVal = true, 777
			}
			h.SendSegment(syn)
			s := h.Want(SYN|ACK, localISS, peerISS+1)
			if s.Options.SACKPermitted != c.wantSYNACKSack || s.Options.HasTimestamps != c.wantTS {
				t.Fatalf("SYN,ACK sackok=%v ts=%v, want %v %v", s.Options.SACKPermitted, s.Options.HasTimestamps, c.wantSYNACKSack, c.wantTS)
			}
			if c.wantTS && (s.Options.TSEcr != 777 || s.Options.TSVal != 1000) {
				t.Fatalf("SYN,ACK ts=%d/%d, want 1000/777 (TSval our clock, TSecr the SYN's TSval)", s.Options.TSVal, s.Options.TSEcr)
			}
			if tc := h.TCB(); tc.SACKOK != c.wantSACK || tc.TSOK != c.wantTS {
				t.Fatalf("TCB sack=%v ts=%v, want %v %v", tc.SACKOK, tc.TSOK, c.wantSACK, c.wantTS)
			}
		})
	}
}

func TestActiveOpenOffersSACKAndTimestamps(t *testing.T) {
	h := tcptest.New(t, testConfig())
	h.OpenActive()
	h.Want(SYN, localISS, 0, tcptest.SACKOK(), tcptest.TS(1000, 0))
	// A SYN,ACK without the options turns both off: no TS on our ACK.
	h.Send(SYN|ACK, peerISS, localISS+1, tcptest.MSS(testMSS))
	s := h.Want(ACK, localISS+1, peerISS+1)
	if s.Options.HasTimestamps || s.Options.NumSACK != 0 {
		t.Fatalf("ACK carries options %+v after a SYN,ACK without them", s.Options)
	}
}

// TestSACKBlocksMostRecentFirst: out-of-order segments are reported in
// SACK blocks, the block holding the latest arrival first (RFC 2018 §4),
// at most 3 beside timestamps; filled holes drop out.
func TestSACKBlocksMostRecentFirst(t *testing.T) {
	h := tcptest.New(t, testConfig()).Negotiate()
	h.Reach(Established)
	h.Send(ACK, 401, 101, tcptest.Len(100)) // 301..400 missing
	h.Want(ACK, 101, 301, tcptest.SACK(401, 501))
	h.Send(ACK, 601, 101, tcptest.Len(100))
	h.Want(ACK, 101, 301, tcptest.SACK(601, 701, 401, 501))
	h.Send(ACK, 801, 101, tcptest.Len(100))
	h.Want(ACK, 101, 301, tcptest.SACK(801, 901, 601, 701, 401, 501))
	h.Send(ACK, 1001, 101, tcptest.Len(100)) // a fourth block: only 3 fit beside timestamps
	h.Want(ACK, 101, 301, tcptest.SACK(1001, 1101, 801, 901, 601, 701))
	h.Send(ACK, 501, 101, tcptest.Len(100)) // joins 401..501 and 601..701
	h.Want(ACK, 101, 301, tcptest.SACK(401, 701, 1001, 1101, 801, 901))
	h.Send(ACK, 301, 101, tcptest.Len(100)) // fills the first hole
	h.Want(ACK, 101, 701, tcptest.SACK(1001, 1101, 801, 901))
	h.Send(ACK, 701, 101, tcptest.Len(100)) // reaches 801..901
	h.Want(ACK, 101, 901, tcptest.SACK(1001, 1101))
	h.Send(ACK, 901, 101, tcptest.Len(100)) // all in order: no SACK option
	h.Want(ACK, 101, 1101, tcptest.SACK())
}

// TestSACKFourBlocksWithoutTimestamps: without timestamps the option space
// holds four blocks.
func TestSACKFourBlocksWithoutTimestamps(t *testing.T) {
	cfg := testConfig()
	cfg.DisableTimestamps = true
	h := tcptest.New(t, cfg).Negotiate()
	h.Reach(Established)
	for i := range 5 {
		h.Send(ACK, 401+Seq(200*i), 101, tcptest.Len(100))
		h.Discard()
	}
	h.Send(ACK, 1401, 101, tcptest.Len(100))
	h.Want(ACK, 101, 301, tcptest.SACK(1401, 1501, 1201, 1301, 1001, 1101, 801, 901))
}

// TestSACKRecoveryResendsOnlyTheHoles: segments 1 and 4 of 10 are lost.
// The SACK blocks mark 1 lost at the third duplicate ACK (RFC 6675), and 4
// once more than two segments are SACKed above it; each hole is resent
// once, pipe lets new data out as SACKs arrive, and the cumulative ACK of
// RecoveryPoint ends recovery.
func TestSACKRecoveryResendsOnlyTheHoles(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 10
	cfg.DisableTimestamps = true
	h := tcptest.New(t, cfg).Negotiate()
	h.Reach(Established)
	h.Write(strings.Repeat("s", 20*testMSS))
	for i := range 10 {
		h.Want(ACK, 101+Seq(i*testMSS), 301, tcptest.Len(testMSS))
	}
	h.Send(ACK, 301, 101, tcptest.SACK(1101, 2101))
	h.Send(ACK, 301, 101, tcptest.SACK(1101, 3101))
	h.WantNone()
	h.Send(ACK, 301, 101, tcptest.SACK(4101, 5101, 1101, 3101)) // third duplicate
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	tc := h.TCB()
	if !tc.InSACKRecovery || tc.Ssthresh != 5*testMSS || tc.Cwnd != 5*testMSS || tc.SACKed != 3*testMSS {
		t.Fatalf("on entering recovery: %v", &tc)
	}
	h.Send(ACK, 301, 101, tcptest.SACK(4101, 6101, 1101, 3101)) // pipe 6000 > cwnd: nothing
	h.WantNone()
	h.Send(ACK, 301, 101, tcptest.SACK(4101, 7101, 1101, 3101)) // 3101 is lost now
	h.Want(ACK, 3101, 301, tcptest.Len(testMSS))
	h.WantNone()
	h.Send(ACK, 301, 101, tcptest.SACK(4101, 8101, 1101, 3101)) // pipe 4000: new data
	h.Want(ACK, 10101, 301, tcptest.Len(testMSS))
	h.WantNone()
	h.Send(ACK, 301, 3101, tcptest.SACK(4101, 8101)) // the first hole's resend arrived
	h.Want(ACK, 11101, 301, tcptest.Len(testMSS))
	h.WantNone()
	h.Send(ACK, 301, 10101) // everything sent before recovery: done
	if tc := h.TCB(); tc.InSACKRecovery || tc.SACKed != 0 {
		t.Fatalf("after RecoveryPoint was acknowledged: %v", &tc)
	}
}

// TestSACKAfterTimeout: two segments of four are lost, too few duplicate
// ACKs follow for fast retransmit, and the retransmission timer fires.
// With SACK the go-back-N skips what the peer SACKed (2000 octets
// resent); NewReno resends the SACKed-in-vain third segment too (3000).
func TestSACKAfterTimeout(t *testing.T) {
	for _, c := range []struct {
		name      string
		sack      bool
		resentAt  []Seq
		wantBytes int
	}{
		{"SACK skips SACKed data", true, []Seq{101, 2101}, 2000},
		{"NewReno goes back N", false, []Seq{101, 2101, 3101}, 3000},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DisableTimestamps, cfg.DisableSACK = true, !c.sack
			h := tcptest.New(t, cfg).Negotiate()
			h.Reach(Established)
			h.Write(strings.Repeat("r", 4*testMSS))
			for i := range 4 {
				h.Want(lastPSH(i == 3), 101+Seq(i*testMSS), 301, tcptest.Len(testMSS))
			}
			// Segments 1 and 3 are lost: two duplicate ACKs.
			h.Send(ACK, 301, 101, tcptest.SACK(1101, 2101))
			h.Send(ACK, 301, 101, tcptest.SACK(3101, 4101, 1101, 2101))
			h.WantNone()
			h.Fire()
			resent := 0
			h.Want(ACK, 101, 301, tcptest.Len(testMSS))
			resent += testMSS
			h.Send(ACK, 301, 2101, tcptest.SACK(3101, 4101))
			for _, seq := range c.resentAt[1:] {
				h.Want(lastPSH(seq == 3101), seq, 301, tcptest.Len(testMSS))
				resent += testMSS
			}
			h.WantNone()
			h.Send(ACK, 301, 4101)
			if resent != c.wantBytes || h.Endpoint().Unacked() != 0 {
				t.Fatalf("resent %d octets, %d unacked; want %d, 0", resent, h.Endpoint().Unacked(), c.wantBytes)
			}
		})
	}
}

// lastPSH is the flags of a data segment, with PSH on the last of a write.
func lastPSH(last bool) Flags {
	if last {
		return PSH | ACK
	}
	return ACK
}

// TestSACKRenegingClearsTheScoreboard: the peer SACKs data, then its
// cumulative ACK stops at the left edge of that block (it dropped it);
// after the timeout the SACKed data is resent too.
func TestSACKRenegingClearsTheScoreboard(t *testing.T) {
	cfg := testConfig()
	cfg.DisableTimestamps = true
	h := tcptest.New(t, cfg).Negotiate()
	h.Reach(Established)
	h.Write(strings.Repeat("n", 2*testMSS))
	h.Discard()
	h.Send(ACK, 301, 101, tcptest.SACK(1101, 2101))
	h.Fire()
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	h.Send(ACK, 301, 1101) // reneged: 1101..2101 was SACKed
	h.Fire()
	h.Want(PSH|ACK, 1101, 301, tcptest.Len(testMSS))
	if tc := h.TCB(); tc.SACKed != 0 {
		t.Fatalf("scoreboard kept %d octets after reneging", tc.SACKed)
	}
}

func TestTimestampsTakeRoomFromTheMSS(t *testing.T) {
	h := tcptest.New(t, testConfig()).Negotiate()
	h.Reach(Established)
	h.Write(strings.Repeat("m", 2000))
	h.Want(ACK, 101, 301, tcptest.Len(testMSS-12), tcptest.TS(1000, tcptest.PeerTSOffset+1000))
	h.Want(ACK, 101+testMSS-12, 301, tcptest.Len(testMSS-12))
	h.WantNone() // Nagle holds the 24-octet tail while data is in flight
	h.Send(ACK, 301, 101+2*(testMSS-12), tcptest.TS(tcptest.PeerTSOffset+1001, 1000))
	h.Want(PSH|ACK, 101+2*(testMSS-12), 301, tcptest.Len(24))
}

// TestTimestampRTTSamples: each ACK of new data gives an RTT sample from
// its TSecr (RFC 7323 §4.1), a retransmitted segment's too (its TSval is
// the retransmission's: no Karn ambiguity).
func TestTimestampRTTSamples(t *testing.T) {
	h := tcptest.New(t, testConfig()).Negotiate()
	h.Reach(Established) // the SYN,ACK echoed our SYN at once: a 0 ms sample
	if tc := h.TCB(); tc.TSRTTSamples != 1 || tc.SRTT != 0 {
		t.Fatalf("after the handshake: %d samples, SRTT %v", tc.TSRTTSamples, tc.SRTT)
	}
	h.Write("ping")
	h.Want(PSH|ACK, 101, 301, tcptest.Len(4), tcptest.TS(1000, tcptest.PeerTSOffset+1000))
	h.Advance(80 * time.Millisecond)
	h.Send(ACK, 301, 105) // TSecr 1000: an 80 ms sample
	tc := h.TCB()
	// RTTVAR = 3/4*0 + 1/4*80 = 20ms; SRTT = 7/8*0 + 1/8*80 = 10ms.
	if tc.TSRTTSamples != 2 || tc.SRTT != 10*time.Millisecond || tc.RTTVar != 20*time.Millisecond {
		t.Fatalf("after an 80 ms sample: %d samples, SRTT %v RTTVAR %v", tc.TSRTTSamples, tc.SRTT, tc.RTTVar)
	}
	h.Write("pong")
	h.Want(PSH|ACK, 105, 301, tcptest.Len(4))
	h.Fire() // lost: resent after the RTO with a new TSval
	s := h.Want(PSH|ACK, 105, 301, tcptest.Len(4))
	h.Advance(40 * time.Millisecond)
	h.Send(ACK, 301, 109, tcptest.TS(h.PeerTSVal(), s.Options.TSVal))
	// RTTVAR = 3/4*20 + 1/4*|10-40| = 22.5ms; SRTT = 7/8*10 + 1/8*40 = 13.75ms.
	if tc := h.TCB(); tc.TSRTTSamples != 3 || tc.SRTT != 13750*time.Microsecond {
		t.Fatalf("after the retransmission's ACK: %d samples, SRTT %v", tc.TSRTTSamples, tc.SRTT)
	}
}

// TestPAWS: a segment whose TSval is older than TS.Recent is an old
// duplicate: answered with an ACK and dropped (RFC 7323 §5.3 R1). A RST is
// exempt. After Config.PAWSIdleLimit of idle (24 days) TS.Recent no longer
// judges (§5.5).
func TestPAWS(t *testing.T) {
	for _, c := range []struct {
		name     string
		idle     time.Duration
		tsval    uint32
		wantRead string
		wantPAWS uint32
	}{
		{"an older TSval is refused", time.Second, 59000, "abc", 1},
		{"an equal TSval is accepted", time.Second, 60000, "abcdef", 0},
		{"after 24 days idle an old TSval is accepted", 24*24*time.Hour + time.Second, 59000, "abcdef", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := tcptest.New(t, testConfig()).Negotiate()
			h.Reach(Established)
			h.Send(PSH|ACK, 301, 101, tcptest.Text("abc"), tcptest.TS(60000, 1000))
			h.Want(ACK, 101, 304, tcptest.TS(1000, 60000))
			h.Advance(c.idle)
			h.Send(PSH|ACK, 304, 101, tcptest.Text("def"), tcptest.TS(c.tsval, 1000))
			h.Discard()
			if got, _ := h.Read(); got != c.wantRead {
				t.Fatalf("read %q, want %q", got, c.wantRead)
			}
			if tc := h.TCB(); tc.PAWSRejected != c.wantPAWS {
				t.Fatalf("PAWS refused %d, want %d", tc.PAWSRejected, c.wantPAWS)
			}
		})
	}
	t.Run("a RST with an old TSval still resets", func(t *testing.T) {
		h := tcptest.New(t, testConfig()).Negotiate()
		h.Reach(Established)
		h.Send(PSH|ACK, 301, 101, tcptest.Text("abc"), tcptest.TS(60000, 1000))
		h.Discard()
		h.Send(RST, 304, 0, tcptest.TS(1, 0))
		h.WantState(Closed)
	})
	t.Run("an out-of-order segment does not move TS.Recent", func(t *testing.T) {
		h := tcptest.New(t, testConfig()).Negotiate()
		h.Reach(Established)
		h.Send(PSH|ACK, 301, 101, tcptest.Text("abc"), tcptest.TS(60000, 1000))
		h.Send(PSH|ACK, 310, 101, tcptest.Text("xyz"), tcptest.TS(70000, 1000)) // SEG.SEQ > Last.ACK.sent
		h.Discard()
		if tc := h.TCB(); tc.TSRecent != 60000 {
			t.Fatalf("TS.Recent %d, want 60000", tc.TSRecent)
		}
	})
}

// TestSACKIsLostStartsRecoveryBeforeTheThirdDuplicate: one duplicate ACK
// SACKing more than (DupThresh-1)*SMSS above SND.UNA marks the first
// segment lost (RFC 6675 IsLost) and recovery starts at once; NewReno
// would wait for two more duplicates.
func TestSACKIsLostStartsRecoveryBeforeTheThirdDuplicate(t *testing.T) {
	cfg := testConfig()
	cfg.InitialWindow = 10
	cfg.DisableTimestamps = true
	h := tcptest.New(t, cfg).Negotiate()
	h.Reach(Established)
	h.Write(strings.Repeat("l", 10*testMSS))
	h.Discard()
	h.Send(ACK, 301, 101, tcptest.SACK(1101, 3101)) // 2000 SACKed: not yet lost
	h.WantNone()
	h.Send(ACK, 301, 101, tcptest.SACK(1101, 4101)) // 3000 > 2*SMSS: lost
	h.Want(ACK, 101, 301, tcptest.Len(testMSS))
	if tc := h.TCB(); !tc.InSACKRecovery {
		t.Fatalf("not in SACK recovery after the second duplicate: %v", &tc)
	}
}
