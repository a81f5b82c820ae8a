// Package nat holds the middleboxes of statelab's QUIC experiments, in
// process and on loopback: a UDP NAT that rebinds a client's flow to a new
// port or address mid-transfer, carries active migrations' new paths and can
// play an on-path attacker replaying a client's packets from forged
// addresses; and a TCP NAT that does the same rebinding to kernel TCP.
// Neither knows QUIC: they move datagrams and segments, and report what they
// did (Rebinding, UDPStats, TCPRebinding) and what their sockets counted
// (TCPCount), for a caller that checks a capture against it.
//
//   - udp.go: UDP, the NAT for datagrams (Rebind, Spoof, IsForged, Stats).
//   - tcp.go: TCP, the NAT for a TCP connection (Rebind, Outside), and
//     CountTCP, a TCP socket's own count of what it sent (tcp_info).
//   - errors.go: ErrNAT, which wraps what a NAT could not do.
//
// What they need from their surroundings is the addresses they are given:
// the UDP NAT binds its outside sockets on the address passed to NewUDP (or
// to Rebind and Spoof), which must be local; 127.0.0.2 and beyond are
// local on Linux's loopback. The TCP NAT's raw sockets need CAP_NET_RAW,
// which a network namespace of one's own gives; the tests run in one.
package nat
