package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/quicconn"
)

func init() {
	register(&command{
		name: "quic serve",
		args: "[--addr ADDR]",
		summary: "Serve QUIC in this shell's own network namespace until interrupted: raw streams (ALPN statelab-quic:\n" +
			"upload → sha256, download N bytes, echo) and HTTP/3 (ALPN h3: an index at /, /bytes/N, POST /echo).\n" +
			"Logs every connection and each change of its path (NAT rebinding, client migration).",
		examples: []string{
			"statelab quic serve --addr 127.0.0.1:4433",
			"statelab quic get https://127.0.0.1:4433/bytes/50000000 --insecure --rebind-after 200ms",
			"curl --http3-only -k https://127.0.0.1:4433/",
		},
		flags: func(fs *flag.FlagSet) {
			fs.String("addr", "127.0.0.1:4433", "listen on `ADDR` (port 0: any free port)")
		},
		run: quicServe,
	})
	register(&command{
		name: "quic get",
		args: "URL [--migrate-after D] [--rebind-after D] [--insecure]",
		summary: "Fetch https://HOST:PORT/PATH over HTTP/3, or quic://HOST:PORT/bytes/N over the raw stream protocol of\n" +
			"statelab quic serve, with a client whose connection IDs are 8 bytes, printing its path changes as they\n" +
			"happen: --rebind-after puts an in-process NAT in front and moves the flow to a new port after D;\n" +
			"--migrate-after migrates actively (AddPath, Probe, Switch) after D. Both count from the handshake.\n" +
			"Ends with the status, the bytes received and their sha256 (checked against the pattern for /bytes/N).\n" +
			"https:// verifies the server's certificate against the system's roots unless --insecure is given\n" +
			"(statelab quic serve's certificate is self-signed); quic:// always trusts its lab server.",
		examples: []string{
			"statelab quic get https://127.0.0.1:4433/bytes/20000000 --insecure --migrate-after 100ms",
			"statelab quic get https://127.0.0.1:4433/bytes/20000000 --insecure --rebind-after 100ms",
			"statelab quic get https://127.0.0.1:4433/ --insecure",
			"statelab quic get quic://127.0.0.1:4433/bytes/20000000 --rebind-after 100ms",
		},
		flags: func(fs *flag.FlagSet) {
			fs.Bool("insecure", false, "https://: do not verify the server's certificate (needed for statelab quic serve's self-signed one)")
			fs.Duration("migrate-after", 0, "migrate to a new local port `D` after the first response bytes (0: never)")
			fs.Duration("rebind-after", 0, "have the in-process NAT move the flow to a new port `D` after the first response bytes (0: no NAT)")
			fs.Duration("timeout", 30*time.Second, "give up after this long")
		},
		run: quicGet,
	})
	register(&command{
		name: "bench quic",
		args: "[--size BYTES] [--runs N] [--json]",
		summary: "Goodput of one large QUIC download through the lab NAT with no path change, with one NAT rebinding and\n" +
			"with three client migrations, interleaved in the same run inside the lab's namespace (median of --runs,\n" +
			"the scenario order rotated each round, with the min/median/max of the ratio to no change), and the\n" +
			"handover stall: the longest time without progress around a path change the NAT or the server reported.\n" +
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveQUIC(ctx, quicFlag[string](fs, "addr"), stdout, nil); err != nil {
		fmt.Fprintf(stderr, "statelab quic serve: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// serveQUIC is quic serve: it listens on addr, logs to out, calls ready
// with the address once listening, and serves until ctx ends.
func serveQUIC(ctx context.Context, addr string, out io.Writer, ready func(netip.AddrPort)) error {
	start := time.Now()
	var mu sync.Mutex
	logf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	tr := &quicconn.Tracer{TuplesOnly: true, OnTuple: func(c *quicconn.ConnTrace, t quicconn.TupleEvent) {
		if t.ID == "" {
			logf("conn %s: active path now %s", c.ODCID, t.Remote)
		} else {
			logf("conn %s: new path %s from %s (probing)", c.ODCID, t.ID, t.Remote)
		}
	}}
	srv, err := quicconn.NewServer(quicconn.ServerConfig{Addr: addr, Tracer: tr, Logf: logf, IdleTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer srv.Close()
	logf("listening on udp %s (ALPN %q; HTTP/3: %s); try: statelab quic get https://%s/bytes/20000000 --insecure --migrate-after 50ms",
		srv.Addr, quicconn.ALPN, quicconn.HTTP3Status(), srv.Addr)
	if ready != nil {
		ready(srv.Addr)
	}
	<-ctx.Done()
	logf("interrupted; closing")
	return nil
}

// quicTarget is a parsed `quic get` URL.
type quicTarget struct {
	h3     bool           // https:// over HTTP/3; else quic:// raw streams
	server netip.AddrPort // resolved host and port
	n      int64          // bytes asked for (quic://), or N of an https /bytes/N path; -1 otherwise
	url    string
}

// parseQUICURL accepts quic://HOST:PORT/bytes/N and https://HOST:PORT/PATH.
func parseQUICURL(s string) (quicTarget, error) {
	u, err := url.Parse(s)
	if err != nil {
		return quicTarget{}, err
	}
	t := quicTarget{url: s, n: -1}
	switch u.Scheme {
	case "quic":
	case "https":
		t.h3 = true
	default:
		return quicTarget{}, fmt.Errorf("unsupported URL %q: want quic://HOST:PORT/bytes/N (raw streams) or https://HOST:PORT/PATH (HTTP/3)", s)
	}
	if u.Port() == "" {
		return quicTarget{}, fmt.Errorf("URL %q has no port: want %s://HOST:PORT/…", s, u.Scheme)
	}
	ua, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		return quicTarget{}, err
	}
	ap := ua.AddrPort()
	t.server = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	n, err := strconv.ParseInt(strings.TrimPrefix(u.Path, "/bytes/"), 10, 64)
	bytesPath := strings.HasPrefix(u.Path, "/bytes/") && err == nil && n >= 0 && n <= quicconn.MaxDownload
	switch {
	case bytesPath:
		t.n = n
	case !t.h3:
		return quicTarget{}, fmt.Errorf("path must be /bytes/N with 0 ≤ N ≤ %d, got %q", quicconn.MaxDownload, u.Path)
	}
	return t, nil
}

func quicGet(fs *flag.FlagSet, args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "statelab quic get: give one URL, quic://HOST:PORT/bytes/N or https://HOST:PORT/PATH\n")
		return exitUsage
	}
	target, err := parseQUICURL(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	insecure := quicFlag[bool](fs, "insecure")
	migrateAfter, rebindAfter := quicFlag[time.Duration](fs, "migrate-after"), quicFlag[time.Duration](fs, "rebind-after")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, quicFlag[time.Duration](fs, "timeout"))
	defer cancel()
	start := time.Now()
	var logMu sync.Mutex // path events arrive on quic-go's goroutines
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(stdout, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	server := target.server
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

	// Path changes, scheduled from the moment the connection is up.
	var timers []*time.Timer
	var timersMu sync.Mutex
	defer func() {
		timersMu.Lock()
		defer timersMu.Unlock()
		for _, t := range timers {
			t.Stop()
		}
	}()
	// The timers start at the first response bytes, not at dial: a path may
	// change only once the handshake is confirmed (RFC 9000 §9), and a body
	// byte means the server has processed the request. Started earlier, a
	// rebinding can land mid-handshake and strand the connection.
	var dialed *quicconn.Client
	onDial := func(cl *quicconn.Client) {
		logf("connected from %s to %s", cl.LocalAddr(), to)
		timersMu.Lock()
		dialed = cl
		timersMu.Unlock()
	}
	var startPaths sync.Once
	schedule := func() {
		timersMu.Lock()
		defer timersMu.Unlock()
		cl := dialed
		if cl == nil {
			return
		}
		if rebindAfter > 0 {
			timers = append(timers, time.AfterFunc(rebindAfter, func() {
				ch := nat.Rebind(netip.MustParseAddr("127.0.0.1"), 0)
				logf("NAT: rebinding armed")
				go func() {
					select {
					case rb := <-ch:
						logf("NAT: binding %s → %s (the server sees a new port; same connection ID)", rb.Old, rb.New)
					case <-ctx.Done():
					}
				}()
			}))
		}
		if migrateAfter > 0 {
			timers = append(timers, time.AfterFunc(migrateAfter, func() {
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
			}))
		}
	}

	var last time.Time
	var stall time.Duration
	n := target.n
	next := n / 4
	progress := func(k int64) {
		if k > 0 {
			startPaths.Do(schedule)
		}
		now := time.Now()
		if !last.IsZero() {
			stall = max(stall, now.Sub(last))
		}
		last = now
		if k >= next && next > 0 {
			logf("%d of %d bytes", k, n)
			next += n / 4
		}
	}
	if target.h3 {
		return quicGetH3(ctx, target, quicconn.H3Config{Server: to, Local: local, Insecure: insecure, Tracer: tr,
			IdleTimeout: 10 * time.Second, OnDial: onDial}, progress, start, &stall, logf)
	}
	cl, err := quicconn.Dial(ctx, quicconn.ClientConfig{Server: to, Local: local, Tracer: tr, IdleTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	defer cl.Close()
	onDial(cl)
	got, sum, err := cl.Download(ctx, n, progress)
	secs := time.Since(start).Seconds()
	ok := err == nil && sum == quicconn.PatternSum(n)
	logf("done: %d bytes, intact %t, %.1f MB/s, longest stall %.1f ms, err %v", got, ok, float64(got)/secs/1e6, float64(stall.Microseconds())/1000, err)
	if !ok {
		return exitFail
	}
	return exitOK
}

// quicGetH3 fetches target over HTTP/3 and prints the status, the byte
// count and the sha256.
func quicGetH3(ctx context.Context, target quicTarget, cfg quicconn.H3Config, progress func(int64), start time.Time, stall *time.Duration, logf func(string, ...any)) int {
	h := quicconn.NewH3Client(cfg)
	defer h.Close()
	r, err := h.Get(ctx, target.url, progress)
	if err != nil && len(h.Conns()) == 0 {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		if !cfg.Insecure && strings.Contains(err.Error(), "certificate") {
			fmt.Fprintf(stderr, "statelab quic get: the server's certificate is not trusted; statelab quic serve uses a self-signed one: add --insecure to skip verification\n")
		}
		return exitUsage
	}
	secs := time.Since(start).Seconds()
	intact := "(not checked)"
	ok := err == nil && r.StatusCode == http.StatusOK
	if target.n >= 0 && r.StatusCode == http.StatusOK {
		good := r.Bytes == target.n && r.Sum == quicconn.PatternSum(target.n)
		ok = ok && good
		intact = strconv.FormatBool(good)
	}
	logf("done: %s %s, %d bytes, sha256 %x, intact %s, %.1f MB/s, longest stall %.1f ms, %d connection(s), err %v",
		r.Proto, r.Status, r.Bytes, r.Sum, intact, float64(r.Bytes)/secs/1e6, float64(stall.Microseconds())/1000, len(h.Conns()), err)
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
	spread := map[string][3]float64{}
	for _, r := range rs {
		ratio[r.Scenario] = r.RatioMedian
		spread[r.Scenario] = [3]float64{r.RatioMin, r.RatioMedian, r.RatioMax}
	}
	met := len(rs) == 3 && ratio["rebind"] >= 0.9 && rs[1].Lost == 0 && rs[1].Intact
	if quicFlag[bool](fs, "json") {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"results": rs, "ratio_to_none": ratio, "ratio_spread_min_median_max": spread, "target_met": met})
	} else {
		fmt.Fprintf(stdout, "QUIC download of %d bytes through the lab NAT on loopback (2 shared cores), %d round(s), scenario order rotated each round\n", size, rs[0].Rounds)
		fmt.Fprintf(stdout, "  %-9s %10s %20s %10s %6s %8s %8s\n", "scenario", "MB/s", "ratio min/med/max", "stall ms", "lost", "intact", "changes")
		for _, r := range rs {
			fmt.Fprintf(stdout, "  %-9s %10.1f %6.2f/%6.2f/%6.2f %10.1f %6d %8t %8d\n", r.Scenario, r.GoodputMBs, r.RatioMin, r.RatioMedian, r.RatioMax, r.StallMS, r.Lost, r.Intact, r.Changes)
		}
		fmt.Fprintf(stdout, "  stall: the longest time without progress from %v before to %v after a path change (none: around the halfway point)\n",
			quicconn.HandoverWindow.Before, quicconn.HandoverWindow.After)
		fmt.Fprintf(stdout, "  target (median rebind ≥ 0.90 of none, 0 bytes lost): %s\n", map[bool]string{true: "met", false: "NOT met"}[met])
	}
	for _, r := range rs {
		if !r.Intact || r.Lost != 0 {
			return exitFail
		}
	}
	return exitOK
}

// quicExperiments are the quic/ experiments of statelab's catalogue.
func quicExperiments() []lab.Experiment { return quicconn.Experiments() }
