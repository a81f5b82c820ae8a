// Package tcpstate is a user-space TCP (RFC 9293) endpoint written as a pure,
// table-driven state machine, and the driver that puts it on raw sockets
// against the Linux kernel's TCP.
//
// # The engine
//
// An [Endpoint] is one end of one connection. It has no sockets, goroutines
// or clock. Each input is a method call carrying the current time as a
// monotonic time.Duration:
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
// # Reading it next to the RFC
//
//	state.go       the 11 states and the transition table (Figure 5 + §3.10)
//	engine.go      user calls (§3.10.1–5) and segment arrival (§3.10.7)
//	seq.go         sequence-number arithmetic (§3.4)
//	tcb.go         the TCB (§3.3.1)
//	retransmit.go  sending, retransmission, zero-window probes (§3.8)
//	rtt.go         RTO computation (RFC 6298)
//	congestion.go  NewReno (RFC 5681, RFC 6582)
//	reassembly.go  out-of-order data
//	timers.go      retransmission, persist and TIME-WAIT timers
//	segment.go     the Segment struct and control bits
//	wire.go        header encode/decode and checksum (§3.1)
//	diagram.go     DiagramDOT, drawn from the transition table
//
// # The driver (against the Linux kernel)
//
//	link.go        raw IPv4 socket, BPF port filter, why not a packet socket
//	rstfilter.go   the nftables OUTPUT rule that suppresses the kernel's RSTs
//	stack.go       Stack: demultiplexing, Dial, Listen, the CLOSED responder
//	conn.go        Conn: Read/Write/Close/Abort/Forget on real time, send hooks
//	record.go      per-segment records of the lab's state, for capture comments
//	probe.go       Probe: kernel probes as Go tables of steps (packetdrill-like)
//	kernel.go      the kernel socket's state via sock_diag
//	evidence.go    capture comments: records matched to packets (completeness),
//	               relative sequence numbers, the kernel's state derived from
//	               the segments, every transmission named
//	bench.go       bulk-transfer benchmark (statelab bench tcp)
//	exp_*.go       the tcp/ experiments
//
// RFC 5961 hardening is in the segment path: a RST exactly at RCV.NXT resets,
// one elsewhere in the window draws a challenge ACK, one outside is dropped;
// a SYN on a synchronized connection draws a challenge ACK; challenge ACKs
// are rate-limited (Config.ChallengeACKLimit per ChallengeACKInterval).
//
// Every state change goes through one function that reports it as an event
// and (in the package's tests) panics if the change is not a row of the
// table, so the diagram, the tests and the engine share one source of truth.
//
// Simplifications, documented where they apply: every segment is ACKed at
// once (no delayed ACK), no Nagle, no SACK or timestamps in the engine (the
// wire codec parses them), data on a SYN is not accepted, and a LISTEN
// endpoint serves one connection (SEND in LISTEN is not supported).
package tcpstate
