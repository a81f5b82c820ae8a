package tcpstate_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// Two endpoints shake hands; each segment is printed as it crosses, with
// the sender's TCB beside it. Both offer SACK and timestamps (on by
// default), so both are on; the timestamp offsets are fixed here (random
// by default).
func Example_handshake() {
	client := tcpstate.NewEndpoint(tcpstate.Config{ISS: func() tcpstate.Seq { return 100 }, DisableWindowScale: true, RecvBufferSize: 8192,
		TSOffset: func() uint32 { return 5000 }})
	server := tcpstate.NewEndpoint(tcpstate.Config{ISS: func() tcpstate.Seq { return 300 }, DisableWindowScale: true, RecvBufferSize: 8192,
		TSOffset: func() uint32 { return 9000 }})
	var out tcpstate.Output
	now := time.Duration(0)
	server.OpenPassive(now, 80, &out)
	out.Reset()
	client.OpenActive(now, 4000, 80, &out)

	deliver := func(from, to *tcpstate.Endpoint, arrow string) {
		segs := append([]tcpstate.Segment(nil), out.Segments...)
		out.Reset()
		for _, s := range segs {
			fmt.Printf("%s %s\n    %s\n", arrow, s.String(), from)
			to.HandleSegment(now, &s, &out)
		}
	}
	deliver(client, server, "client --> server")
	deliver(server, client, "client <-- server")
	deliver(client, server, "client --> server")
	fmt.Println(client.State(), server.State())
	// Output:
	// client --> server SYN seq=100 win=8192 len=0 mss=1460 sackok ts=5000/0
	//     SYN-SENT snd.una=100 snd.nxt=101 snd.wnd=0 rcv.nxt=0 rcv.wnd=8192 cwnd=0 ssthresh=0
	// client <-- server SYN|ACK seq=300 ack=101 win=8192 len=0 mss=1460 sackok ts=9000/5000
	//     SYN-RECEIVED snd.una=300 snd.nxt=301 snd.wnd=8192 rcv.nxt=101 rcv.wnd=8192 cwnd=0 ssthresh=0 ts.recent=5000
	// client --> server ACK seq=101 ack=301 win=8192 len=0 ts=5000/9000
	//     ESTABLISHED snd.una=101 snd.nxt=101 snd.wnd=8192 rcv.nxt=301 rcv.wnd=8192 cwnd=4380 ssthresh=1073741824 ts.recent=9000
	// ESTABLISHED ESTABLISHED
}

func ExampleDiagramEdges() {
	for _, e := range tcpstate.DiagramEdges()[:3] {
		fmt.Printf("%s -> %s: %s\n", e.From, e.To, strings.Join(e.Labels, "; "))
	}
	// Output:
	// CLOSED -> LISTEN: passive OPEN / create TCB
	// CLOSED -> SYN-SENT: active OPEN / snd SYN
	// LISTEN -> SYN-RECEIVED: rcv SYN / snd SYN,ACK
}

func ExampleState_String() {
	fmt.Println(tcpstate.SynSent, tcpstate.SynSent.Synchronized(), tcpstate.TimeWait.Synchronized())
	fmt.Println(tcpstate.SYN|tcpstate.ACK, tcpstate.FIN|tcpstate.ACK)
	// Output:
	// SYN-SENT false true
	// SYN|ACK FIN|ACK
}

func ExampleSeq() {
	a, b := tcpstate.Seq(0xfffffff0), tcpstate.Seq(0x10)
	fmt.Println(a.LessThan(b), a.Size(b), a.Add(0x20) == b)
	// Output: true 32 true
}
