// Package lb is the UDP load balancer of statelab's QUIC experiments, in
// process and on loopback: a relay in front of several QUIC servers
// (backends) that picks a backend for every client datagram and carries
// the backends' replies back, keeping no table of connections.
//
//   - cid.go: connection IDs that carry their server's ID, after the QUIC-LB
//     draft's plaintext algorithm (draft-ietf-quic-load-balancers): a first
//     octet of config rotation bits and length, the server ID, a nonce
//     (Config, Encode, Decode), and a quic-go ConnectionIDGenerator that
//     issues them (Generator).
//   - encap.go: the encapsulation between the balancer and a backend: each
//     datagram carries the client's address in a small header, as IP-in-IP
//     or GUE encapsulation would, so the backend sees the client's real
//     address and its replies say where they go (Encap, Decap,
//     BackendConn).
//   - balancer.go: Balancer, routing by a hash of the client's 4-tuple or
//     by the server ID in the destination connection ID (Route), with
//     counts of what it routed (Stats).
//
// What the balancer holds is its configuration: the backends' addresses,
// the mode, the CID config. Everything it needs to route a datagram is in
// the datagram. It imports nothing of the lab.
package lb
