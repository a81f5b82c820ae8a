package tcpstate

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// Config holds the tunables of an Endpoint. The zero value of each field
// selects the default shown; tests set short timers.
type Config struct {
	// MSS is the largest payload this endpoint sends and the MSS option it
	// advertises (default 1460, IPv4 over Ethernet).
	MSS int
	// SendBufferSize bounds data accepted by Send and not yet acknowledged
	// (default 256 KiB).
	SendBufferSize int
	// RecvBufferSize bounds received data not yet read; the receive window
	// is its free space (default 256 KiB).
	RecvBufferSize int
	// DisableWindowScale stops the endpoint offering RFC 7323 window scaling.
	DisableWindowScale bool
	// DisableSACK stops the endpoint offering or accepting SACK-permitted
	// (RFC 2018). SACK is on by default, as in Linux (net.ipv4.tcp_sack=1):
	// out-of-order data is reported in SACK blocks, and loss recovery when
	// sending follows RFC 6675 (scoreboard, IsLost, pipe, NextSeg); off, the
	// sender recovers with NewReno (RFC 6582) alone.
	DisableSACK bool
	// DisableTimestamps stops the endpoint offering or accepting the
	// timestamps option (RFC 7323). It is on by default, as in Linux
	// (net.ipv4.tcp_timestamps=1): every segment carries TSval/TSecr once
	// both SYNs had it, RTT samples come from TSecr (RFC 7323 §4, RFC 6298),
	// and PAWS (§5) refuses old duplicates.
	DisableTimestamps bool
	// TimestampClock is the period of one timestamp clock tick (default
	// 1ms, as Linux; RFC 7323 §5.4 allows 1 ms to 1 s).
	TimestampClock time.Duration
	// PAWSIdleLimit is RFC 7323 §5.5's idle rule: TS.Recent older than this
	// is no longer valid, and the next segment is accepted whatever its
	// TSval (default 24 days).
	PAWSIdleLimit time.Duration
	// TSOffset chooses a connection's random timestamp offset (RFC 7323
	// §7.1). Nil picks one from crypto/rand; tests pass a constant.
	TSOffset func() uint32

	// InitialRTO is the RTO before any RTT sample (default 1s, RFC 6298).
	InitialRTO time.Duration
	// MinRTO and MaxRTO clamp the RTO (defaults 1s and 60s, RFC 6298).
	MinRTO, MaxRTO time.Duration
	// ClockGranularity is G of RFC 6298 (default 1ms).
	ClockGranularity time.Duration
	// RTOAfterSYNLoss is the RTO once data transfer begins when the SYN or
	// SYN,ACK had to be retransmitted and no RTT sample exists (default 3s,
	// RFC 6298 (5.7)).
	RTOAfterSYNLoss time.Duration
	// MaxRetries is how many consecutive retransmission timeouts are
	// tolerated before the connection fails with ErrTimeout (default 8).
	MaxRetries int

	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2×MSL (default
	// 30s).
	MSL time.Duration

	// ChallengeACKLimit challenge ACKs (RFC 5961 §7) are sent at most per
	// ChallengeACKInterval (defaults 10 per second).
	ChallengeACKLimit    int
	ChallengeACKInterval time.Duration

	// InitialWindow is the initial congestion window in segments; 0 means
	// the RFC 5681 rule min(4*MSS, max(2*MSS, 4380 bytes)).
	InitialWindow int

	// MaxOutOfOrder bounds the out-of-order ranges remembered (default 64).
	MaxOutOfOrder int

	// DisableReceiverSWS turns off receiver-side silly window syndrome
	// avoidance (RFC 9293 §3.8.6.2.2, MUST-39; on by default, as in Linux):
	// the right edge of the advertised window only moves on when it can
	// move by at least min(half the receive buffer, MSS), in every segment
	// sent (window updates after reads and the ACKs of window probes).
	DisableReceiverSWS bool

	// UnthrottledUnsentACKs answers every segment acknowledging data not
	// yet sent (SEG.ACK > SND.NXT) with an ACK, as RFC 9293 §3.10.7.4
	// reads alone. By default those ACKs go through the challenge-ACK rate
	// limit (RFC 5961 §5.2 and §7, as Linux and smoltcp do), so two
	// desynchronised peers cannot ACK-loop.
	UnthrottledUnsentACKs bool

	// DisableSlowStartAfterIdle turns off the restart window (RFC 5681
	// §4.1; on by default, Linux's net.ipv4.tcp_slow_start_after_idle=1):
	// after no data was sent for more than one RTO, cwnd is reduced to
	// min(IW, cwnd) before sending again.
	DisableSlowStartAfterIdle bool

	// SlowButSteady restarts the retransmission timer on every partial
	// ACK of fast recovery (RFC 6582 §4's "Slow-but-Steady" variant). By
	// default the timer is restarted only on the first partial ACK, as
	// RFC 6582 §3.2 step 5 states ("Impatient").
	SlowButSteady bool

	// KeepAlive sends keep-alive probes on an idle connection (RFC 1122
	// §4.2.3.6; off by default, as in Linux without SO_KEEPALIVE). After
	// KeepAliveIdle without a segment from the peer (default 2h) a probe
	// <SEQ=SND.UNA-1><ACK=RCV.NXT> goes out every KeepAliveInterval
	// (default 75s); after KeepAliveCount unanswered probes (default 9) —
	// or, with UserTimeout set, once UserTimeout has passed with a probe
	// unanswered — the connection is reset and fails with ErrTimeout.
	// Linux's TCP_KEEPIDLE, TCP_KEEPINTVL and TCP_KEEPCNT.
	KeepAlive         bool
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCount    int

	// UserTimeout is how long transmitted data may stay unacknowledged,
	// or the peer's window stay shut under zero-window probes, before the
	// connection is aborted with ErrTimeout (RFC 9293's USER TIMEOUT,
	// RFC 5482; Linux's TCP_USER_TIMEOUT). 0 (the default, as in Linux)
	// leaves it to MaxRetries, and the persist timer probes a shut window
	// for as long as the peer answers (RFC 9293 §3.8.6.1). When set, it
	// replaces MaxRetries.
	UserTimeout time.Duration

	// NoDelay turns Nagle's algorithm (RFC 896, RFC 9293 §3.7.4) off, like
	// TCP_NODELAY: a small segment goes out even while earlier data is
	// unacknowledged. Default false (Nagle on, as on a Linux socket);
	// Endpoint.SetNoDelay switches it per connection. See sendpolicy.go.
	NoDelay bool
	// DisableSenderSWS turns the sender's silly window syndrome avoidance
	// (RFC 9293 §3.8.6.2.1, MUST-38) off: a segment smaller than a full one
	// and than half the largest window the peer offered then leaves as soon
	// as the window allows it. Default false (on, as in Linux).
	DisableSenderSWS bool
	// SWSOverride is the override timeout of RFC 9293 §3.8.6.2.1: data held
	// back by sender SWS avoidance with nothing in flight is sent, as much
	// as the window allows, when it expires (default 200ms; the RFC suggests
	// 0.1 to 1 s).
	SWSOverride time.Duration

	// DisableDelayedACK acknowledges every segment at once. Default false:
	// ACKs are delayed as RFC 9293 §3.8.6.3 and RFC 1122 §4.2.3.2 allow (and
	// Linux does), see delack.go.
	DisableDelayedACK bool
	// DelayedACK is how long an ACK may wait for data to ride on (default
	// 40ms, Linux's TCP_DELACK_MIN; RFC 9293 MUST-40 caps it at 500ms, and
	// longer values are clamped to that).
	DelayedACK time.Duration
	// QuickACKs is how many of a connection's first data segments are
	// acknowledged at once, like Linux's quickack mode at the start of a
	// connection (default 16, Linux's TCP_MAX_QUICKACKS; -1 for none).
	QuickACKs int

	// ISS chooses the initial send sequence number. Nil picks one from
	// crypto/rand. Tests pass a constant for deterministic ladders.
	ISS func() Seq
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MSS, 1460)
	c.MSS = min(c.MSS, 65535)
	def(&c.SendBufferSize, 256<<10)
	def(&c.RecvBufferSize, 256<<10)
	defD(&c.InitialRTO, time.Second)
	defD(&c.MinRTO, time.Second)
	defD(&c.MaxRTO, 60*time.Second)
	defD(&c.ClockGranularity, time.Millisecond)
	defD(&c.RTOAfterSYNLoss, 3*time.Second)
	def(&c.MaxRetries, 8)
	defD(&c.MSL, 30*time.Second)
	def(&c.ChallengeACKLimit, 10)
	defD(&c.ChallengeACKInterval, time.Second)
	def(&c.MaxOutOfOrder, 64)
	defD(&c.KeepAliveIdle, 2*time.Hour)
	defD(&c.KeepAliveInterval, 75*time.Second)
	def(&c.KeepAliveCount, 9)
	if c.UserTimeout < 0 {
		c.UserTimeout = 0
	}
	defD(&c.TimestampClock, time.Millisecond)
	defD(&c.PAWSIdleLimit, 24*24*time.Hour)
	if c.TSOffset == nil {
		c.TSOffset = func() uint32 { return uint32(RandomISS()) }
	}
	defD(&c.SWSOverride, 200*time.Millisecond)
	defD(&c.DelayedACK, 40*time.Millisecond)
	c.DelayedACK = min(c.DelayedACK, MaxDelayedACK)
	if c.QuickACKs == 0 {
		c.QuickACKs = 16
	}
	c.QuickACKs = max(c.QuickACKs, 0)
	if c.ISS == nil {
		c.ISS = RandomISS
	}
	return c
}

// RandomISS returns an unpredictable initial sequence number from
// crypto/rand (RFC 6528 asks for unpredictability; no clock is read).
func RandomISS() Seq {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return Seq(binary.BigEndian.Uint32(b[:]))
}
