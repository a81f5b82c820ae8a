package quicexp

import (
	"net/netip"
	"time"

	"github.com/statelab/statelab/lab"
)

// Experiments are the quic/ experiments, for a lab.Catalogue.
func Experiments() []lab.Experiment {
	return []lab.Experiment{
		{
			Name:    "quic/rebind-port",
			Summary: "a NAT moves a QUIC upload to a new source port mid-transfer: the connection ID carries it on",
			Shows: "A NAT rebinding moves the client to a new source port mid-upload; the server finds the connection by its " +
				"destination connection ID, probes the new 4-tuple with PATH_CHALLENGE, switches once the client's PATH_RESPONSE " +
				"echoes it, and the upload completes byte-exact in one handshake.",
			Run: func(env *lab.Env) error { return runRebind(env, false) },
		},
		{
			Name:    "quic/rebind-addr",
			Summary: "a NAT moves a QUIC upload to a new source address (127.0.0.2) mid-transfer: the connection ID carries it on",
			Shows: "A NAT rebinding moves the client to a new address mid-upload; the server finds the connection by its " +
				"destination connection ID, validates the new path with PATH_CHALLENGE/PATH_RESPONSE before switching, and the " +
				"upload completes byte-exact in one handshake.",
			Run: func(env *lab.Env) error { return runRebind(env, true) },
		},
		{
			Name:    "quic/migrate",
			Summary: "active client migration over three hops and back (AddPath/Probe/Switch): a fresh connection ID per path",
			Shows: "The client moves its connection across three new paths and back to its first address with AddPath, " +
				"Probe and Switch; Switch before Probe is refused, nothing uses a path after leaving it, and every path " +
				"carries connection IDs no other path carried (RFC 9000 §9.5), checked over every captured packet with no exception. " +
				"Each hop is made at a quiescent moment: the upload is paused and nothing is in flight on either side, because " +
				"quic-go v0.65 picks a packet's destination when it writes it, not when it builds it, so migrating mid-burst " +
				"can send a packet built for the old path, with the old path's connection ID, to the new address.",
			Run: runMigrate,
		},
		{
			Name:    "quic/spoofed-path",
			Summary: "an attacker replays client packets from forged addresses: the server probes but never switches",
			Shows: "An on-path attacker races copies of the client's packets to the server from forged loopback addresses; " +
				"the server accepts the data, probes each forged address with PATH_CHALLENGE, gets no PATH_RESPONSE and never " +
				"moves the connection there, and the real client's upload completes untouched (RFC 9000 §9.3.2).",
			Run: runSpoof,
		},
		{
			Name:    "quic/tcp-contrast",
			Summary: "the same NAT port rebinding breaks a kernel TCP connection (RST, ECONNRESET) and not a QUIC one",
			Shows: "The same mid-transfer port rebinding applied to a QUIC upload and to a kernel TCP upload. The UDP middlebox " +
				"cannot carry TCP, so TCP goes through a TCP NAT built like it (a relay from an outside port of its own that " +
				"forgets the binding and sends the client's next bytes from a new port). QUIC carries on by connection ID after " +
				"a short stall; the server's TCP answers the segment from the new port with RST, because a TCP connection is " +
				"its 4-tuple, the NAT translates that RST back to the client as a real NAT would, and the client's kernel reports " +
				"ECONNRESET: the TCP upload never completes.",
			Run: runTCPContrast,
		},
		{
			Name:       "quic/retry",
			HoldsState: true, // a row of who holds the state
			Summary:    "address validation: a Retry token instead of server state, refused forged, moved and expired, NEW_TOKEN to skip it",
			Shows: "With address validation on, the server answers a client's first Initial with a Retry and creates nothing — no " +
				"connection, not one more goroutine — until the client's second Initial echoes the token; the client carries the state. " +
				"A forged token gets a new Retry, the token from another address and the token past its lifetime get INVALID_TOKEN, " +
				"none creates a connection; a server restarted with the same token key accepts a token its predecessor issued — the " +
				"restart lost nothing the token carried; the NEW_TOKEN a connection receives lets the next one skip the Retry until " +
				"that token expires.",
			Run: runRetry,
		},
		{
			Name:       "quic/stateless-reset",
			HoldsState: true, // a row of who holds the state
			Summary:    "the server process is killed and restarted mid-connection: with the same reset key the client learns at once, without it at its idle timeout",
			Shows: "The server process holding a QUIC connection is killed (SIGKILL) and a new one, started beforehand and waiting, " +
				"binds its address the moment it is dead (however slowly a busy machine starts processes, the client never idles out in between). The new " +
				"process knows no connection, but with the same stateless reset key it answers the client's next packet with a stateless " +
				"reset — a packet that looks like any short header packet and ends in HMAC(key, connection ID), the token the client got " +
				"with that connection ID — and the client ends the connection at once; with a fresh key per process the reset's token is " +
				"one the client never got, it drops it, and only its idle timeout ends the connection. QUIC's counterpart of " +
				"tcp/state-loss's RST: the state a restart loses is the same, the token lets a server that forgot it say so.",
			Run:   runReset,
			Roles: resetRoles,
		},
		{
			Name:       "quic/resumption",
			HoldsState: true, // a row of who holds the state
			Summary:    "a session ticket from a first connection resumes the second with 0-RTT: fewer handshake bytes, no round trip; a replay of it, and restarts",
			Shows: "A first connection does a full handshake and takes a session ticket; the second resumes with it and sends its " +
				"requests in 0-RTT, in its first flight, with fewer handshake bytes, both measured from the capture. The server " +
				"answers the read-only GET at once and holds the state-changing PUT until the handshake completes; an attacker " +
				"replaying that first flight gets the GET processed again, never the PUT. A restart that keeps the ticket key still " +
				"resumes; one with a fresh key falls back to a full handshake: the server kept nothing per client, the ticket carried it.",
			Run: runResumption,
		},
		{
			Name:       "quic/load-balancer",
			HoldsState: true, // a row of who holds the state
			Summary:    "three backends behind a UDP balancer: a 4-tuple hash loses a moving client, the server ID in the connection ID keeps it",
			Shows: "Three QUIC backends behind a UDP balancer that keeps no table. Hashing the client's 4-tuple, a NAT rebinding " +
				"and then an active migration send the client's packets to a backend that never saw the connection: it answers " +
				"with a stateless reset and the connection is lost. Routing by connection ID — every CID a backend issues carries " +
				"its server ID (QUIC-LB plaintext) — the same rebinding and migration, and a restart of the balancer, leave the " +
				"connection on its backend and the upload completes byte-exact; each route is recomputed from the captured datagram alone.",
			Run: runLoadBalancer,
		},
	}
}

// The experiments' parameters: short, so each experiment takes well under
// a few seconds.
const (
	// transferSize is what the experiments upload: enough to rebind
	// mid-transfer, small enough for a capture well under 1 MiB.
	transferSize = 300 << 10
	// stepTimeout bounds each wait of an experiment.
	stepTimeout = 8 * time.Second
	// largeDatagram is the least size of the client datagram that creates
	// a new NAT binding or is replayed by the attacker (see nat.UDP.Rebind).
	largeDatagram = 1000
	// quietTime is how long quic/migrate waits with nothing in flight and
	// no packet on the wire before it probes or switches: longer than the
	// default max_ack_delay (25 ms), so a pending delayed ACK has gone out.
	quietTime = 60 * time.Millisecond
	// spoofedPackets is how many client packets the attacker replays.
	spoofedPackets = 4
	// qlogFinishWait bounds how long an experiment's end waits for quic-go
	// to close the connections' qlogs before it completes them itself.
	qlogFinishWait = 2 * time.Second
	// uploadChunk is the size of each write of an upload.
	uploadChunk = 16 << 10
)

// Tests shorten or upset the capture through these.
var (
	// captureDrain bounds how long a capture waits to hold what its
	// sources counted (0: the capture's default).
	captureDrain time.Duration
	// testUncounted is added to what the sources counted: the capture is
	// then found short.
	testUncounted int
)

// The lab's loopback addresses: the server and the NAT live on the first;
// migrations, rebindings to a new address and forged sources use the others.
var (
	loopback1 = netip.MustParseAddr("127.0.0.1")
	loopback2 = netip.MustParseAddr("127.0.0.2")
	loopback3 = netip.MustParseAddr("127.0.0.3")
	loopback4 = netip.MustParseAddr("127.0.0.4")
)
