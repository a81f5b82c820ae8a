// Package httpexp is the lab's http/ group: the experiments that measure
// what the httpstate servers keep, their capture analysis, the seed's
// stateless-vs-stateful table, the server process http/crash kills, and
// `statelab bench http`.
//
// Experiments returns the group as a list (nothing registers itself). Each
// experiment is a short sequence of named steps: set up (setUp and the
// rig's servers, stores and capture), drive traffic (a script played
// through a transcript), stop the capture once it holds every exchange the
// servers or clients counted (stopComplete: a short capture fails that
// check alone), read the exchanges back from the capture, comment every
// request and reply, draw the ladder as captured, check.
//
//	experiments.go    the list: names, summaries, what each shows
//	setup.go          the setup every experiment shares (rig): SQLite dir,
//	                  servers, Redis, HAProxy, server processes, the capture
//	child.go          the server process role (Experiment.Roles) and child
//	calculator.go     http/calculator: numbers and bytes on the wire
//	crash.go          http/crash: kill -9 between two requests
//	features.go       http/features: history, undo, stats
//	loadbalancing.go  http/load-balancing: round-robin, sticky, store-backed
//	backends.go       its balancer↔backend legs, read from the capture
//	mechanisms.go     http/mechanisms: cookie, URL, hidden field, server side
//	exp_token.go      http/signed-token: the session in a signed token, its
//	                  backends, balancer and clients
//	exp_token_play.go its plays: kill -9 mid-workflow, bad tokens, logout
//	                  without and with a denylist, the cookie-id baseline
//	exp_token_wire.go its capture analysis: checks, the token's growth,
//	                  bytes against a cookie id, its column and holding row
//	exp_failover.go   http/store-failover: a Redis group behind Sentinel, its
//	                  primary killed (link held) or cut off; the four cases
//	failover_group.go the group's processes (127.0.K.2-7), the observer of
//	                  the Sentinels' events, each node's role over time
//	failover_fault.go held links and partitions: nftables drop rules
//	failover_flow.go  the client's workflow, 503s sent again, the final
//	                  session matched against the committed operations
//	failover_capture.go the Redis legs' comments: roles, RESP summaries
//	failover_report.go its checks, tables (actors as columns), the
//	                  "who holds the state" row and the table's cells
//	failover_evidence.go the comparison table's "store failure" row, which
//	                  http/mechanisms measures (it runs first)
//	evidence.go       the comparison table, kept in the run's state
//	                  (lab.RunState) and printed by http/mechanisms
//	exchanges.go      HTTP/1.1 exchanges parsed out of a capture; Numbers
//	complete.go       what the capture should hold, counted at the source
//	transcript.go     a script played, its packets commented, its ladder
//	segments.go       a comment on every packet the analysis left bare: which
//	                  connection, which way, what the segment does
//	plots.go          requests per backend and the state after each, as plots
//	format.go         how the experiments word what they saw
//	bench.go          Bench: the calculator workflow per server kind (and
//	                  StartSentinelGroup for the Sentinel-backed kinds)
package httpexp
