package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/statelab/statelab/experiments/quicexp"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

// quicCommands: quic serve, quic get and bench quic (main.go lists every group).
func quicCommands() []*command {
	return []*command{
		{
			name: "quic serve",
			args: "[--addr ADDR] [--retry] [--handshake-rate N] [--max-handshakes N]",
			summary: "Serve QUIC in this shell's own network namespace until interrupted: raw streams (ALPN statelab-quic:\n" +
				"upload → sha256, download N bytes, echo) and HTTP/3 (ALPN h3: an index at /, /bytes/N, POST /echo).\n" +
				"Logs every connection and each change of its path (NAT rebinding, client migration). Holds a flood of\n" +
				"Initials from spoofed addresses: past --handshake-rate new handshakes a second (always, with --retry) a\n" +
				"client must first prove its address with a Retry, at most --max-handshakes are in progress, and a\n" +
				"connection's trace is dropped when it ends.",
			examples: []string{
				"statelab quic serve --addr 127.0.0.1:4433",
				"statelab quic serve --addr 127.0.0.1:0 --retry",
				"statelab quic get https://127.0.0.1:4433/bytes/50000000 --insecure --rebind-after 200ms",
				"curl --http3-only -k https://127.0.0.1:4433/",
			},
			flags: func(fs *flag.FlagSet) {
				f := &quicServeFlags
				fs.StringVar(&f.addr, "addr", "127.0.0.1:4433", "listen on `ADDR` (port 0: any free port)")
				fs.BoolVar(&f.retry, "retry", false, "validate every client's address with a Retry first (one more round trip)")
				intVar(fs, &f.rate, "handshake-rate", quicconn.DefaultHandshakeRate, 1, 1_000_000,
					"new handshakes a second (`N`) above which clients must first prove their address with a Retry")
				intVar(fs, &f.maxHandshakes, "max-handshakes", quicconn.DefaultMaxHandshakes, 1, 100_000,
					"handshakes in progress (`N`) beyond which new connections are refused")
			},
			run: quicServe,
		},
		{
			name: "quic get",
			args: "URL [-o FILE] [-d DATA|@FILE] [--migrate-after D] [--rebind-after D] [--insecure] [--timeout D]",
			summary: "Fetch https://HOST:PORT/PATH over HTTP/3, or quic://HOST:PORT/bytes/N over the raw stream protocol of\n" +
				"statelab quic serve, with a client whose connection IDs are 8 bytes, printing its path changes as they\n" +
				"happen: --rebind-after puts an in-process NAT in front and moves the flow to a new port after D;\n" +
				"--migrate-after migrates actively (AddPath, Probe, Switch) after D. Both count from the handshake.\n" +
				"Writes the body to stdout (or to -o FILE, replaced only once the whole body has arrived; a binary\n" +
				"/bytes/N body is not written to a terminal) and the log to stderr, ending with the status, the bytes\n" +
				"received and their sha256 (checked against the pattern for /bytes/N). With -d, https:// sends a POST\n" +
				"with that body (-d @FILE: the file's bytes), as curl does: POST /echo sends it back.\n" +
				"https:// verifies the server's certificate against the system's roots unless --insecure is given\n" +
				"(statelab quic serve's certificate is self-signed); quic:// always trusts its lab server.",
			examples: []string{
				"statelab quic get https://127.0.0.1:4433/bytes/20000000 --insecure --migrate-after 100ms",
				"statelab quic get https://127.0.0.1:4433/bytes/20000000 --insecure --rebind-after 100ms",
				"statelab quic get https://127.0.0.1:4433/ --insecure",
				"statelab quic get https://127.0.0.1:4433/bytes/1000000 --insecure -o /tmp/bytes",
				"statelab quic get quic://127.0.0.1:4433/bytes/20000000 --rebind-after 100ms",
				"statelab quic get https://127.0.0.1:4433/echo --insecure -d 'hello'",
			},
			flags: func(fs *flag.FlagSet) {
				f := &quicGetFlags
				fs.BoolVar(&f.insecure, "insecure", false, "https://: do not verify the server's certificate (needed for statelab quic serve's self-signed one)")
				fs.StringVar(&f.output, "o", "", "write the body to `FILE` (replaced only once the whole body has arrived; - for stdout)")
				aliasVar(fs, "output", "o", "write the body to `FILE`; the same as -o")
				fs.StringVar(&f.data, "d", "", "https://: POST this body, or @`FILE`'s bytes (at most 16 MiB)")
				aliasVar(fs, "data", "d", "the same as -d")
				durationVar(fs, &f.migrateAfter, "migrate-after", 0, 0, time.Hour, "migrate to a new local port `D` after the first response bytes (0: never)")
				durationVar(fs, &f.rebindAfter, "rebind-after", 0, 0, time.Hour, "have the in-process NAT move the flow to a new port `D` after the first response bytes (0: no NAT)")
				durationVar(fs, &f.timeout, "timeout", 30*time.Second, time.Millisecond, 24*time.Hour, "give up after `D`")
			},
			run: quicGet,
		},
		{
			name: "bench quic",
			args: "[--size BYTES] [--rounds R] [--json]",
			summary: "Goodput of one large QUIC download through the lab NAT with no path change, with one NAT rebinding and\n" +
				"with three client migrations (at 1/4, 2/4 and 3/4 of the bytes, each complete before the next), interleaved\n" +
				"in the same run inside the lab's namespace (median of --rounds, the scenario order rotated each round, with\n" +
				"the min/median/max of the ratio to no change), and the handover stall: the longest time without progress\n" +
				"around a path change the NAT or the server reported. A measurement ends once the last byte has arrived and\n" +
				"every path change armed during the download has completed.\n" +
				"Target: goodput with a rebinding at least 90% of without, 0 bytes lost.",
			examples: []string{"statelab bench quic", "statelab bench quic --size 100MiB --rounds 5 --json"},
			flags: func(fs *flag.FlagSet) {
				f := &benchQUICFlags
				sizeVar(fs, &f.size, "size", 32<<20, 1, quicconn.MaxDownload, "bytes per download, e.g. 32MiB")
				intVar(fs, &f.rounds, "rounds", benchcmp.DefaultRounds, 1, 100, "`R` rounds of every scenario, interleaved; the median-goodput one is reported")
				aliasVar(fs, "runs", "rounds", "deprecated: the same as --rounds")
				fs.BoolVar(&f.json, "json", false, "print the results as one JSON object")
			},
			run: benchQUIC,
		},
	}
}

// quicServeFlags are quic serve's flags.
var quicServeFlags struct {
	addr                string
	retry               bool
	rate, maxHandshakes int
}

// quicGetFlags are quic get's flags.
var quicGetFlags struct {
	insecure                           bool
	output, data                       string
	migrateAfter, rebindAfter, timeout time.Duration
}

// benchQUICFlags are bench quic's flags.
var benchQUICFlags struct {
	size   int64
	rounds int
	json   bool
}

func quicServe(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab quic serve: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	if err := serveQUIC(ctx, quicServeConfig(), stdout, nil); err != nil {
		fmt.Fprintf(stderr, "statelab quic serve: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// quicServeConfig is the server quic serve's flags ask for.
func quicServeConfig() quicconn.ServerConfig {
	f := quicServeFlags
	return quicconn.ServerConfig{Addr: f.addr, Retry: f.retry, HandshakeRate: f.rate, MaxHandshakes: f.maxHandshakes}
}

// serveQUIC is quic serve: it listens on cfg.Addr, logs to out, calls
// ready with the address once listening, and serves until ctx ends. Its
// tracer forgets each connection when it ends, and cfg's handshake limits
// (Retry above a rate, a cap in progress) hold a flood of Initials.
func serveQUIC(ctx context.Context, cfg quicconn.ServerConfig, out io.Writer, ready func(netip.AddrPort)) error {
	start := time.Now()
	var mu sync.Mutex
	logf := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "%8.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	tr := &quicconn.Tracer{TuplesOnly: true, Forget: true, OnTuple: func(c *quicconn.ConnTrace, t quicconn.TupleEvent) {
		if t.ID == "" {
			logf("conn %s: active path now %s", c.ODCID, t.Remote)
		} else {
			logf("conn %s: new path %s from %s (probing)", c.ODCID, t.ID, t.Remote)
		}
	}}
	cfg.Tracer, cfg.Logf, cfg.IdleTimeout = tr, logf, 30*time.Second
	if cfg.HandshakeRate <= 0 {
		cfg.HandshakeRate = quicconn.DefaultHandshakeRate
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = quicconn.DefaultMaxHandshakes
	}
	srv, err := quicconn.NewServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	retry := fmt.Sprintf("Retry above %d new handshakes/s", cfg.HandshakeRate)
	if cfg.Retry {
		retry = "Retry for every client"
	}
	logf("listening on udp %s (ALPN %q; HTTP/3: %s; %s; at most %d handshakes in progress); try: statelab quic get https://%s/ --insecure",
		srv.Addr, quicconn.ALPN, quicconn.HTTP3Status(), retry, cfg.MaxHandshakes, srv.Addr)
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
	f := quicGetFlags
	reqBody, err := readData(f.data)
	if err == nil && reqBody != nil && !target.h3 {
		err = fmt.Errorf("--data needs an https:// URL (POST over HTTP/3); quic:// only downloads /bytes/N")
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	if f.output == "" && target.n > 0 && isTerminal(stdout) {
		fmt.Fprintf(stderr, "statelab quic get: the body of /bytes/N is binary; not writing it to a terminal: give -o FILE (or -o - to write it anyway)\n")
		return exitUsage
	}
	body, err := openBody(f.output)
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	defer body.discard()
	ctx, stop := stopContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	g := newQUICGetter(ctx, target, f.migrateAfter, f.rebindAfter)
	g.body = body
	defer g.close()
	if err := g.natInFront(); err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	var code int
	if target.h3 {
		code = g.getH3(f.insecure, reqBody)
	} else {
		code = g.getRaw()
	}
	if code != exitOK {
		return code
	}
	if err := body.commit(); err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitFail
	}
	if body.name != "" {
		g.logf("wrote %d bytes to %s", body.n, body.name)
	}
	return exitOK
}

// maxData bounds quic get's -d body.
const maxData = 16 << 20

// readData is -d's body: DATA itself, or @FILE's bytes; nil without -d.
func readData(d string) ([]byte, error) {
	if d == "" {
		return nil, nil
	}
	name, ok := strings.CutPrefix(d, "@")
	if !ok {
		return []byte(d), nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("--data @%s: %w", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxData+1))
	if err != nil {
		return nil, fmt.Errorf("--data @%s: %w", name, err)
	}
	if len(b) > maxData {
		return nil, fmt.Errorf("--data @%s: larger than %d bytes (16 MiB), the most quic get sends", name, maxData)
	}
	return b, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// quicBody is where quic get writes the body: stdout, or a temporary file
// beside -o FILE that replaces FILE only once the whole body has arrived,
// so a failed fetch leaves an existing FILE as it was.
type quicBody struct {
	name string   // -o FILE; "" for stdout
	tmp  *os.File // the file being written
	mode os.FileMode
	w    io.Writer
	n    int64
}

func openBody(name string) (*quicBody, error) {
	if name == "" || name == "-" {
		return &quicBody{w: stdout}, nil
	}
	mode := os.FileMode(0o644) // as curl -o would create it (before the umask)
	if fi, err := os.Stat(name); err == nil {
		if fi.IsDir() {
			return nil, fmt.Errorf("-o %s: is a directory; give a file name", name)
		}
		mode = fi.Mode().Perm() // a replaced file keeps its mode
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".part-*")
	if err != nil {
		return nil, fmt.Errorf("-o %s: cannot write there: %w", name, err)
	}
	return &quicBody{name: name, tmp: tmp, w: tmp, mode: mode &^ umask()}, nil
}

// umask is the process's file mode creation mask, as /proc reports it
// (setting it to read it would race with files other goroutines create);
// 022 where /proc does not say.
func umask() os.FileMode {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for l := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	return 0o022
}

func (b *quicBody) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}

// commit puts the complete body in place.
func (b *quicBody) commit() error {
	if b.tmp == nil {
		return nil
	}
	tmp := b.tmp
	b.tmp = nil
	err := tmp.Chmod(b.mode)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), b.name)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("-o %s: %w", b.name, err)
	}
	return nil
}

// discard removes the temporary file of a body that was not committed.
func (b *quicBody) discard() {
	if b.tmp != nil {
		b.tmp.Close()
		os.Remove(b.tmp.Name())
		b.tmp = nil
	}
}

// quicGetter is one quic get: the fetch, its path changes (scheduled from
// the first response bytes) and its progress, logged as they happen.
type quicGetter struct {
	ctx                       context.Context
	target                    quicTarget
	migrateAfter, rebindAfter time.Duration
	start                     time.Time
	logMu                     sync.Mutex     // path events arrive on quic-go's goroutines
	local                     string         // the client's address
	to                        netip.AddrPort // the server, or the NAT in front of it
	nat                       *nat.UDP
	tr                        *quicconn.Tracer
	body                      io.Writer // where the body goes

	mu         sync.Mutex
	dialed     *quicconn.Client
	timers     []*time.Timer
	startPaths sync.Once

	// progress, from the reader's goroutine
	last  time.Time
	stall time.Duration
	next  int64
}

func newQUICGetter(ctx context.Context, target quicTarget, migrateAfter, rebindAfter time.Duration) *quicGetter {
	g := &quicGetter{ctx: ctx, target: target, migrateAfter: migrateAfter, rebindAfter: rebindAfter, start: time.Now(),
		local: "127.0.0.1:0", to: target.server, next: target.n / 4}
	if !target.server.Addr().IsLoopback() {
		g.local = ":0"
	}
	g.tr = &quicconn.Tracer{TuplesOnly: true, Forget: true, OnTuple: func(_ *quicconn.ConnTrace, t quicconn.TupleEvent) {
		if t.ID == "" {
			g.logf("now sending from %s to %s", t.Local, t.Remote)
		} else {
			g.logf("new path from %s to %s", t.Local, t.Remote)
		}
	}}
	return g
}

func (g *quicGetter) logf(format string, a ...any) {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	fmt.Fprintf(stderr, "%8.3fs  %s\n", time.Since(g.start).Seconds(), fmt.Sprintf(format, a...))
}

// natInFront puts an in-process NAT in front of the server when a
// rebinding is asked for.
func (g *quicGetter) natInFront() error {
	if g.rebindAfter <= 0 {
		return nil
	}
	n, err := nat.NewUDP("127.0.0.1:0", g.target.server, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return err
	}
	g.nat, g.to = n, n.Front
	g.logf("in-process NAT on %s in front of %s", n.Front, g.target.server)
	return nil
}

// close stops the scheduled path changes and the NAT.
func (g *quicGetter) close() {
	g.mu.Lock()
	for _, t := range g.timers {
		t.Stop()
	}
	g.mu.Unlock()
	if g.nat != nil {
		g.nat.Close()
	}
}

// onDial records the connection the path changes apply to.
func (g *quicGetter) onDial(cl *quicconn.Client) {
	g.logf("connected from %s to %s", cl.LocalAddr(), g.to)
	g.mu.Lock()
	g.dialed = cl
	g.mu.Unlock()
}

// progress logs every quarter of the bytes, tracks the longest stall, and
// at the first response bytes schedules the path changes: a path may
// change only once the handshake is confirmed (RFC 9000 §9), and a body
// byte means the server has processed the request. Started earlier, a
// rebinding can land mid-handshake and strand the connection.
func (g *quicGetter) progress(k int64) {
	if k > 0 {
		g.startPaths.Do(g.schedule)
	}
	now := time.Now()
	if !g.last.IsZero() {
		g.stall = max(g.stall, now.Sub(g.last))
	}
	g.last = now
	if n := g.target.n; k >= g.next && g.next > 0 {
		g.logf("%d of %d bytes", k, n)
		g.next += n / 4
	}
}

// schedule starts the timers of the path changes asked for.
func (g *quicGetter) schedule() {
	g.mu.Lock()
	defer g.mu.Unlock()
	cl := g.dialed
	if cl == nil {
		return
	}
	if g.rebindAfter > 0 {
		g.timers = append(g.timers, time.AfterFunc(g.rebindAfter, g.rebind))
	}
	if g.migrateAfter > 0 {
		g.timers = append(g.timers, time.AfterFunc(g.migrateAfter, func() { g.migrate(cl) }))
	}
}

// rebind has the NAT move the flow to a new port and logs the move.
func (g *quicGetter) rebind() {
	ch := g.nat.Rebind(netip.MustParseAddr("127.0.0.1"), 0)
	g.logf("NAT: rebinding armed")
	go func() {
		select {
		case rb := <-ch:
			g.logf("NAT: binding %s → %s (the server sees a new port; same connection ID)", rb.Old, rb.New)
		case <-g.ctx.Done():
		}
	}()
}

// migrate moves cl to a new local port: Switch before Probe (refused),
// Probe, Switch.
func (g *quicGetter) migrate(cl *quicconn.Client) {
	p, err := cl.NewPath(netip.AddrPortFrom(cl.LocalAddr().Addr(), 0).String())
	if err != nil {
		g.logf("migration: %v", err)
		return
	}
	early := "accepted (unexpected)"
	if err := p.Switch(); err != nil {
		early = "refused: " + err.Error()
	}
	g.logf("migration: new path from %s; switching before probing it: %s", p.Local, early)
	t0 := time.Now()
	if err := p.Probe(g.ctx); err != nil {
		g.logf("migration: probing %s failed: %v", p.Local, err)
		return
	}
	if err := p.Switch(); err != nil {
		g.logf("migration: path %s validated in %v; switching to it failed: %v", p.Local, time.Since(t0).Round(time.Microsecond), err)
		return
	}
	g.logf("migration: path %s validated in %v; switched to it", p.Local, time.Since(t0).Round(time.Microsecond))
}

// getRaw downloads quic://HOST:PORT/bytes/N over the raw stream protocol.
func (g *quicGetter) getRaw() int {
	cl, err := quicconn.Dial(g.ctx, quicconn.ClientConfig{Server: g.to, Local: g.local, Tracer: g.tr, IdleTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		return exitUsage
	}
	defer cl.Close()
	g.onDial(cl)
	n := g.target.n
	got, sum, err := cl.DownloadTo(g.ctx, n, g.body, g.progress)
	secs := time.Since(g.start).Seconds()
	if err != nil {
		g.logf("failed after %d of %d bytes (%.1f s): %v", got, n, secs, err)
		return exitFail
	}
	intact := sum == quicconn.PatternSum(n)
	g.logf("done: %d bytes in %.2f s (%.1f MB/s), sha256 %x, %s; longest stall %.1f ms",
		got, secs, float64(got)/secs/1e6, sum, map[bool]string{true: "intact (the /bytes/N pattern)", false: "NOT the /bytes/N pattern"}[intact], quicMS(g.stall))
	if !intact {
		return exitFail
	}
	return exitOK
}

// getH3 fetches https://HOST:PORT/PATH over HTTP/3 and prints the status,
// the byte count and the sha256.
func (g *quicGetter) getH3(insecure bool, reqBody []byte) int {
	h := quicconn.NewH3Client(quicconn.H3Config{Server: g.to, Local: g.local, Insecure: insecure, Tracer: g.tr,
		IdleTimeout: 10 * time.Second, OnDial: g.onDial})
	defer h.Close()
	method := http.MethodGet
	if reqBody != nil {
		method = http.MethodPost
		g.logf("POST %d bytes", len(reqBody))
	}
	r, err := h.Do(g.ctx, method, g.target.url, reqBody, g.body, g.progress)
	if err != nil && len(h.Conns()) == 0 {
		fmt.Fprintf(stderr, "statelab quic get: %v\n", err)
		if !insecure && strings.Contains(err.Error(), "certificate") {
			fmt.Fprintf(stderr, "statelab quic get: the server's certificate is not trusted; statelab quic serve uses a self-signed one: add --insecure to skip verification\n")
		}
		return exitUsage
	}
	secs := time.Since(g.start).Seconds()
	conns := ""
	if k := len(h.Conns()); k > 1 {
		conns = fmt.Sprintf(" over %d connections", k)
	}
	if err != nil {
		g.logf("failed after %d bytes (%.1f s)%s: %v", r.Bytes, secs, conns, err)
		return exitFail
	}
	check := ""
	ok := r.StatusCode == http.StatusOK
	if g.target.n >= 0 && ok {
		ok = r.Bytes == g.target.n && r.Sum == quicconn.PatternSum(g.target.n)
		check = map[bool]string{true: ", intact (the /bytes/N pattern)", false: ", NOT the /bytes/N pattern"}[ok]
	}
	g.logf("done: %s %s, %d bytes in %.2f s (%.1f MB/s)%s, sha256 %x%s; longest stall %.1f ms",
		r.Proto, r.Status, r.Bytes, secs, float64(r.Bytes)/secs/1e6, conns, r.Sum, check, quicMS(g.stall))
	if !ok {
		return exitFail
	}
	return exitOK
}

// quicMS is a duration in milliseconds, to the microsecond.
func quicMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func benchQUIC(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench quic: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	f := benchQUICFlags
	size := f.size
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench quic: %v\n", err)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	rs, err := quicexp.Bench(ctx, size, f.rounds)
	if code := stopped(ctx, "bench quic", benchCutShort); code != 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench quic: %v\n", err)
		return exitFail
	}
	ratio := map[string]float64{}
	spread := map[string][3]float64{}
	for _, r := range rs {
		ratio[r.Scenario] = r.RatioMedian
		spread[r.Scenario] = [3]float64{r.RatioMin, r.RatioMedian, r.RatioMax}
	}
	met := len(rs) == 3 && ratio["rebind"] >= 0.9 && rs[1].Lost == 0 && rs[1].Intact
	if f.json {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"results": rs, "ratio_to_none": ratio, "ratio_spread_min_median_max": spread, "target_met": met,
			"comparisons": quicexp.Comparisons(rs)})
	} else {
		fmt.Fprintf(stdout, "QUIC download of %d bytes through the lab NAT on loopback (2 shared cores), %d round(s), scenario order rotated each round\n", size, rs[0].Rounds)
		fmt.Fprintf(stdout, "  %-9s %10s %20s %10s %6s %8s %8s %10s\n", "scenario", "MB/s", "ratio min/med/max", "stall ms", "lost", "intact", "changes", "settle ms")
		for _, r := range rs {
			fmt.Fprintf(stdout, "  %-9s %10.1f %6.2f/%6.2f/%6.2f %10.1f %6d %8t %8d %10.1f\n", r.Scenario, r.GoodputMBs, r.RatioMin, r.RatioMedian, r.RatioMax, r.StallMS, r.Lost, r.Intact, r.Changes, r.SettleMS)
		}
		fmt.Fprintf(stdout, "  stall: the longest time without progress from %v before to %v after a path change (none: around the halfway point)\n",
			quicexp.HandoverBefore, quicexp.HandoverAfter)
		fmt.Fprintf(stdout, "  changes: as the NAT or the server reported them; settle: how long after the last byte the measurement waited for the armed ones\n")
		for _, c := range quicexp.Comparisons(rs) {
			fmt.Fprintf(stdout, "  %s\n", c)
		}
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
func quicExperiments() []lab.Experiment { return quicexp.Experiments() }
