// Package tcpstate is a user-space TCP (RFC 9293) endpoint written as a pure,
// table-driven state machine. It imports only the standard library: no
// sockets, no goroutines, no clock.
//
// # The engine
//
// An [Endpoint] is one end of one connection. Each input is a method call
// carrying the current time as a monotonic time.Duration:
//
//   - user calls: OpenActive, OpenPassive, Send, Receive, Close, Abort;
//     PostRead and TakePosted lend the engine a waiting read's buffer
//   - a received segment: HandleSegment
//   - a timer expiry: HandleTimer (NextTimer says when)
//
// Outputs are appended to a caller-owned [Output]: segments to transmit and
// [Event]s (state changes with their cause, data readable/writable, reset,
// refused, timeout, timer armed/canceled, urgent data). A driver that reuses one Output
// and calls Reset after draining it does not allocate in steady state.
//
// # Around it
//
//	tcpstate/tcptest  a scripted peer for table-driven tests of an Endpoint:
//	                  send a segment, want one, reach a state, advance time
//	tcpstate/rawtcp   the engine on raw sockets against the Linux kernel's TCP:
//	                  Stack, Conn (a net.Conn), Listener (a net.Listener),
//	                  fault injection, probes, sock_diag lookups
//
// # Reading it next to the RFC
//
//	state.go       the 11 states and the transition table (Figure 5 + §3.10)
//	engine.go      user calls (§3.10.1–5) and segment arrival (§3.10.7), the
//	               latter as the RFC's steps: segOther calls checkSequence,
//	               checkRST, checkSYN, checkACK, receiveSegmentText, receiveFIN
//	seq.go         sequence-number arithmetic (§3.4)
//	tcb.go         the TCB (§3.3.1)
//	retransmit.go  sending, retransmission, zero-window probes (§3.8)
//	rtt.go         RTO computation (RFC 6298)
//	congestion.go  NewReno (RFC 5681, RFC 6582)
//	sack.go        SACK (RFC 2018): blocks when receiving out of order, most
//	               recent first; loss recovery when sending (RFC 6675:
//	               scoreboard, IsLost, pipe, NextSeg)
//	timestamps.go  timestamps (RFC 7323): TSval/TSecr, RTT samples from TSecr
//	               (into RFC 6298), PAWS with §5.5's 24-day idle rule
//	reassembly.go  out-of-order data (and the SACK scoreboard's ranges)
//	buffer.go      the send and receive rings
//	postread.go    a waiting read's buffer, filled with in-order data directly
//	timers.go      retransmission, persist, TIME-WAIT, keep-alive, delayed-ACK and
//	               SWS-override timers
//	sws.go         receiver SWS avoidance in every segment (§3.8.6.2.2, MUST-39)
//	idle.go        the restart window after idle (RFC 5681 §4.1)
//	keepalive.go   keep-alive probes (RFC 1122 §4.2.3.6), off by default
//	usertimeout.go the user timeout (RFC 5482, §3.10.8): data, persist, keep-alive
//	urgent.go      the urgent pointer reported as EventUrgent (§3.10.7.4 sixth step)
//	sendpolicy.go  when new data may leave: Nagle (RFC 896, NoDelay like
//	               TCP_NODELAY) and sender SWS avoidance with its override
//	               timer (RFC 9293 §3.8.6.2.1, MUST-38)
//	delack.go      delayed ACK (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2: at most
//	               500 ms, every second full-sized segment, quick ACKs at the
//	               start and for out-of-order data as RFC 5681 §4.2 asks)
//	segment.go     the Segment struct and control bits
//	wire.go        header encode/decode and checksum (§3.1)
//	output.go      Output and Event
//	config.go      Config and its defaults
//	errors.go      the sentinel errors
//	diagram.go     DiagramDOT, drawn from the transition table
//
// RFC 5961 hardening is in the segment path: a RST exactly at RCV.NXT resets,
// one elsewhere in the window draws a challenge ACK, one outside is dropped;
// a SYN on a synchronized connection draws a challenge ACK; an ACK of data
// never sent (SEG.ACK > SND.NXT, §5.2) is answered at the same rate;
// challenge ACKs are rate-limited (Config.ChallengeACKLimit per
// ChallengeACKInterval).
//
// Config knobs, each with its RFC and default (Linux's where it has one):
//
//	DisableReceiverSWS         RFC 9293 §3.8.6.2.2 (MUST-39)   on
//	UnthrottledUnsentACKs      RFC 5961 §5.2, §7               throttled
//	DisableSlowStartAfterIdle  RFC 5681 §4.1 restart window    on
//	SlowButSteady              RFC 6582 §4 timer variant       off (Impatient, §3.2 step 5)
//	KeepAlive, KeepAlive*      RFC 1122 §4.2.3.6               off; 2h, 75s, 9
//	UserTimeout                RFC 5482, RFC 9293 §3.10.8      0 (off)
//
// RFC 9293 §3.10 as written: an active OPEN on a LISTEN endpoint turns it
// active (§3.10.1), and CLOSE in SYN-RECEIVED sends the FIN at once when
// nothing is queued (§3.10.4).
//
// Every state change goes through one function that reports it as an event
// and (in the package's tests) panics if the change is not a row of the
// table, so the diagram, the tests and the engine share one source of truth.
// tcptest checks every reported change against the same table ([Allowed]).
//
// SACK and timestamps are on by default, as in Linux (Config.DisableSACK,
// Config.DisableTimestamps): both are offered in the SYN and on when the
// peer's SYN carries them too. Once on, every segment but a RST carries
// TSval/TSecr and the payload shrinks by the option (RFC 9293 §3.7.1), and
// ACKs carry SACK blocks while data is held out of order (no D-SACK,
// RFC 2883).
//
// Delayed ACK and Nagle are on by default, as on a Linux socket;
// Config.DisableDelayedACK and Config.NoDelay turn them off.
//
// Simplifications, documented where they apply: data on a SYN is not
// accepted, urgent text
// is delivered inline (signalled by EventUrgent, never taken out of band),
// and a LISTEN endpoint serves one connection (SEND in LISTEN is not
// supported).
package tcpstate
