// Package tcpexp is statelab's tcp/ group: experiments in which the
// tcpstate engine, on raw sockets (tcpstate/rawtcp), talks to the Linux
// kernel's TCP in the lab's network namespace; the analysis that comments
// every packet of their captures; the group's summary; and the bulk
// transfer benchmark (statelab bench tcp).
//
// [Experiments] and [Summaries] list them explicitly; a program builds its
// lab.Catalogue from them. Each experiment body reads as its steps: set up
// (newLabRun: the stack, the capture), drive traffic, stop (the capture
// completed by the driver's records and commented), check, draw.
//
//	experiments.go    Experiments, Summaries: the group, listed
//	setup.go          what every experiment shares: the engine's configuration, the
//	                  seeded ISSs and ports, labRun (stack, capture, tracked
//	                  connections), stop, the states table, paths
//	kernelpeer.go     the kernel's side: a listener whose sockets arrive on a channel
//	                  (listenKernelBacklog: one with a listen() backlog of its own)
//	exp_*.go          the experiments, one per file, each a sequence of named steps
//	                  (tcp/syn-cookies: exp_syncookies.go, its verdicts in
//	                  exp_syncookies_report.go; tcp/keepalive: exp_keepalive.go,
//	                  keep-alive both ways and the user timeout;
//	                  tcp/nagle-delayed-ack:
//	                  exp_nagle.go, its checks and tables in exp_nagle_check.go
//	                  and exp_nagle_report.go)
//	cookie.go         what a Linux SYN cookie shows from outside: the MSS table and
//	                  index, the index difference of two cookies, TSval's option bits
//	netstat.go        /proc/net/netstat: the TcpExt counters of the lab's namespace
//	offload.go        TSO and GSO off on the namespace's lo (tcp/sack counts segments)
//	spoof.go          sendAs: a segment on loopback as if the kernel had sent it
//	                  (tcp/timestamps' old duplicate to the lab)
//	optlabel.go       SACK blocks (and, for a ladder that asks, timestamps) in labels
//	summary.go        the tcp/* summary: which experiment reached which of the 11 states
//	features.go       and which TCP feature it exercised: the metric convention
//	                  feature.<name> = 1, the known names, the features the
//	                  driver's records show on their own
//	bench.go          Bench: lab→kernel, kernel→lab and kernel→kernel bulk transfer
//
// The capture analysis, pure functions of the driver's records and the
// captured packets, tested on small inputs:
//
//	match.go          recMatcher: packets paired with the records; the capture's
//	                  completeness counted at the source
//	conversation.go   the capture's connections and Wireshark's relative sequence numbers
//	kernelstate.go    inferKernel: the kernel's state beside each segment, derived
//	                  from the segments in capture order
//	cookiekernel.go   cookieKernel: the same for a listener that answers with SYN
//	                  cookies, where a SYN leaves no socket behind
//	nagleround.go     tcp/nagle-delayed-ack's rounds read from the records: the
//	                  header, its ACK, the body, the response; their comments
//	transmissions.go  every transmission of a stretch of sequence space named,
//	                  the lab's (dropped and held copies too) and the kernel's
//	comments.go       the comments on every packet: the lab's state, the kernel's,
//	                  the ISSs, the transmissions, what the lab's link lost
//	ladder.go         a connection's ladder, as captured
//	plots.go          a connection's plots: time–sequence each way, cwnd, both states
package tcpexp
