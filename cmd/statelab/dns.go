package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/experiments/dnsexp"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// dnsCommands: dns serve, dns query and bench dns (main.go lists every group).
func dnsCommands() []*command {
	return []*command{
		{
			name:    "dns serve",
			args:    "[--addr ADDR] [--zone FILE] [--cookie-secret HEX] [--delay D] [--jitter D] [--drop F] [--dup F] [--max-held N] [--quiet]",
			summary: "Serve DNS over UDP and TCP from the built-in zone (lab., with NAME.synth.lab. for any NAME) or a zone file,\nin this shell's own network namespace, until interrupted. Prints the address when ready and logs each query on stderr.\nAnswers DNS cookies (RFC 7873, RFC 9018 server cookies) with a random secret, or --cookie-secret's;\nanswers too big for the client's EDNS buffer come back truncated (TC) over UDP, whole over TCP.",
			examples: []string{
				"statelab dns serve --addr 127.0.0.1:5300",
				"dig @127.0.0.1 -p 5300 example.lab A",
				"dig @127.0.0.1 -p 5300 +tcp example.lab A",
				"dig @127.0.0.1 -p 5300 +cookie example.lab A",
				"dig @127.0.0.1 -p 5300 +bufsize=512 big.lab TXT    # TC over UDP, then dig retries over TCP",
				"statelab dns serve --cookie-secret e5e973e5a6b2a43f48e7dc849e37bfcf",
				"statelab dns serve --zone db.example --jitter 5ms --drop 0.1",
			},
			flags: func(fs *flag.FlagSet) {
				f := &dnsServeFlags
				fs.StringVar(&f.addr, "addr", "127.0.0.1:5300", "listen on `ADDR`, UDP and TCP (port 0: any free port; not 5353, mDNS's)")
				fs.StringVar(&f.zone, "zone", "", "answer from the zone in master-file `FILE` (at most 1 MiB) instead of the built-in one")
				fs.StringVar(&f.cookieSecret, "cookie-secret", "", "the server cookies' secret, `HEX`: 32 hex digits (16 bytes); default random at each start (clients then pay one BADCOOKIE round trip)")
				durationVar(fs, &f.delay, "delay", 0, 0, time.Minute, "hold every answer this long")
				durationVar(fs, &f.jitter, "jitter", 0, 0, time.Minute, "add a random delay up to this long (reorders answers)")
				floatVar(fs, &f.drop, "drop", 0, 0, 1, "fraction of queries never answered")
				floatVar(fs, &f.dup, "dup", 0, 0, 1, "fraction of answers sent twice")
				intVar(fs, &f.maxHeld, "max-held", 4096, 1, 100000, "answers held (delayed) at once; queries beyond are dropped and counted")
				fs.BoolVar(&f.quiet, "quiet", false, "do not log each query on stderr")
			},
			run: dnsServe,
		},
		{
			name:    "dns query",
			args:    "--server HOST[:PORT] [-n N] [-c CONCURRENCY] [--type T] [--cookie] [--bufsize N] NAME...",
			summary: "Resolve NAMEs through the multiplexing client (one socket, many queries in flight) and print the answers\nas dig does; with -n, a summary with the rate and latency percentiles.",
			examples: []string{
				"statelab dns query --server 127.0.0.1:5300 example.lab www.example.lab",
				"statelab dns query --server localhost:5300 --type AAAA example.lab",
				"statelab dns query --server 127.0.0.1:5300 -n 1000 -c 100 x.synth.lab",
				"statelab dns query --server 127.0.0.1:5300 --bufsize 512 --type TXT big.lab   # TC over UDP, then TCP",
				"statelab dns query --server 127.0.0.1:5300 --cookie example.lab",
			},
			flags: func(fs *flag.FlagSet) {
				f := &dnsQueryFlags
				fs.StringVar(&f.server, "server", "", "the server, `HOST[:PORT]` (a name or an address; port 53 when left out)")
				intVar(fs, &f.n, "n", 1, 1, maxQueryRepeats, "ask each name `N` times")
				intVar(fs, &f.c, "c", 16, 1, 10000, "queries in flight at once")
				aliasVar(fs, "concurrency", "c", "the same as -c")
				fs.StringVar(&f.qtype, "type", "A", "query `TYPE`")
				durationVar(fs, &f.timeout, "timeout", 2*time.Second, time.Millisecond, time.Minute, "per-attempt timeout")
				intVar(fs, &f.retries, "retries", 2, 0, 10, "retries after a timeout")
				fs.BoolVar(&f.case0x20, "0x20", false, "randomise QNAME case (DNS 0x20)")
				fs.BoolVar(&f.cookie, "cookie", false, "send DNS cookies (RFC 7873): refuse answers without the server's cookie once it gave one")
				intVar(fs, &f.bufsize, "bufsize", 0, 0, 65535, "advertise an EDNS0 buffer of `N` bytes (0: no EDNS0, or 1232 with --cookie); a truncated answer is asked again over TCP")
				fs.BoolVar(&f.quiet, "q", false, "print only the summary and counters")
			},
			run: dnsQuery,
		},
		{
			name:     "bench dns",
			args:     "[--duration D] [--rounds N] [-c CONCURRENCY] [--sockets N] [--json]",
			summary:  "Queries per second and latency of the udpdns client and of dnsperf against the same in-process server,\nin the same run, inside the lab's namespace, alternating for several rounds; prints both, the median\nratio and its spread. Needs dnsperf (apt-get install dnsperf).",
			examples: []string{"statelab bench dns", "statelab bench dns --duration 2s --rounds 5 -c 200 --json"},
			flags: func(fs *flag.FlagSet) {
				f := &benchDNSFlags
				durationVar(fs, &f.duration, "duration", 2*time.Second, 100*time.Millisecond, 10*time.Minute, "length of each run")
				intVar(fs, &f.rounds, "rounds", benchcmp.DefaultRounds, 1, 100, "interleaved rounds (dnsperf, udpdns, udpdns, dnsperf, …)")
				intVar(fs, &f.c, "c", 100, 1, 10000, "queries in flight (udpdns goroutines; dnsperf -q)")
				aliasVar(fs, "concurrency", "c", "the same as -c")
				intVar(fs, &f.sockets, "sockets", 1, 1, 64, "udpdns client sockets")
				fs.BoolVar(&f.json, "json", false, "print JSON")
			},
			run: benchDNS,
		},
	}
}

// maxQueryRepeats bounds `dns query -n`.
const maxQueryRepeats = 10_000_000

// The dns commands' flags, declared in their flags funcs (flags.go).
var (
	dnsServeFlags struct {
		addr, zone    string
		cookieSecret  string
		delay, jitter time.Duration
		drop, dup     float64
		maxHeld       int
		quiet         bool
	}
	dnsQueryFlags struct {
		server, qtype   string
		n, c, retries   int
		timeout         time.Duration
		case0x20, quiet bool
		cookie          bool
		bufsize         int
	}
	benchDNSFlags struct {
		duration  time.Duration
		rounds, c int
		sockets   int
		json      bool
	}
)

// serveContext ends `dns serve` on a stop signal (tests substitute a
// context they cancel).
var serveContext = stopContext

func dnsServe(_ *flag.FlagSet, args []string) int {
	stdout, stderr := stdout, stderr // this command outlives its caller's view of the globals in tests
	f := dnsServeFlags
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab dns serve: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	if _, port, err := net.SplitHostPort(f.addr); err != nil {
		fmt.Fprintf(stderr, "statelab dns serve: --addr %q: want HOST:PORT, such as 127.0.0.1:5300 (port 0: any free port)\n", f.addr)
		return exitUsage
	} else if port == "5353" {
		fmt.Fprintf(stderr, "statelab dns serve: --addr %q: port 5353 is mDNS's; pick another port, such as 5300, or 0 for any free one\n", f.addr)
		return exitUsage
	}
	secret, err := parseCookieSecret(f.cookieSecret)
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns serve: %v\n", err)
		return exitUsage
	}
	zone := udpdns.BuiltinZone()
	if f.zone != "" {
		z, err := udpdns.LoadZoneFile(f.zone)
		if err != nil {
			fmt.Fprintf(stderr, "statelab dns serve: %v\n", err)
			return exitUsage
		}
		zone = z
	}
	// The zone, logged, wrapped in the faults the flags ask for (each a
	// no-op at 0), beneath a cap on the answers held.
	var inner dns.Handler = zone
	draws := dnsfault.NewDraws(0)
	held := dnsfault.NewHeldLimit(f.maxHeld)
	if !f.quiet {
		var mu sync.Mutex
		inner = queryLog(inner, stderr, &mu)
		held.OnRefused = func(w dns.ResponseWriter, q *dns.Msg) {
			logQuery(stderr, &mu, w, q, fmt.Sprintf("dropped: %d answers held already (--max-held)", f.maxHeld))
		}
	}
	h := dnsfault.Chain(inner,
		dnsfault.Limit(held),
		dnsfault.Drop(f.drop, draws),
		dnsfault.Duplicate(f.dup, draws),
		dnsfault.Delay(f.delay),
		dnsfault.Jitter(f.jitter, draws))
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: f.addr, Handler: h, TCP: true, Cookies: &udpdns.CookieConfig{Secret: secret}})
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns serve: %v (pick another --addr, or port 0)\n", err)
		return exitUsage
	}
	defer srv.Close()
	a := srv.Addr()
	ctx, stop := serveContext()
	defer stop()
	name, qtype := zone.Example()
	fmt.Fprintf(stdout, "listening on %s (udp and tcp)\ntry: dig @%s -p %d %s %s\n", a, a.Addr(), a.Port(),
		strings.TrimSuffix(name, "."), dns.TypeToString[qtype])
	<-ctx.Done()
	srv.Close() // answers still held are abandoned: the counts are final
	st := srv.Stats()
	fmt.Fprintf(stderr, "received %d, answered %d, dropped %d, duplicated %d; over the held-answers cap %d, tcp connections refused %d\n",
		st.Received, st.Answered, st.Unanswered, st.Copies, held.Refused(), st.ConnsRefused)
	return exitOK
}

// parseCookieSecret reads --cookie-secret: empty (a random secret), or
// exactly 32 hex digits.
func parseCookieSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	want := fmt.Sprintf("want %d hex digits (%d bytes), such as e5e973e5a6b2a43f48e7dc849e37bfcf, or leave it out for a random secret",
		2*udpdns.CookieSecretLen, udpdns.CookieSecretLen)
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("--cookie-secret %q is not hex: %s", s, want)
	}
	if len(b) != udpdns.CookieSecretLen {
		return nil, fmt.Errorf("--cookie-secret is %d bytes: %s", len(b), want)
	}
	return b, nil
}

// queryLog logs every answer h writes, one line on w: time, client
// (protocol and address), ID, name, type and rcode.
func queryLog(h dns.Handler, w io.Writer, mu *sync.Mutex) dns.Handler {
	return dns.HandlerFunc(func(rw dns.ResponseWriter, q *dns.Msg) {
		h.ServeDNS(&logWriter{ResponseWriter: rw, log: func(m *dns.Msg) {
			logQuery(w, mu, rw, q, dns.RcodeToString[m.Rcode])
		}}, q)
	})
}

// logQuery writes one line about q: time, protocol and client, ID, name,
// type and what became of it.
func logQuery(w io.Writer, mu *sync.Mutex, rw dns.ResponseWriter, q *dns.Msg, outcome string) {
	name, qtype := "?", "?"
	if len(q.Question) > 0 {
		name, qtype = q.Question[0].Name, dns.TypeToString[q.Question[0].Qtype]
	}
	proto := "udp"
	if _, ok := rw.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	line := fmt.Sprintf("%s %s %s id=%d %q %s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		proto, rw.RemoteAddr(), q.Id, name, qtype, outcome)
	mu.Lock()
	_, _ = io.WriteString(w, line)
	mu.Unlock()
}

// logWriter calls log with each message written.
type logWriter struct {
	dns.ResponseWriter
	log func(*dns.Msg)
}

func (w *logWriter) Context() context.Context { return dnsfault.Context(w.ResponseWriter) }

func (w *logWriter) WriteMsg(m *dns.Msg) error {
	w.log(m)
	return w.ResponseWriter.WriteMsg(m)
}

// parseServer splits `dns query --server` into a host and a port: an
// address (192.0.2.1, ::1, [::1]:5300) or a host name (localhost:5300),
// with port 53 when none is given.
func parseServer(s string) (host string, port uint16, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", 0, errors.New("--server is required: give the server as HOST[:PORT], such as 127.0.0.1:5300 or localhost:5300")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap.Addr().String(), ap.Port(), nil
	}
	bare := s
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		bare = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(bare); err == nil {
		return a.String(), 53, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		h, p = s, "53" // no port
	}
	v, err := strconv.ParseUint(p, 10, 16)
	if err != nil || v == 0 {
		return "", 0, fmt.Errorf("--server %q: the port must be a number from 1 to 65535", s)
	}
	if !validHostName(h) {
		return "", 0, fmt.Errorf("--server %q: want HOST[:PORT], HOST an address or a host name", s)
	}
	return h, uint16(v), nil
}

// validHostName accepts letters, digits, '-', '_' and '.', up to 253
// characters, no empty label.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// resolveServer is parseServer followed by a look-up of a host name (its
// IPv4 address first).
func resolveServer(ctx context.Context, s string) (netip.AddrPort, error) {
	host, port, err := parseServer(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("--server %q: cannot resolve %q: %v", s, host, err)
	}
	best := addrs[0].Unmap()
	for _, a := range addrs {
		if a.Unmap().Is4() {
			best = a.Unmap()
			break
		}
	}
	return netip.AddrPortFrom(best, port), nil
}

// maxErrorLines is how many failed queries `dns query` describes.
const maxErrorLines = 10

func dnsQuery(_ *flag.FlagSet, names []string) int {
	f := dnsQueryFlags
	if len(names) == 0 {
		fmt.Fprintf(stderr, "statelab dns query: name at least one NAME to resolve, such as example.lab\n")
		return exitUsage
	}
	qtype, ok := dns.StringToType[strings.ToUpper(f.qtype)]
	if !ok {
		fmt.Fprintf(stderr, "statelab dns query: unknown --type %q (A, AAAA, TXT, SOA, NS, CNAME, MX, ...)\n", f.qtype)
		return exitUsage
	}
	if f.bufsize > 0 && f.bufsize < dns.MinMsgSize {
		fmt.Fprintf(stderr, "statelab dns query: --bufsize %d: want 0 (no EDNS0) or %d to 65535 bytes (RFC 6891: smaller counts as %d)\n", f.bufsize, dns.MinMsgSize, dns.MinMsgSize)
		return exitUsage
	}
	// A stop signal cancels everything from here on (the look-up of
	// the server too); the signal is kept for the exit status.
	ctx, stop := stopContext()
	defer stop()
	server, err := resolveServer(ctx, f.server)
	if code := stopped(ctx, "dns query", " while looking up --server"); code != 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns query: %v\n", err)
		return exitUsage
	}
	retries := f.retries
	if retries == 0 {
		retries = -1 // the client's "exactly none"
	}
	// Which questions were answered over TCP (after a truncated UDP
	// answer), for dig's "(TCP)" in the answer's SERVER line.
	var overTCP sync.Map
	cl, err := udpdns.NewClient(udpdns.Config{Server: server, Timeout: f.timeout, Retries: retries, Case0x20: f.case0x20,
		Cookies: f.cookie, UDPSize: uint16(f.bufsize), TCPFallback: true, Trace: func(e udpdns.Event) {
			if e.Kind == udpdns.EventTCPAnswered {
				overTCP.Store(questionKey(e.Name, e.QType), true)
			}
		}})
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns query: %v\n", err)
		return exitUsage
	}
	defer cl.Close()

	total := int64(f.n) * int64(len(names))
	full := !f.quiet && f.n == 1 // dig's full answer per query; with -n the summary only
	started := time.Now()
	tcp := func(name string) bool { _, ok := overTCP.Load(questionKey(dns.Fqdn(name), qtype)); return ok }
	t := queryAll(ctx, cl, names, qtype, total, f.c, full, server, tcp)
	elapsed := time.Since(started)
	if code := stopped(ctx, "dns query", fmt.Sprintf(" after %d answered and %d failed of %d queries", t.answered, t.failed, total)); code != 0 {
		return code
	}
	t.print(stdout, full, elapsed, server, cl)
	if t.failed > 0 {
		return exitFail
	}
	return exitOK
}

// queryTally is what `dns query` counted of its queries.
type queryTally struct {
	answered, failed int64
	errLines         int // failed queries described on stderr
	lat              *latencies
	// overTCP reports whether name's answer came over TCP (after a
	// truncated UDP one).
	overTCP func(name string) bool
}

// queryAll sends total queries, names in turn, from at most c workers,
// printing each answer when full and describing the first failures on
// stderr. When ctx ends it stops; the queries in flight are not counted,
// and it waits for them a bounded while.
func queryAll(ctx context.Context, cl *udpdns.Client, names []string, qtype uint16, total int64, c int, full bool, server netip.AddrPort, overTCP func(name string) bool) *queryTally {
	t := &queryTally{lat: newLatencies(100_000), overTCP: overTCP}
	workers := int(min(int64(c), total)) // never more goroutines than queries
	var (
		next    atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
		stopped bool // the tally is returned: a query still in flight counts nothing
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				name := names[i%int64(len(names))]
				t0 := time.Now()
				r, err := cl.Query(ctx, name, qtype)
				rtt := time.Since(t0)
				if ctx.Err() != nil {
					return // stopped: this query's outcome is not counted
				}
				mu.Lock()
				if !stopped {
					t.add(name, r, rtt, err, full, server)
				}
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		select { // a bounded drain: the queries in flight end with the context
		case <-done:
		case <-time.After(500 * time.Millisecond):
		}
	}
	mu.Lock()
	defer mu.Unlock()
	stopped = true
	return t
}

// add counts one query's outcome (the caller holds the tally's lock).
func (t *queryTally) add(name string, r *dns.Msg, rtt time.Duration, err error, full bool, server netip.AddrPort) {
	if err != nil {
		t.failed++
		if t.errLines++; t.errLines <= maxErrorLines {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
		} else if t.errLines == maxErrorLines+1 {
			fmt.Fprintf(stderr, "(further failed queries counted, not described)\n")
		}
		return
	}
	t.answered++
	t.lat.add(rtt)
	if full {
		printAnswer(stdout, r, rtt, server, t.overTCP(name))
	}
}

// print writes the client's statistics and, for more than one query, the
// rate and latencies.
func (t *queryTally) print(w io.Writer, full bool, elapsed time.Duration, server netip.AddrPort, cl *udpdns.Client) {
	if full {
		fmt.Fprintf(w, ";; client %v: %s\n", cl.LocalAddrs(), cl.Stats())
		return
	}
	n := t.answered + t.failed
	fmt.Fprintf(w, ";; %d queries in %.3f s: %.0f queries/s; %d answered, %d failed\n",
		n, elapsed.Seconds(), float64(n)/max(elapsed.Seconds(), 1e-9), t.answered, t.failed)
	if t.answered > 0 {
		fmt.Fprintf(w, ";; latency p50 %s, p90 %s, p99 %s, max %s\n", msec(t.lat.quantile(0.5)), msec(t.lat.quantile(0.9)),
			msec(t.lat.quantile(0.99)), msec(t.lat.max))
	}
	fmt.Fprintf(w, ";; SERVER: %s#%d\n;; client %v: %s\n", server.Addr(), server.Port(), cl.LocalAddrs(), cl.Stats())
}

// printAnswer prints r as dig does: the header, the question, the answer,
// authority and additional sections (miekg/dns's Msg.String, dig's layout),
// the query time and the server with the transport that brought the
// answer (TCP after a truncated UDP answer, said first as dig says it).
func printAnswer(w io.Writer, r *dns.Msg, rtt time.Duration, server netip.AddrPort, tcp bool) {
	transport := "UDP"
	if tcp {
		transport = "TCP"
		fmt.Fprintln(w, ";; Truncated, retrying in TCP mode.")
	}
	fmt.Fprintf(w, "%s\n\n;; Query time: %d msec\n;; SERVER: %s#%d(%s) (%s)\n;; MSG SIZE  rcvd: %d\n\n",
		strings.TrimRight(r.String(), "\n"), rtt.Milliseconds(), server.Addr(), server.Port(), server.Addr(), transport, r.Len())
}

// questionKey names a question whatever its letter case (0x20 randomises
// the case the client sends).
func questionKey(name string, qtype uint16) string {
	return strings.ToLower(name) + "/" + strconv.Itoa(int(qtype))
}

func msec(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// latencies keeps a uniform sample (reservoir) of at most cap durations,
// so -n of any size costs bounded memory, and the largest seen.
type latencies struct {
	sample []time.Duration
	cap    int
	seen   int64
	max    time.Duration
	rnd    *rand.Rand
}

func newLatencies(n int) *latencies {
	return &latencies{cap: n, rnd: rand.New(rand.NewPCG(1, 2))}
}

func (l *latencies) add(d time.Duration) {
	l.seen++
	l.max = max(l.max, d)
	if len(l.sample) < l.cap {
		l.sample = append(l.sample, d)
		return
	}
	if j := l.rnd.Int64N(l.seen); j < int64(l.cap) {
		l.sample[j] = d
	}
}

// quantile is the q-quantile (0..1) of the sample, nearest rank.
func (l *latencies) quantile(q float64) time.Duration {
	if len(l.sample) == 0 {
		return 0
	}
	s := slices.Clone(l.sample)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func benchDNS(_ *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench dns: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench dns: %v\n", err)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	f := benchDNSFlags
	conc := f.c
	r, err := dnsexp.Bench(ctx, dnsexp.BenchConfig{Duration: f.duration, Rounds: f.rounds,
		InFlight: conc, Sockets: f.sockets})
	if code := stopped(ctx, "bench dns", benchCutShort); code != 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench dns: %v\n", err)
		return exitUsage
	}
	rounds := len(r.UdpRounds)
	if f.json {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"server": r.Server, "concurrency": conc, "rounds": rounds,
			"udpdns_rounds": r.UdpRounds, "udpdns_func_rounds": r.FuncRounds, "dnsperf_rounds": r.DnsperfRounds, "comparisons": r.Comparisons,
			"note": "every figure from the same interleaved rounds; dnsperf reports no percentiles without -v (which slows it), so only its average latency"})
		return exitOK
	}
	fmt.Fprintf(stdout, "server %s (miekg/dns, a process of its own; CPU: each client's own), %d interleaved rounds of %v each, %d in flight (dnsperf -q %d -c 1 -T 1 -b %d; udpdns-func %d slots sending from the reader; udpdns %d goroutines calling Exchange)\n",
		r.Server, rounds, f.duration, conc, conc, 4096, conc, conc)
	fmt.Fprintf(stdout, "  %-5s %-11s %10s %10s %6s %9s %9s %9s %12s\n", "round", "tool", "qps", "completed", "lost", "avg ms", "p50 ms", "p99 ms", "CPU µs/query")
	for i := range rounds {
		for _, b := range []dnsexp.BenchResult{r.DnsperfRounds[i], r.FuncRounds[i], r.UdpRounds[i]} {
			fmt.Fprintf(stdout, "  %-5d %-11s %10.0f %10d %6d %9.3f %9.3f %9.3f %12.2f\n", i+1, b.Tool, b.QPS, b.Completed, b.Lost, b.AvgMS, b.P50MS, b.P99MS, b.CPUPerQueryUS)
		}
	}
	for _, c := range r.Comparisons {
		fmt.Fprintf(stdout, "  %s\n", c)
	}
	return exitOK
}

// dnsExperiments are the dns/ experiments of statelab's catalogue.
func dnsExperiments() []lab.Experiment { return dnsexp.Experiments() }
