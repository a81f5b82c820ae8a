package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/statelab/statelab/internal/sandbox"
	"github.com/statelab/statelab/quicconn"
)

func init() {
	register(&command{
		name: "quic serve",
		args: "[--addr ADDR]",
		summary: "Serve QUIC in this shell's own network namespace until interrupted: raw streams (ALPN statelab-quic:\n" +
			"upload → sha256, download N bytes, echo) and, in builds with HTTP/3, / and /bytes/N over HTTP/3.\n" +
			"Logs every connection and each change of its path (NAT rebinding, client migration).",
		examples: []string{
			"statelab quic serve --addr 127.0.0.1:4433",
			"statelab quic get quic://127.0.0.1:4433/bytes/50000000 --rebind-after 200ms",
		},
		flags: func(fs *flag.FlagSet) {
			fs.String("addr", "127.0.0.1:4433", "listen on `ADDR` (port 0: any free port)")
		},
		run: quicServe,
	})
	register(&command{
		name: "quic get",
		args: "URL [--migrate-after D] [--rebind-after D]",
		summary: "Download quic://HOST:PORT/bytes/N from a statelab quic server with a client whose connection IDs are\n" +
			"8 bytes, printing its path changes as they happen: --rebind-after puts an in-process NAT in front and\n" +
			"moves the flow to a new port after D; --migrate-after migrates actively (AddPath, Probe, Switch) after D.",
		examples: []string{
			"statelab quic get quic://127.0.0.1:4433/bytes/20000000 --migrate-after 100ms",
			"statelab quic get quic://127.0.0.1:4433/bytes/20000000 --rebind-after 100ms",
		},
		flags: func(fs *flag.FlagSet) {
			fs.Duration("migrate-after", 0, "migrate to a new local port after `D` (0: never)")
			fs.Duration("rebind-after", 0, "have the in-process NAT move the flow to a new port after `D` (0: no NAT)")
			fs.Duration("timeout", 30*time.Second, "give up after this long")
		},
		run: quicGet,
	})
	register(&command{
		name: "bench quic",
		args: "[--size BYTES] [--runs N] [--json]",
		summary: "Goodput of one large QUIC download through the lab NAT with no path change, with one NAT rebinding and\n" +
			"with three client migrations, interleaved in the same run inside the lab's namespace (median of --runs),\n" +
			"and the longest stall (time without progress) of each.\n" +
			"Target: goodput with a rebinding at least 90% of without, 0 bytes lost.",
		examples: []string{"statelab bench quic", "statelab bench quic --size 100000000 --json"},
		flags: func(fs *flag.FlagSet) {
			fs.Int64("size", 32<<20, "bytes per download")
			fs.Int("runs", 3, "runs per scenario, interleaved; the median-goodput run is reported")
			fs.Bool("json", false, "print JSON")
		},
		run: benchQUIC,
	})
}

func quicFlag[T any](fs *flag.FlagSet, n string) T { return fs.Lookup(n).Value.(flag.Getter).Get().(T) }

func quicServe(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab quic serve: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	tr := &quicconn.Tracer{OnTuple: func(c *quicconn.ConnTrace, t quicconn.TupleEvent) {
		if t.ID == "" {
			logf("conn %s: active path now %s", c.ODCID, t.Remote)
		} else {
			logf("conn %s: new path %s from %s (probing)", c.ODCID, t.ID, t.Remote)
		}
	}}
	srv, err := quicconn.NewServer(quicconn.ServerConfig{Addr: quicFlag[string](fs, "addr"), Tracer: tr, Logf: logf, IdleTimeout: 30 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic serve: %v\n", err)
		return exitUsage
	}
	defer srv.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf("listening on udp %s (ALPN %q; HTTP/3: %s); try: statelab quic get quic://%s/bytes/10000000 --rebind-after 100ms",
		srv.Addr, quicconn.ALPN, quicconn.HTTP3Status(), srv.Addr)
	<-ctx.Done()
	logf("interrupted; closing")
	return exitOK
}

// parseQUICURL accepts quic://HOST:PORT/bytes/N.
func parseQUICURL(s string) (netip.AddrPort, int64, error) {
	u, err := url.Parse(s)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	if u.Scheme != "quic" {
		return netip.AddrPort{}, 0, fmt.Errorf("want quic://HOST:PORT/bytes/N, got %q (this client speaks the raw stream protocol; for https:// point an HTTP/3 client, such as curl --http3, at statelab quic serve)", s)
	}
	ua, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	n, err := strconv.ParseInt(strings.TrimPrefix(u.Path, "/bytes/"), 10, 64)
	if !strings.HasPrefix(u.Path, "/bytes/") || err != nil || n < 0 || n > quicconn.MaxDownload {
		return netip.AddrPort{}, 0, fmt.Errorf("path must be /bytes/N with 0 ≤ N ≤ %d, got %q", quicconn.MaxDownload, u.Path)
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), n, nil
}

func quicGet(fs *flag.FlagSet, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "statelab quic get: give one URL, quic://HOST:PORT/bytes/N\n")
		return exitUsage
	}
	server, n, err := parseQUICURL(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	migrateAfter, rebindAfter := quicFlag[time.Duration](fs, "migrate-after"), quicFlag[time.Duration](fs, "rebind-after")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, quicFlag[time.Duration](fs, "timeout"))
	defer cancel()
	start := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	local := "127.0.0.1:0"
	if !server.Addr().IsLoopback() {
		local = ":0"
	}
	to := server
	var nat *quicconn.Middlebox
	if rebindAfter > 0 {
		nat, err = quicconn.NewMiddlebox("127.0.0.1:0", server, netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
			return exitUsage
		}
		defer nat.Close()
		to = nat.Front
		logf("in-process NAT on %s in front of %s", nat.Front, server)
	}
	tr := &quicconn.Tracer{OnTuple: func(_ *quicconn.ConnTrace, t quicconn.TupleEvent) {
		logf("path %q: %s → %s", t.ID, t.Local, t.Remote)
	}}
	cl, err := quicconn.Dial(ctx, quicconn.ClientConfig{Server: to, Local: local, Tracer: tr, IdleTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	defer cl.Close()
	logf("connected from %s to %s", cl.LocalAddr(), to)
	if rebindAfter > 0 {
		t := time.AfterFunc(rebindAfter, func() {
			ch := nat.Rebind(netip.MustParseAddr("127.0.0.1"), 0)
			logf("NAT: rebinding armed")
			go func() {
				select {
				case rb := <-ch:
					logf("NAT: binding %s → %s (the server sees a new port; same connection ID)", rb.Old, rb.New)
				case <-ctx.Done():
				}
			}()
		})
		defer t.Stop()
	}
	if migrateAfter > 0 {
		t := time.AfterFunc(migrateAfter, func() {
			p, err := cl.NewPath(netip.AddrPortFrom(cl.LocalAddr().Addr(), 0).String())
			if err != nil {
				logf("migration: %v", err)
				return
			}
			logf("migration: AddPath %s; Switch before Probe: %v", p.Local, p.Switch())
			t0 := time.Now()
			if err := p.Probe(ctx); err != nil {
				logf("migration: probe: %v", err)
				return
			}
			logf("migration: path %s validated in %v; Switch: %v", p.Local, time.Since(t0).Round(time.Microsecond), p.Switch())
		})
		defer t.Stop()
	}
	var last time.Time
	var stall time.Duration
	next := n / 4
	got, sum, err := cl.Download(ctx, n, func(k int64) {
		now := time.Now()
		if !last.IsZero() {
			stall = max(stall, now.Sub(last))
		}
		last = now
		if k >= next && next > 0 {
			logf("%d of %d bytes", k, n)
			next += n / 4
		}
	})
	secs := time.Since(start).Seconds()
	ok := err == nil && sum == quicconn.PatternSum(n)
	logf("done: %d bytes, intact %t, %.1f MB/s, longest stall %.1f ms, err %v", got, ok, float64(got)/secs/1e6, float64(stall.Microseconds())/1000, err)
	if !ok {
		return exitFail
	}
	return exitOK
}

func benchQUIC(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench quic: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	size := quicFlag[int64](fs, "size")
	if size <= 0 || size > quicconn.MaxDownload {
		fmt.Fprintf(stderr, "statelab bench quic: --size must be 1…%d\n", quicconn.MaxDownload)
		return exitUsage
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench quic: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rs, err := quicconn.Bench(ctx, size, quicFlag[int](fs, "runs"))
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench quic: %v\n", err)
		if errors.Is(err, context.Canceled) {
			return exitUsage
		}
		return exitFail
	}
	ratio := map[string]float64{}
	for _, r := range rs {
		ratio[r.Scenario] = r.GoodputMBs / rs[0].GoodputMBs
	}
	met := len(rs) == 3 && ratio["rebind"] >= 0.9 && rs[1].Lost == 0 && rs[1].Intact
	if quicFlag[bool](fs, "json") {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"results": rs, "ratio_to_none": ratio, "target_met": met})
	} else {
		fmt.Fprintf(stdout, "QUIC download of %d bytes through the lab NAT on loopback (2 shared cores)\n", size)
		fmt.Fprintf(stdout, "  %-9s %10s %8s %10s %6s %8s %8s\n", "scenario", "MB/s", "ratio", "stall ms", "lost", "intact", "changes")
		for _, r := range rs {
			fmt.Fprintf(stdout, "  %-9s %10.1f %8.2f %10.1f %6d %8t %8d\n", r.Scenario, r.GoodputMBs, ratio[r.Scenario], r.StallMS, r.Lost, r.Intact, r.Changes)
		}
		fmt.Fprintf(stdout, "  target (rebind ≥ 0.90 of none, 0 bytes lost): %s\n", map[bool]string{true: "met", false: "NOT met"}[met])
	}
	for _, r := range rs {
		if !r.Intact || r.Lost != 0 {
			return exitFail
		}
	}
	return exitOK
}
