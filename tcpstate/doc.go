// Package tcpstate is a user-space TCP (RFC 9293) endpoint written as a pure,
// table-driven state machine. It imports only the standard library: no
// sockets, no goroutines, no clock.
//
// # The engine
//
// An [Endpoint] is one end of one connection. Each input is a method call
// carrying the current time as a monotonic time.Duration:
//
//   - user calls: OpenActive, OpenPassive, Send, Receive, Close, Abort
//   - a received segment: HandleSegment
//   - a timer expiry: HandleTimer (NextTimer says when)
//
// Outputs are appended to a caller-owned [Output]: segments to transmit and
// [Event]s (state changes with their cause, data readable/writable, reset,
// refused, timeout, timer armed/canceled). A driver that reuses one Output
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
//	reassembly.go  out-of-order data
//	buffer.go      the send and receive rings
//	sendpolicy.go  when new data may leave: Nagle (RFC 896, NoDelay like
//	               TCP_NODELAY) and sender SWS avoidance with its override
//	               timer (RFC 9293 §3.8.6.2.1, MUST-38)
//	delack.go      delayed ACK (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2: at most
//	               500 ms, every second full-sized segment, quick ACKs at the
//	               start and for out-of-order data as RFC 5681 §4.2 asks)
//	timers.go      retransmission, persist, TIME-WAIT, delayed-ACK and
//	               SWS-override timers
//	segment.go     the Segment struct and control bits
//	wire.go        header encode/decode and checksum (§3.1)
//	output.go      Output and Event
//	config.go      Config and its defaults
//	errors.go      the sentinel errors
//	diagram.go     DiagramDOT, drawn from the transition table
//
// RFC 5961 hardening is in the segment path: a RST exactly at RCV.NXT resets,
// one elsewhere in the window draws a challenge ACK, one outside is dropped;
// a SYN on a synchronized connection draws a challenge ACK; challenge ACKs
// are rate-limited (Config.ChallengeACKLimit per ChallengeACKInterval).
//
// Every state change goes through one function that reports it as an event
// and (in the package's tests) panics if the change is not a row of the
// table, so the diagram, the tests and the engine share one source of truth.
// tcptest checks every reported change against the same table ([Allowed]).
//
// Simplifications, documented where they apply: no SACK or timestamps in
// the engine (the wire codec parses them), data on a SYN is not accepted,
// and a LISTEN endpoint serves one connection (SEND in LISTEN is not
// supported). Delayed ACK and Nagle are on by default, as on a Linux
// socket; Config.DisableDelayedACK and Config.NoDelay turn them off.
package tcpstate
