// Package quicexp holds statelab's quic/ experiments — QUIC connection IDs
// keeping a connection alive across a NAT rebinding and an active
// migration, an attacker's forged paths, the same rebinding breaking
// kernel TCP, session resumption with 0-RTT, and a load balancer that
// routes by connection ID — with captures Wireshark decrypts unaided, their analysis
// and `statelab bench quic`. It is the lab layer over quicconn and
// quicconn/nat: Experiments lists the experiments for a lab.Catalogue.
//
// The pieces:
//
//   - experiments.go: Experiments, the explicit list, and the
//     experiments' parameters (upload size, timeouts, quiet time).
//   - setup.go: each experiment's setup, once: a traced server with its key
//     log, a NAT in front when wanted, the capture, a client (setUp); and
//     its end (finish): endpoints closed, the capture stopped once it holds
//     what the sources counted, qlog files and secrets checked, every
//     datagram correlated and commented.
//   - exp_rebind.go: quic/rebind-port and quic/rebind-addr.
//   - exp_migrate.go: quic/migrate.
//   - exp_spoof.go: quic/spoofed-path.
//   - exp_tcpcontrast.go: quic/tcp-contrast; tcpsink.go its TCP endpoints.
//   - exp_retry.go: quic/retry — a server that validates every address
//     with a Retry, a prober of hand-built Initials (quicconn.BuildInitial)
//     presenting its token forged, moved, from another port, to a
//     restarted server with the same token key and expired, and three
//     quic-go connections sharing a token store (NEW_TOKEN).
//   - exp_reset.go: quic/stateless-reset — the server as a process of its
//     own (role quic-reset-server, counting its writes in a tally file
//     that survives SIGKILL), killed and replaced on its address by a
//     process started ahead on standby (it binds on SIGUSR1 and says so
//     on a FIFO), with the same or a fresh stateless reset key; each
//     reset told by its token, HMAC-SHA256(key, DCID)[:16].
//   - exp_resumption.go: quic/resumption — a first connection, a resumed
//     one with its requests in 0-RTT (the server's replies held until its
//     requests left and were read, as any path longer than loopback's
//     scheduling delay gives), the attacker's replay of that first flight
//     to the server restarted with its ticket key, and restarts with and
//     without the key; the key log completed with each 0-RTT connection's
//     early traffic secret (quicconn.EarlySecretLog).
//   - exp_loadbalancer.go: quic/load-balancer — three phases, each a
//     balancer (quicconn/lb) with three backends: 4-tuple hash with a NAT
//     rebinding, 4-tuple hash with an active migration, and connection-ID
//     routing through both and a restart of the balancer (at a quiescent
//     moment); the client leg correlated with the qlogs, the
//     backend legs decapsulated, every route recomputed from its datagram.
//   - datagram.go: captured datagrams with their cleartext headers (every
//     coalesced packet), joined with the records both endpoints logged
//     (Correlate).
//   - complete.go: what each capture must hold, counted at the source.
//   - comment.go: the comment every captured packet carries.
//   - ladder.go: ladder rows drawn in capture order.
//   - plots.go: ladder rows timed; connection IDs per 4-tuple, path
//     validation and bytes per path as plots.
//   - bench.go: goodput and stall with and without path changes.
//
// Each experiment's body reads as its steps: set up, drive traffic, finish
// (the evidence), then analysis steps that read the correlated datagrams
// (pure functions with table-driven tests on small captures built in the
// tests) and the checks, comments and ladder made from them.
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
// quic/migrate migrates at a quiescent moment (Tracer.WaitQuiet: nothing
// in flight on either side) and checks RFC 9000 §9.5 strictly over every
// captured packet, because quic-go v0.65 can write a packet built for the
// old path to the new one (see package quicconn). The rebinding
// experiments, where the NAT moves the flow mid-transfer by design, count
// such packets apart (metric inflight_at_switch_count, a note and packet
// comments).
//
// The benchmark's scenarios promise what they measure: migrate3's three
// hops are made one after the other, each complete (the server has moved
// to the new path) before the next starts, and a measurement ends once the
// last byte has arrived and every change armed during the download has
// completed (settle_ms says how long that took after the last byte);
// path_changes counts the changes the NAT or the server reported.
package quicexp
