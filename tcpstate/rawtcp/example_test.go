package rawtcp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// A kernel probe as a Go table: connect to a kernel listener, inject a RST
// inside the kernel's window but not at its RCV.NXT, and expect RFC 5961's
// challenge ACK (an ACK of SND.NXT) instead of an abort. It runs in a
// network namespace of its own (the package's tests run in one the lab's
// sandbox makes, as `unshare -rn` would), which it names to the stack.
func ExampleProbe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns, err := rawtcp.CurrentNetNS()
	if err != nil {
		fmt.Println(err)
		return
	}
	stack, err := rawtcp.NewStack(rawtcp.StackConfig{Link: rawtcp.LinkConfig{NetNS: ns}})
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

	probe := rawtcp.Probe{
		{Name: "connect", Call: func(r *rawtcp.ProbeRun) (err error) {
			r.Conn, err = r.Stack.Dial(r.Ctx, kernel, &rawtcp.ConnOptions{Observe: true})
			return err
		}},
		{Name: "RST in window, not at RCV.NXT", Inject: func(t *tcpstate.TCB) tcpstate.Segment {
			return tcpstate.Segment{Seq: t.SndNxt.Add(1000), Flags: tcpstate.RST}
		}},
		{Name: "challenge ACK", Expect: &rawtcp.Expect{Flags: tcpstate.ACK,
			Check: func(s *tcpstate.Segment, t *tcpstate.TCB) error {
				if s.Ack != t.SndNxt {
					return fmt.Errorf("ack %d, want SND.NXT %d", s.Ack, t.SndNxt)
				}
				return nil
			}}},
		{Name: "still connected", Call: func(r *rawtcp.ProbeRun) error {
			if st := r.Conn.State(); st != tcpstate.Established {
				return fmt.Errorf("lab in %v", st)
			}
			return nil
		}},
	}
	run := &rawtcp.ProbeRun{Ctx: ctx, Stack: stack}
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

// The lab's engine serves HTTP: the listener is a net.Listener and its
// connections net.Conns, so net/http runs on them unchanged, here answering
// the kernel's HTTP client.
func ExampleListener() {
	ns, err := rawtcp.CurrentNetNS()
	if err != nil {
		fmt.Println(err)
		return
	}
	stack, err := rawtcp.NewStack(rawtcp.StackConfig{Link: rawtcp.LinkConfig{NetNS: ns}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stack.Close()
	ln, err := stack.Listen(0, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", r.URL.Path)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/lab")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello from /lab
}
