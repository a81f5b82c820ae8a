// Package tcptest is a scripted peer for table-driven tests of a
// [tcpstate.Endpoint], in the spirit of gVisor's testing/context and x/net
// quic's testConn: the test plays the remote TCP, one segment at a time, on
// a simulated clock, and a test reads like a ladder diagram:
//
//	p := tcptest.New(t, tcpstate.Config{})
//	p.Reach(tcpstate.Established)                // the usual handshake
//	p.Send(tcpstate.FIN|tcpstate.ACK, 301, 101)  // the peer closes
//	p.Want(tcpstate.ACK, 101, 302)               // the endpoint acknowledges
//	p.WantState(tcpstate.CloseWait)
//
// The same steps are values ([Step]) for tables: [RunCases] reaches each
// case's starting state on a fresh endpoint and runs its steps.
//
// The numbers are fixed, as in the examples of RFC 9293: the endpoint is
// port [LocalPort] with ISS [LocalISS] (unless Config.ISS says otherwise),
// the peer is port [PeerPort] with ISS [PeerISS], advertising [PeerWindow].
// The clock starts at one second and moves only when the test says so
// ([Peer.Advance], [Peer.Fire]); the endpoint's timestamp clock reads it in
// milliseconds (TSval 1000 at the start, [LocalTSOffset]). The peer offers
// no options but MSS unless [Peer.Negotiate] makes it offer SACK-permitted
// and timestamps and stamp its segments ([SACKOK], [TS] and [SACK] set or
// check them one segment at a time).
//
// Every state change the endpoint reports is checked against
// [tcpstate.Allowed]; a change that is not a row of the state table fails
// the test. When an expectation fails, the message holds the expectation,
// what came instead and the ladder so far: every segment each way, the
// user calls, the timers, and the endpoint's state beside each.
//
//	tcptest.go  Peer: the peer's segments (Send), expectations (Want,
//	            WantExact, WantNone, WantState, WantErr), user calls, time
//	            (Advance, Fire), Reach, the ladder
//	segment.go  Opt: text, length, window, options and ports of a segment
//	steps.go    Step, the Peer's methods as values; Case and RunCases
package tcptest
