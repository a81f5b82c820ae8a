package tcpstate_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// Two endpoints shake hands; each segment is printed as it crosses, with
// the sender's TCB beside it.
func Example_handshake() {
	client := tcpstate.NewEndpoint(tcpstate.Config{ISS: func() tcpstate.Seq { return 100 }, DisableWindowScale: true, RecvBufferSize: 8192})
	server := tcpstate.NewEndpoint(tcpstate.Config{ISS: func() tcpstate.Seq { return 300 }, DisableWindowScale: true, RecvBufferSize: 8192})
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
	// client --> server SYN seq=100 win=8192 len=0 mss=1460
	//     SYN-SENT snd.una=100 snd.nxt=101 snd.wnd=0 rcv.nxt=0 rcv.wnd=8192 cwnd=0 ssthresh=0
	// client <-- server SYN|ACK seq=300 ack=101 win=8192 len=0 mss=1460
	//     SYN-RECEIVED snd.una=300 snd.nxt=301 snd.wnd=8192 rcv.nxt=101 rcv.wnd=8192 cwnd=0 ssthresh=0
	// client --> server ACK seq=101 ack=301 win=8192 len=0
	//     ESTABLISHED snd.una=101 snd.nxt=101 snd.wnd=8192 rcv.nxt=301 rcv.wnd=8192 cwnd=4380 ssthresh=1073741824
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

// A kernel probe as a Go table: connect to a kernel listener, inject a RST
// inside the kernel's window but not at its RCV.NXT, and expect RFC 5961's
// challenge ACK (an ACK of SND.NXT) instead of an abort. It runs inside the
// lab's network namespace (the package's tests enter it).
func ExampleProbe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stack, err := tcpstate.NewStack(tcpstate.StackConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	kernel := netip.MustParseAddrPort(ln.Addr().String())

	probe := tcpstate.Probe{
		{Name: "connect", Call: func(r *tcpstate.ProbeRun) (err error) {
			r.Conn, err = r.Stack.Dial(r.Ctx, kernel, &tcpstate.ConnOptions{Observe: true})
			return err
		}},
		{Name: "RST in window, not at RCV.NXT", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
			return tcpstate.Segment{Seq: t.SndNxt.Add(1000), Flags: tcpstate.RST}
		}},
		{Name: "challenge ACK", Expect: &tcpstate.Expect{Flags: tcpstate.ACK,
			Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
				if s.Ack != t.SndNxt {
					return fmt.Errorf("ack %d, want SND.NXT %d", s.Ack, t.SndNxt)
				}
				return nil
			}}},
		{Name: "still connected", Call: func(r *tcpstate.ProbeRun) error {
			if st := r.Conn.State(); st != tcpstate.Established {
				return fmt.Errorf("lab in %v", st)
			}
			return nil
		}},
	}
	run := &tcpstate.ProbeRun{Ctx: ctx, Stack: stack}
	err = probe.Run(run)
	for _, res := range run.Log {
		fmt.Printf("%-30s ok=%v\n", res.Step, res.OK)
	}
	fmt.Println("error:", err)
	// Output:
	// connect                        ok=true
	// RST in window, not at RCV.NXT  ok=true
	// challenge ACK                  ok=true
	// still connected                ok=true
	// error: <nil>
}
