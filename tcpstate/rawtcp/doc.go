// Package rawtcp puts the tcpstate engine on raw sockets against the
// Linux kernel's TCP, over loopback, in a network namespace the caller
// names: a [Stack] demultiplexes segments to connections and runs their
// timers on real time; a [Conn] is a net.Conn and a [Listener] a
// net.Listener, so standard library code (net/http, io.Copy) runs on the
// lab's engine unchanged.
//
// The link installs an nftables rule, turns on lo's accept_local and
// route_localnet while it is open (so lo takes the frames it puts on its
// queue) and sends raw segments, so it runs only in the network namespace
// LinkConfig.NetNS names — the caller's own,
// made for it (unshare -rn, ip netns exec, a container, statelab's
// sandbox) — and refuses any other, PID 1's (the host's) above all, with
// ErrNamespace:
//
//	ns, _ := rawtcp.CurrentNetNS() // in a namespace of the program's own
//	st, err := rawtcp.NewStack(rawtcp.StackConfig{Link: rawtcp.LinkConfig{NetNS: ns}})
//
// Fault injection is apart from the I/O, on [Conn.Faults]: hooks that drop,
// hold back or reorder a connection's segments on the link, a crash that
// forgets its TCB, hand-made segments. Every segment the stack sends or
// receives is recorded ([Record]) with the lab's state beside it, which is
// how captures get commented; [Probe] writes a kernel probe as a Go table
// of steps, packetdrill-like.
//
//	link.go        Link: the raw IPv4 socket, its BPF port filter, why it receives there
//	offload.go     sending on a packet socket with the checksum offloaded, and what lo needs for it
//	netns.go       the namespace guard: LinkConfig.NetNS, CurrentNetNS, ErrNamespace
//	rstfilter.go   the nftables OUTPUT rule that suppresses the kernel's RSTs
//	stack.go       Stack: demultiplexing, Dial, the CLOSED responder, records
//	conn.go        Conn: net.Conn on real time, CloseWrite, Abort, waiting on states
//	nodelay.go     Conn.SetNoDelay: Nagle off or on, as TCP_NODELAY on a kernel socket
//	listener.go    Listener: passive OPEN, a net.Listener
//	faults.go      Faults: send and receive hooks (drop, hold, park), Release, Crash, Inject
//	record.go      Record: one segment with the lab's state, for capture comments
//	probe.go       Probe: kernel probes as Go tables of steps
//	kernel.go      the kernel socket's state via sock_diag (or /proc/net/tcp)
//	kerneldump.go  KernelSockets: a sock_diag dump of one port's sockets,
//	               request sockets (SYN-RECEIVED) and a listener's backlog
package rawtcp
