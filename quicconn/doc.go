// Package quicconn shows QUIC connection IDs keeping a connection alive across
// a simulated address migration, with captures Wireshark decrypts unaided.
//
// The pieces, one concept a file:
//
//   - server.go: a quic-go server on one UDP socket speaking a raw stream
//     protocol (ALPN "statelab-quic": upload → sha256, download N bytes,
//     echo) and HTTP/3 (h3.go).
//   - h3.go: HTTP/3 on that server, and an HTTP/3 client (H3Client) whose
//     http3.Transport dials each connection as a Client, so an HTTP/3
//     download can be rebound or migrated mid-transfer.
//   - client.go: a client on a quic.Transport with 8-byte connection IDs
//     (plain quic.Dial uses zero-length ones, which nothing could link or
//     unlink), with extra paths for active migration (AddPath, Probe, Switch).
//   - middlebox.go: a UDP NAT inside the lab's namespace that rebinds a
//     client's flow to a new port or address mid-transfer and forgets the old
//     binding, and can play an on-path attacker replaying client packets from
//     forged addresses. tcpnat.go does the same rebinding to kernel TCP.
//   - trace.go: quic-go's qlog, written per connection endpoint beside the
//     capture (JSON-SEQ .sqlog, whole records only, completed by
//     Tracer.Finish when a run stops early; an earlier run's files are
//     removed) and kept in memory as the per-packet record.
//   - wire.go: captured datagrams with their cleartext headers (every
//     coalesced packet), correlated with the records both endpoints logged.
//   - evidence.go: what each capture must hold, counted at the source, and
//     the comment every captured packet carries.
//   - exp_*.go: the experiments quic/rebind-port, quic/rebind-addr,
//     quic/migrate, quic/spoofed-path and quic/tcp-contrast.
//   - bench.go: goodput and stall with and without path changes.
//
// Evidence. Every datagram the experiment's endpoints write is counted at
// the source: the server's and the client's sockets count (and record)
// what they write, the NAT what it forwards or forges; for TCP the sockets'
// tcp_info segs_out, and the NAT the segment it crafts and the RST it sees.
// The capture is stopped once it holds all of them, and the check "capture
// complete" says so before any other: a short capture fails that check
// alone, and no ladder is drawn from it.
//
// How the checks read the packets: quic-go's qlog records every packet it
// sends or receives with its frames, connection IDs and path, but the
// packet number is encrypted on the wire and a datagram can be lost before
// the capture's leg (the NAT's socket buffer), so the records are joined
// to the capture in exact steps: each packet_sent to the datagram the
// endpoint's socket wrote next with the same cleartext headers, that
// datagram to the captured one with the same CRC32C, and the receiver's
// packet_received (or packet_dropped, for a duplicate) by packet number.
// Each captured packet then carries a comment: packet number, frames, DCID
// and the path as each endpoint logged it; each 4-tuple must be the path
// the record claims. Connection-ID checks read the cleartext headers of
// every captured datagram. Ladders are drawn from captured packets only,
// each row numbered by its frame in the capture. The captures carry the
// TLS key log as a decryption-secrets block, and the package's tshark test
// decrypts them with nothing else and finds the PATH_CHALLENGE and
// PATH_RESPONSE frames.
//
// What --seed reproduces: the uploaded bytes, the connection IDs the
// endpoints issue (a ConnectionIDGenerator fed from the lab's seeded
// stream) and the server's token key. What it cannot: the Initial's
// destination connection ID (quic-go draws it from crypto/rand), the TLS
// randomness and keys, PATH_CHALLENGE data, packet-number skipping, the
// certificate's key (Go's crypto ignores a supplied reader), and the ports
// and TCP initial sequence numbers the kernel chooses.
//
// A finding the experiments surface rather than hide: quic-go v0.65's send
// queue resolves the peer address when it writes a packet, not when it packs
// it (send_conn.go:72-73, connection.go:1332), so a packet packed for the old
// path before a switch can leave for the new path with the old path's
// connection ID. quic/migrate therefore migrates at a quiescent moment
// (Tracer.WaitQuiet: nothing in flight on either side) and checks RFC 9000
// §9.5 strictly over every captured packet; TestMigrateMidBurstLeaksOldCID
// measures the race mid-burst. The rebinding experiments, where the NAT
// moves the flow mid-transfer by design, count such packets apart (metric
// inflight_at_switch_count, a note and packet comments).
package quicconn
