package capture

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/sandbox"
)

func TestMain(m *testing.M) { sandbox.TestMain(m) }

// On lo a packet socket sees every packet twice; the capture must keep one
// copy of each, in order, and write them with their comments.
func TestCaptureRecordsEachLoopbackPacketOnce(t *testing.T) {
	for _, network := range []string{"udp4", "udp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "udp6" {
				addr = "[::1]:0"
			}
			srv, err := net.ListenPacket(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
			path := filepath.Join(t.TempDir(), "c.pcapng")
			c, err := Start(path, Options{Experiment: "test/capture", Keep: func(p *Packet) bool {
				m, ok := p.Decode()
				return ok && m.Involves(port)
			}})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := net.Dial(network, srv.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			const n = 20
			buf := make([]byte, 64)
			for i := range n {
				if _, err := fmt.Fprintf(cl, "datagram %d", i); err != nil {
					t.Fatal(err)
				}
				if _, _, err := srv.ReadFrom(buf); err != nil { // delivered: it crossed lo
					t.Fatal(err)
				}
			}
			pkts, err := c.Stop()
			if err != nil {
				t.Fatal(err)
			}
			if len(pkts) != n {
				t.Fatalf("captured %d packets, want %d (one per datagram)", len(pkts), n)
			}
			for i, p := range pkts {
				m, _ := p.Decode()
				if want := fmt.Sprintf("datagram %d", i); string(m.Payload) != want {
					t.Errorf("packet %d payload %q, want %q", i, m.Payload, want)
				}
				p.Comment(fmt.Sprintf("sent %d", i))
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Packets) != n || len(f.Packets[n-1].Comments) != 1 || f.Packets[n-1].Comments[0] != fmt.Sprintf("sent %d", n-1) {
				t.Fatalf("file holds %d packets; last comments %q", len(f.Packets), f.Packets[len(f.Packets)-1].Comments)
			}
		})
	}
}

// Close writes a valid file even when Stop was never called (an experiment
// that failed half-way).
func TestCloseWithoutStopWritesValidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	c, err := Start(path, Options{Experiment: "test/abandoned"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatal(err)
	}
}

// A burst far larger than a socket's default receive buffer (which a
// rootless lab cannot raise) is captured whole: the ring is not capped by
// net.core.rmem_max.
func TestCaptureKeepsABurstWhole(t *testing.T) {
	c, cl := udpCapture(t, Options{})
	payload := make([]byte, 1200)
	const n = 3000 // 3.6 MB: 17 times the 208 KiB default buffer
	for range n {
		if _, err := cl.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	pkts, err := c.StopWhen(func(p []*Packet) bool { return len(p) >= n })
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != n || c.Drops() != 0 {
		t.Errorf("captured %d of %d datagrams, kernel dropped %d", len(pkts), n, c.Drops())
	}
}

// A reader that gets no CPU for a while (two CPU hogs beside the lab) must
// not lose a trickle of packets: the kernel retires a block blockTimeout
// after its first packet, so the ring has to outlast the stall in blocks,
// not only in bytes. The stall is made by holding the lock the reader takes
// after each packet; the old ring (32 blocks, 1 ms) dropped most of this.
func TestCaptureOutlastsAStarvedReader(t *testing.T) {
	c, cl := udpCapture(t, Options{})
	const n = 150 // 150 × 2 ms: 300 ms of trickle, a block or more every 8 ms
	c.mu.Lock()   // the reader stalls at its next packet, as if descheduled
	for range n {
		if _, err := cl.Write([]byte("trickle")); err != nil {
			c.mu.Unlock()
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // pacing the traffic, not waiting for anything
	}
	c.mu.Unlock()
	pkts, err := c.StopWhen(func(p []*Packet) bool { return len(p) >= n })
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != n || c.Drops() != 0 {
		t.Errorf("captured %d of %d datagrams, kernel dropped %d", len(pkts), n, c.Drops())
	}
}

// Stop reads the ring to its end: every packet sent before Stop is in the
// result, even the ones in the block the kernel had not yet handed over.
func TestStopReadsTheRingToItsEnd(t *testing.T) {
	c, cl := udpCapture(t, Options{Quiet: time.Nanosecond})
	const n = 500
	for range n {
		if _, err := cl.Write([]byte("burst")); err != nil {
			t.Fatal(err)
		}
	}
	pkts, err := c.Stop() // at once: the last block is still the kernel's
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != n {
		t.Errorf("captured %d of %d datagrams sent before Stop", len(pkts), n)
	}
}

// udpCapture starts a capture of one UDP flow on loopback, and the client
// socket of that flow; both end with the test.
func udpCapture(t *testing.T, opts Options) (*Capture, net.Conn) {
	t.Helper()
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
	opts.Keep = func(p *Packet) bool {
		m, ok := p.Decode()
		return ok && m.Involves(port)
	}
	c, err := Start(filepath.Join(t.TempDir(), "udp.pcapng"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl, err := net.Dial("udp4", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return c, cl
}
