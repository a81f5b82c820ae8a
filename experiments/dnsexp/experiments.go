package dnsexp

import "github.com/statelab/statelab/lab"

// Experiments are the dns/* experiments, for a lab.Catalogue;
// dns/server-restart carries the server process role it starts.
func Experiments() []lab.Experiment {
	return []lab.Experiment{
		{
			Name:    "dns/id-matching",
			Summary: "hundreds of concurrent queries over one UDP socket, answers reordered: each caller gets its own answer",
			Shows: "UDP has no connection, so the client matches every reply to its query by ID and question: hundreds of " +
				"queries share one socket, the server answers them out of order, and every caller still gets the answer to its own question.",
			Run: runIDMatching,
		},
		{
			Name:    "dns/spoofing",
			Summary: "an on-path attacker floods forged replies while real queries run: none accepted, each rejection counted by reason",
			Shows: "A reply is accepted only when ID, question, source address and port all match (RFC 5452 §9.1): a flood of forged " +
				"replies from a raw socket completes no query, each is counted by why it failed, and a matcher that checked only the ID would have been poisoned every time.",
			Run: runSpoofing,
		},
		{
			Name:    "dns/loss",
			Summary: "the server drops some queries and answers one late: retries with fresh IDs succeed, the late answer completes nothing",
			Shows: "Over UDP a lost query is noticed only by a timeout: the client retries with a fresh ID, every query is answered, " +
				"and the answer that comes back late for the abandoned ID is counted as late and completes nothing.",
			Run: runLoss,
		},
		{
			Name:       "dns/server-restart",
			HoldsState: true, // a row of who holds the state
			Summary:    "the server is stopped and started again between queries: the client's workflow carries on",
			Shows: "A stateless backend can be restarted under its clients: the server process is killed (SIGKILL, as a crash: no goodbye), " +
				"the query sent while it is down is refused by the kernel (ICMP port unreachable), retried with a fresh ID and answered by a new process " +
				"on the same port, and the workflow continues on the same client socket.",
			Run:   runRestart,
			Roles: roles,
		},
		{
			Name:       "dns/cookies",
			HoldsState: true, // a row of who holds the state
			Summary:    "DNS cookies (RFC 7873, RFC 9018): the server signs, the client carries 24 bytes, forgeries without them are refused",
			Shows: "The server keeps nothing per client — one secret — yet recognises its clients: it hands each a cookie hashed from the client's " +
				"cookie, a timestamp and its address, the client carries it in every query, answers without it are refused, bad cookies get BADCOOKIE, " +
				"and a restart loses nothing with the same secret and costs one BADCOOKIE round trip with a new one.",
			Run: runCookies,
		},
		{
			Name:       "dns/truncation",
			HoldsState: true, // a row of who holds the state
			Summary:    "an answer too big for the client's EDNS buffer comes back truncated (TC) over UDP; the client asks again over TCP",
			Shows: "UDP keeps the server stateless only while the answer fits: one too big for the client's advertised buffer comes back " +
				"with TC set, and the client retries over TCP — a handshake, the query, the answer, FIN each way: the stateless exchange becomes a connection the server holds, measured against a UDP-only answer.",
			Run: runTruncation,
		},
		{
			Name:    "dns/client-gone",
			Summary: "the client socket closes before its answer arrives: the kernel answers the server with ICMP port unreachable",
			Shows: "The server keeps no connection, so it cannot know the client left: its answer goes out, the write succeeds, " +
				"and only the client's kernel replies — ICMP port unreachable, because nobody is listening on that port any more.",
			Run: runClientGone,
		},
	}
}
