// Package quicconn is a QUIC server, client and HTTP/3 on quic-go whose
// connection IDs are 8 bytes long, so a connection can be rebound and
// migrated and every packet linked to its connection, with a qlog tracer
// that keeps each endpoint's per-packet record. It imports nothing of the
// lab: what it needs from its surroundings — where the qlogs go, where the
// TLS secrets go, the randomness of its connection IDs, a record of what its
// sockets write — it takes in its configs.
//
// The pieces, one concept a file:
//
//   - server.go: a server on one UDP socket speaking a raw stream protocol
//     (ALPN "statelab-quic": upload → sha256, download N bytes, echo) and
//     HTTP/3 (h3.go), counting (and, when asked, recording) every datagram
//     its socket writes.
//   - client.go: a client on a quic.Transport with 8-byte connection IDs
//     (plain quic.Dial uses zero-length ones, which nothing could link or
//     unlink), with extra paths for active migration (NewPath, then
//     Probe and Switch), and the raw streams' Upload, Download and Echo.
//   - h3.go: HTTP/3 on that server, and an HTTP/3 client (H3Client) whose
//     http3.Transport dials each connection as a Client, so an HTTP/3
//     download can be rebound or migrated mid-transfer.
//   - trace.go: quic-go's qlog, written per connection endpoint (JSON-SEQ
//     .sqlog, whole records only, completed by Tracer.Finish when a run
//     stops early; RemoveQlogs clears an earlier run's) and kept in memory
//     as the per-packet record, each packet with the path it was logged on
//     (ClaimPaths); Tracer.WaitQuiet waits until nothing is in flight.
//   - early.go: EarlyServer, a server that accepts 0-RTT and answers a
//     GET at once but holds a PUT until the handshake completes;
//     DialEarly, TicketCache, and the client's first flight.
//   - earlysecret.go: EarlySecretLog, the CLIENT_EARLY_TRAFFIC_SECRET Go's
//     crypto/tls does not log, from the offered session and the
//     ClientHello in the client's Initials.
//   - backend.go: Backend, a server on a socket it is given (behind
//     quicconn/lb).
//   - header.go: a datagram's QUIC packets as their cleartext headers show
//     them (ParseHeaders: type, connection IDs, length) and the datagram
//     checksum quic-go's qlog logs (Checksum).
//   - initial.go: Initial and Retry packets by hand (RFC 9001 §5): a
//     client Initial with any token (BuildInitial), a Retry read and its
//     integrity tag verified (ParseRetry), the server's Initial answer
//     opened and its frames read, CONNECTION_CLOSE INVALID_TOKEN among
//     them (OpenServerInitial): a lab presents forged and moved tokens
//     from a plain UDP socket.
//   - flood.go: a real client's first Initial made spoofable
//     (CaptureInitial, OpenSpoofable, SpoofedInitial.Under): the same
//     Initial under any new connection ID, for flood tests of a server's
//     address validation.
//
// The middleboxes that move a connection's path (a UDP NAT that rebinds
// and forges, a TCP NAT) are package quicconn/nat; the load balancer is
// package quicconn/lb. The lab's quic/*
// experiments, their capture analysis and the benchmark are package
// experiments/quicexp.
//
// A finding worth knowing when migrating: quic-go v0.65's send queue
// resolves the peer address when it writes a packet, not when it packs it
// (send_conn.go:72-73, connection.go:1332), so a packet packed for the old
// path before a switch can leave for the new path with the old path's
// connection ID. TestMigrateMidBurstLeaksOldCID measures the race
// mid-burst; Tracer.WaitQuiet is the way to migrate at a quiescent moment.
package quicconn
