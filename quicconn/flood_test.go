package quicconn

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A flood of Initials from spoofed addresses, each a complete ClientHello
// under a connection ID of its own, costs the server what a real
// client's would until it asks for a Retry: past HandshakeRate it keeps no
// state for an address it has not validated, the handshakes in progress
// stay under MaxHandshakes, the tracer forgets every connection that ended,
// and a real client still connects.
func TestQUICServerHoldsInitialFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 20,000 Initials")
	}
	const (
		flood         = 20000
		sources       = 200
		maxHandshakes = 300
		heapLimit     = 200 << 20
	)
	tr := &Tracer{TuplesOnly: true, Forget: true}
	var (
		logMu sync.Mutex
		logs  []string
	)
	logf := func(f string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		logs = append(logs, fmt.Sprintf(f, a...))
	}
	// Each handshake the gate admits is a full TLS handshake, milliseconds
	// of the race detector's CPU: at 100 a second the admitted ones ate the
	// share a loaded machine gives the server, which then read the flood
	// below the rate (no Retry at all) and answered no real client. At 20 a
	// second the server keeps the CPU to read the flood and answer Retry.
	const rate = 20
	born := time.Now()
	srv, err := NewServer(ServerConfig{Tracer: tr, Logf: logf, HandshakeRate: rate, MaxHandshakes: maxHandshakes, HandshakeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	initial := spoofedInitial(t)

	// Send from many loopback addresses and ports, as a spoofer would.
	conns := make([]*net.UDPConn, 0, sources)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range sources {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)}), 0)))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	to := net.UDPAddrFromAddrPort(srv.Addr)
	start := time.Now()
	var peak uint64
	var ms runtime.MemStats
	for i := range flood {
		if _, err := conns[i%sources].WriteToUDP(under(t, initial), to); err != nil {
			t.Fatalf("Initial %d: %v", i, err)
		}
		if i%1000 == 999 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			if st := srv.Stats(); st.Handshaking > maxHandshakes {
				t.Fatalf("after %d Initials: %d handshakes in progress, cap %d", i+1, st.Handshaking, maxHandshakes)
			}
		}
	}
	st := srv.Stats()
	lived := time.Since(born)
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	rss := vmRSS(t)
	t.Logf("%d Initials in %v: %+v, heap in use at most %d MiB, RSS %d MiB, %d traces", flood, time.Since(start).Round(time.Millisecond), st, peak>>20, rss>>20, len(tr.Conns()))
	if raceEnabled {
		rss = 0 // the race detector's shadow memory is resident too
	}
	if peak > heapLimit || rss > heapLimit {
		t.Errorf("heap in use reached %d MiB, RSS %d MiB, limit %d MiB", peak>>20, rss>>20, heapLimit>>20)
	}
	// What the server saw is judged, not what was sent: on a busy machine
	// it reads (and so sees the flood) at whatever pace it is scheduled,
	// and a stretch of gateQuiet under the rate is, rightly, the end of one
	// flood and the next its return. Past the rate it keeps no state: the
	// token bucket (a burst of rate, rate a second since the server
	// started) bounds the connections it created, however many Initials
	// reached it; and it logs the flood's start and end, never a line an
	// Initial.
	if st.Retried == 0 {
		t.Errorf("no Retry packet for %d Initials: the flood did not reach the server's limit (%+v)", flood, st)
	}
	if bound := int64(rate * (1 + lived.Seconds())); st.Created > bound {
		t.Errorf("%d connections created in %v, more than the %d a rate of %d a second allows (%+v)", st.Created, lived.Round(time.Millisecond), bound, rate, st)
	}
	logMu.Lock()
	if err := floodLogged(logs, time.Since(born)); err != nil {
		t.Error(err)
	}
	logMu.Unlock()

	// Every handshake the flood started ends (HandshakeTimeout), and with
	// it the connection's trace.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range tr.Conns() {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("a spoofed handshake's trace is still open: %+v, %d traces", srv.Stats(), len(tr.Conns()))
		}
	}
	if n, st := len(tr.Conns()), srv.Stats(); n > st.Handshaking+st.Open {
		t.Errorf("the tracer holds %d traces for %d live connections (%+v)", n, st.Handshaking+st.Open, st)
	}

	// A real client connects and downloads.
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	if err != nil {
		t.Fatalf("a real client after the flood: %v (%+v)", err, srv.Stats())
	}
	defer cl.Close()
	if n, sum, err := cl.Download(ctx, 10000, nil); err != nil || n != 10000 || sum != PatternSum(10000) {
		t.Fatalf("download after the flood: %d bytes, %v", n, err)
	}
}

// The cap on handshakes in progress holds even below the rate: past
// MaxHandshakes an Initial gets a Retry, and a client that validated its
// address is refused until a slot comes back, when a handshake ends.
func TestQUICServerCapsHandshakesInProgress(t *testing.T) {
	const maxHandshakes = 20
	tr := &Tracer{TuplesOnly: true, Forget: true}
	srv, err := NewServer(ServerConfig{Tracer: tr, HandshakeRate: 1_000_000, MaxHandshakes: maxHandshakes, HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	initial := spoofedInitial(t)
	// One Initial at a time, each from a port of its own and answered
	// before the next, so none is lost to a full socket buffer and the
	// first answer on the port is the server's reply to it.
	buf := make([]byte, 2048)
	for i := range 2 * maxHandshakes {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteToUDP(under(t, initial), net.UDPAddrFromAddrPort(srv.Addr)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			t.Fatalf("no answer to Initial %d: %v (%+v)", i, err, srv.Stats())
		}
		if retry := buf[0]&0xf0 == 0xf0; retry != (i >= maxHandshakes) {
			t.Fatalf("Initial %d answered with a Retry: %t; want one only past %d in progress (%+v)", i, retry, maxHandshakes, srv.Stats())
		}
	}
	if st := srv.Stats(); st.Handshaking != maxHandshakes || st.Retried != maxHandshakes {
		t.Errorf("%+v: want %d in progress and %d Retry packets", st, maxHandshakes, maxHandshakes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err = Dial(short, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	cancelShort()
	if err == nil || srv.Stats().Refused == 0 {
		t.Fatalf("a client while %d handshakes are in progress: %v, %+v; want refused", maxHandshakes, err, srv.Stats())
	}
	for _, c := range tr.Conns() { // the spoofed handshakes time out
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("handshakes still in progress: %+v", srv.Stats())
		}
	}
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	if err != nil {
		t.Fatalf("a client once the handshakes ended: %v (%+v)", err, srv.Stats())
	}
	cl.Close()
}

// floodLogged checks the gate's log of a flood over lived: it says Retry
// is on first, then alternates between its end and its return (each end a
// quiet stretch of gateQuiet), so at most 1 + 2 lines a gateQuiet.
func floodLogged(logs []string, lived time.Duration) error {
	if len(logs) == 0 {
		return fmt.Errorf("the flood logged nothing, want a line that says Retry is on")
	}
	if most := 1 + 2*int(lived/gateQuiet); len(logs) > most {
		return fmt.Errorf("the flood logged %d lines in %v, more than %d (one line a flood's start or end): %q", len(logs), lived.Round(time.Millisecond), most, logs)
	}
	for i, l := range logs {
		want := "Retry first"
		if i%2 == 1 {
			want = "back under the limits"
		}
		if !strings.Contains(l, want) {
			return fmt.Errorf("line %d of the flood's log is %q, want one that says %q (the gate's on and off in turn): %q", i, l, want, logs)
		}
	}
	return nil
}

// vmRSS is the process's resident set size (VmRSS of /proc/self/status),
// in bytes; 0 where there is no /proc.
func vmRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	return 0
}

// spoofedInitial captures a client's Initial to send again under fresh
// connection IDs.
func spoofedInitial(t *testing.T) *SpoofedInitial {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := CaptureInitial(ctx, ALPN)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// under is s under a new connection ID, or the test's end.
func under(t *testing.T, s *SpoofedInitial) []byte {
	d, err := s.Under()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The flood's log is judged by the gate's rule: Retry on first, then off
// and on in turn, no more lines than quiet stretches allow.
func TestFloodLogged(t *testing.T) {
	on := "more than 100 new handshakes a second (or 300 in progress): clients must validate their address with a Retry first"
	off := "no Retry needed for 5s: handshakes back under the limits (218 Retry packets sent so far)"
	tests := []struct {
		name  string
		logs  []string
		lived time.Duration
		ok    bool
	}{
		{"one flood: one line", []string{on}, 20 * time.Second, true},
		{"a slow reader's flood ends and returns", []string{on, off, on}, 44 * time.Second, true},
		{"nothing logged", nil, 20 * time.Second, false},
		{"off before on", []string{off, on}, 20 * time.Second, false},
		{"on twice in a row", []string{on, on}, 20 * time.Second, false},
		{"more lines than quiet stretches allow", []string{on, off, on, off, on}, 9 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := floodLogged(tt.logs, tt.lived); (err == nil) != tt.ok {
				t.Errorf("floodLogged(%d lines, %v) = %v, want ok %v", len(tt.logs), tt.lived, err, tt.ok)
			}
		})
	}
}

// Any datagram is opened or refused with an error, never a panic, and one
// that opens reseals to a datagram of the same size.
func FuzzOpenSpoofable(f *testing.F) {
	hdr := []byte{0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x44, 0xd0}
	f.Add(append(hdr, make([]byte, 1200)...))
	f.Add([]byte{0xc0, 0, 0, 0, 1, 255})
	f.Add(append([]byte{0xc0, 0, 0, 0, 1, 20}, make([]byte, 1200)...))
	f.Fuzz(func(t *testing.T, d []byte) {
		s, err := OpenSpoofable(d)
		if err != nil {
			return
		}
		out, err := s.Under()
		if err != nil || len(out) != len(d) {
			t.Fatalf("resealed %d bytes of %d: %v", len(out), len(d), err)
		}
	})
}
