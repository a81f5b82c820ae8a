package httpexp

import "github.com/statelab/statelab/lab"

// Experiments returns the http/ experiments, for a lab.Catalogue. Nothing
// is registered by importing the package. http/mechanisms prints the
// comparison table the others fill in the same run, and http/signed-token,
// after it in name order, prints it again with its own column filled.
func Experiments() []lab.Experiment {
	return []lab.Experiment{
		{
			Name:    "http/calculator",
			Summary: "((10 + 5) × 2) − 3 against a stateless, a stateful and a store-backed server: numbers and bytes on the wire",
			Shows: "The same calculation costs the stateless client 6 numbers (it carries the running value) and the " +
				"stateful and store-backed clients 4 (the server remembers last_result behind a session cookie, in memory or " +
				"in SQLite), measured from the capture.",
			Run: runCalculator,
		},
		{
			Name:       "http/crash",
			HoldsState: true, // a row of who holds the state
			Summary:    "kill -9 the server between two requests of a workflow: stateful loses the session, stateless and store-backed lose nothing",
			Shows: "A real server process is killed with SIGKILL mid-workflow and restarted on the same address: the stateful " +
				"server's session is gone (the next use_last is a 401), the stateless client carries on, and the store-backed " +
				"server (SQLite, and Redis when installed) continues the workflow with its history intact.",
			Run:   runCrash,
			Roles: roles,
		},
		{
			Name:    "http/features",
			Summary: "history, undo and stats on a stateful and a store-backed session; the stateless server cannot offer them",
			Shows: "A stateful session keeps history, undo and stats (operations, most used op) because the server " +
				"remembers, and a store-backed one (SQLite) keeps the same in its store; undo with an empty history is a 409 " +
				"that changes nothing; the stateless server answers the same requests with 404 \"stateless\".",
			Run: runFeatures,
		},
		{
			Name:    "http/load-balancing",
			Summary: "three backends behind a balancer: round-robin breaks stateful sessions, sticky cookies keep them, a store makes stickiness unneeded",
			Shows: "Behind a ReverseProxy balancer (and HAProxy when installed) round-robin sends a stateful session's requests " +
				"to backends that never saw it (measured failure rate), sticky-by-cookie keeps every workflow whole until a backend " +
				"dies and takes exactly its sessions with it, and store-backed backends need no stickiness and survive losing one.",
			Run: runLoadBalancing,
		},
		{
			Name:    "http/mechanisms",
			Summary: "the four ways to add state to stateless HTTP: cookie, URL rewriting, hidden form field, server-side session data",
			Shows: "The same session token rides in a Cookie header, in the URL (?session=), or in a hidden form field, each " +
				"visible in the capture; behind all three the state itself is server-side session data the request never " +
				"carries. It ends with the stateless-vs-stateful table, filled from this run (http/signed-token, after it in name order, " +
				"prints it again with the signed token's column).",
			Run: runMechanisms,
		},
		{
			Name:       "http/signed-token",
			HoldsState: true, // a row of who holds the state
			Summary:    "the session in an HMAC-signed token the client carries: survives kill -9 of every backend and round-robin with no store; bad tokens refused; the costs measured",
			Shows: "The calculator's session (last result, history) rides in a JWT the client carries (HS256, a secret shared by three " +
				"backend processes): the workflow survives kill -9 of every backend and round-robin with no store and no stickiness; " +
				"tampered, forged, expired and transplanted tokens get 401 and change nothing; and the costs, measured from the " +
				"capture: bytes per request against a cookie id, the token growing with the history, and a logged-out token that " +
				"still works unless a denylist — state again — refuses it.",
			Run:   runSignedToken,
			Roles: roles,
		},
		{
			Name:       "http/store-failover",
			HoldsState: true, // a row of who holds the state
			Summary:    "the store fails too: a Redis primary with two replicas and three Sentinels, killed or cut off mid-workflow; what async, WAIT and min-replicas-to-write lose",
			Shows: "Three stateless backends keep sessions in a Redis group they reach through go-redis's Sentinel client. The " +
				"primary is killed with its replication link held: asynchronous replication loses the writes it acknowledged, " +
				"replica-confirmed writes (WAIT 1) refuse them instead and lose none, at a measured latency; cut off from the " +
				"Sentinels, the old primary acknowledges a write that is discarded when it returns as a replica, unless " +
				"min-replicas-to-write refuses it. Every committed operation is checked against the final session.",
			Run:   runStoreFailover,
			Roles: roles,
		},
	}
}
