// Package dnsexp is statelab's dns/* experiments on udpdns: the lab layer
// over the protocol library. It holds the experiments, their capture
// analysis, the bench and the server process role; udpdns and
// udpdns/dnsfault know nothing of it.
//
// Every experiment is a sequence of named steps: set up (a server serving
// the built-in zone wrapped in dnsfault middleware, or server processes;
// then the rig), drive traffic, collect (the capture stopped once it holds
// what every source counted — the client's queries, the server's, the
// forger's or the tally files' datagrams, the kernel's ICMP messages —
// checked before anything else), judge the callers and counters, read the
// capture back (each packet commented with what it is and the client's
// own verdict on it; ladders drawn from captured packets alone), report.
// Every random choice comes from the run's seed: the client's IDs one
// stream per query, the server's draws one stream per query and fault,
// the forger's guesses one stream per query; first attempts leave in
// index order.
//
// Files:
//
//	experiments.go  Experiments: the explicit list
//	setup.go        the group's setup, once: serveLab, rig (ICMP baseline,
//	                capture, client with verdicts), ask/askAll, collect;
//	                firstSends (first attempts in order), queryRand
//	complete.go     completeness: what the sources counted (wireWant),
//	                the kernel's ICMP count, stopComplete
//	packets.go      reading DNS datagrams and ICMP errors back from a
//	                capture; commentRest for packets no step drew
//	verdicts.go     the client's verdict on each datagram, for comments
//	fields.go       each comment's [statelab …] block (lab/annotate): side,
//	                kind, ID, query, attempt, verdict and reason
//	plots.go        the client's events timed: queries in flight, replies' fates
//	idmatching.go   dns/id-matching
//	spoofing.go     dns/spoofing: the attacker middleware, the replay
//	                through an ID-only matcher
//	forge.go        the raw-socket forger and the forgery kinds
//	loss.go         dns/loss: the server's plan (drop, hold) as dnsfault.Act
//	restart.go      dns/server-restart
//	clientgone.go   dns/client-gone
//	cookies.go      dns/cookies: the forger of cookie-less answers, the
//	                probes with bad cookies, the restarts, the judging
//	cookiewire.go   dns/cookies' capture: each cookie described, the
//	                ladder, the holding row
//	truncation.go   dns/truncation: TC over UDP, the TCP retry segment by
//	                segment, the costs and the holding row
//	role.go         the server process role (zone, faults, tally file)
//	bench.go        statelab bench dns: the client against dnsperf
//	benchfunc.go    the bench's udpdns client, driven as dnsperf drives its
//	                socket: each query sent from the last one's callback
//
// Each read* step (readIDMatching, readSpoofing, readLoss, readRestart,
// readClientGone, readCookies, readTruncation) is a function of the packets and has table-driven tests
// on small captures built in the test (frames_test.go).
package dnsexp
