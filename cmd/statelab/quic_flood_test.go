package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/subproc"
	"github.com/statelab/statelab/quicconn"
)

// Issue 16's acceptance, against the real `statelab quic serve` process
// with its default limits: 20,000 spoofed full-size Initials, each a whole
// ClientHello under a connection ID of its own, sent from 200 loopback
// addresses (127.1.x.y, any port: sources a spoofer picks; without raw
// sockets this is as spoofed as loopback allows), leave the process's
// peak resident set (VmHWM) under 200 MiB, the server logs the flood (not
// each Initial), and a real client then connects and downloads.
func TestQUICServeProcessHoldsAFloodOfSpoofedInitials(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 20,000 Initials to a quic serve process")
	}
	const (
		sources  = 200
		rssLimit = 200e6 // bytes: the 200 MB
	)
	const flood = 20000
	if raceEnabled {
		// A load and memory acceptance: the race detector makes quic
		// serve several times slower and its memory several times larger
		// (2,000 Initials grew a race build by 586 MB and held the real
		// client off past its dial timeout). .ci/run runs this test
		// without -race.
		t.Skip("a load and memory acceptance, run without -race (.ci/run does)")
	}
	logFile := filepath.Join(t.TempDir(), "quic-serve.log")
	startCtx, cancelStart := context.WithTimeout(context.Background(), 30*time.Second)
	srv, err := subproc.Start(startCtx, quicServeRole, logFile, "--addr", "127.0.0.1:0")
	cancelStart()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Stop(10 * time.Second)
		}
	}
	defer stop()
	addr, err := netip.ParseAddrPort(srv.Ready)
	if err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()
	before := procStatusKB(t, pid, "VmRSS")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	initial, err := quicconn.CaptureInitial(ctx, quicconn.ALPN)
	if err != nil {
		t.Fatal(err)
	}
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
	to := net.UDPAddrFromAddrPort(addr)
	start := time.Now()
	for i := range flood {
		d, err := initial.Under()
		if err != nil {
			t.Fatal(err)
		}
		if len(d) < quicconn.MinInitialSize {
			t.Fatalf("a spoofed Initial of %d bytes, want a full-size one", len(d))
		}
		if _, err := conns[i%sources].WriteToUDP(d, to); err != nil {
			t.Fatalf("Initial %d: %v", i, err)
		}
	}
	sent := time.Since(start)

	// A real client, right after the flood.
	code, out, errOut := run("quic", "get", "--insecure", "--timeout", "60s", "-o", "-", "https://"+addr.String()+"/bytes/100000")
	peak, now := procStatusKB(t, pid, "VmHWM"), procStatusKB(t, pid, "VmRSS")
	stop()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(logs) <= 20 {
		t.Logf("quic serve's log:\n%s", b)
	}
	t.Logf("%d Initials from %d sources in %v; quic serve RSS %d MiB before, %d MiB after, peak %d MiB; %d log lines; quic get exit %d",
		flood, sources, sent.Round(time.Millisecond), before>>10, now>>10, peak>>10, len(logs), code)
	if code != 0 || sha256.Sum256([]byte(out)) != quicconn.PatternSum(100000) {
		t.Errorf("a real client after the flood: exit %d, %d bytes\nstderr: %s", code, len(out), errOut)
	}
	if peak<<10 > rssLimit {
		t.Errorf("quic serve's peak RSS %.0f MB, limit %.0f MB", float64(peak<<10)/1e6, rssLimit/1e6)
	}
	retry := false
	for _, l := range logs {
		retry = retry || strings.Contains(l, "Retry first")
	}
	if !retry {
		t.Errorf("quic serve logged no Retry for the flood:\n%s", strings.Join(logs, "\n"))
	}
	if len(logs) > 1000 {
		t.Errorf("quic serve logged %d lines for a flood of %d Initials, want far fewer than one an Initial", len(logs), flood)
	}
}

// procStatusKB reads a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatusKB(t *testing.T, pid int, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("%s %q: %v", field, v, err)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// quicServeRole is quic serve's code path in a process of its own, started
// with subproc so that it runs in the test's namespace: args are the log
// file, then quic serve's flags. It is ready with the address it serves.
const quicServeRole = "test/quic-serve"

func runQUICServeRole(ctx context.Context, args []string, ready func(string)) error {
	if len(args) == 0 {
		return fmt.Errorf("%s: want the log file, then quic serve's flags", quicServeRole)
	}
	log, err := os.Create(args[0])
	if err != nil {
		return err
	}
	defer log.Close()
	fs := flag.NewFlagSet(quicServeRole, flag.ContinueOnError)
	commands["quic serve"].flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	return serveQUIC(ctx, quicServeConfig(), log, func(a netip.AddrPort) { ready(a.String()) })
}
