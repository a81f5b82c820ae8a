package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

func TestDNSCommands(t *testing.T) {
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	server := srv.Addr().String()
	port := strconv.Itoa(int(srv.Addr().Port()))
	synth := "x." + udpdns.SynthSuffix
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings expected on stdout
		stderr []string // substrings expected on stderr
	}{
		{"serve --help", []string{"dns", "serve", "--help"}, 0, []string{"Usage: statelab dns serve", "-zone", "Examples:", "dig @127.0.0.1 -p 5300", `default "127.0.0.1:5300"`}, nil},
		{"query --help", []string{"dns", "query", "-h"}, 0, []string{"Usage: statelab dns query", "-server"}, nil},
		{"serve bad flag", []string{"dns", "serve", "--frob"}, 2, nil, []string{"flag provided but not defined: -frob", "statelab dns serve --help"}},
		{"serve bad duration", []string{"dns", "serve", "--delay", "soon"}, 2, nil, []string{"invalid value", "-delay"}},
		{"serve takes no arguments", []string{"dns", "serve", "extra"}, 2, nil, []string{"takes no arguments"}},
		{"serve missing zone file", []string{"dns", "serve", "--addr", "127.0.0.1:0", "--zone", "/nonexistent/db.zone"}, 2, nil, []string{"zone file", "no such file"}},
		{"serve on a taken address", []string{"dns", "serve", "--addr", server}, 2, nil, []string{"address already in use", "pick another --addr"}},
		{"query bad flag", []string{"dns", "query", "-n", "many", "--server", server, synth}, 2, nil, []string{"invalid value", "-n"}},
		{"query bad --server", []string{"dns", "query", "--server", "bad host!", synth}, 2, nil, []string{`--server "bad host!": want HOST[:PORT]`}},
		{"query no --server", []string{"dns", "query", synth}, 2, nil, []string{"--server is required", "HOST[:PORT]"}},
		{"query no name", []string{"dns", "query", "--server", server}, 2, nil, []string{"at least one NAME"}},
		{"query bad type", []string{"dns", "query", "--server", server, "--type", "NOPE", synth}, 2, nil, []string{`unknown --type "NOPE"`}},
		{"query NOERROR prints the answer like dig", []string{"dns", "query", "--server", server, synth, "example.lab"}, 0,
			[]string{"status: NOERROR", ";; QUESTION SECTION:\n;" + synth + "\tIN\t A", ";; ANSWER SECTION:\n" + synth + "\t60\tIN\tA\t" + udpdns.SynthA(synth).String(),
				"example.lab.\t60\tIN\tA\t192.0.2.1", ";; Query time: ", ";; SERVER: 127.0.0.1#" + port + "(127.0.0.1)",
				";; client [127.0.0.1:", "sent=2 matched=2 lost=0"}, nil},
		{"query a host name and port", []string{"dns", "query", "--server", "localhost:" + port, "example.lab"}, 0,
			[]string{"status: NOERROR", "192.0.2.1", ";; SERVER: 127.0.0.1#" + port}, nil},
		{"query NODATA prints the SOA in AUTHORITY", []string{"dns", "query", "--server", server, "--type", "AAAA", "ns.lab"}, 0,
			[]string{"status: NOERROR", "ANSWER: 0, AUTHORITY: 1", ";; AUTHORITY SECTION:\nlab.\t60\tIN\tSOA\tns.lab. hostmaster.lab."}, nil},
		{"query NXDOMAIN prints the SOA in AUTHORITY", []string{"dns", "query", "--server", server, "nosuch.lab"}, 0,
			[]string{"status: NXDOMAIN", ";nosuch.lab.\tIN\t A", ";; AUTHORITY SECTION:\nlab.\t60\tIN\tSOA"}, nil},
		{"query many prints a summary with rate and percentiles", []string{"dns", "query", "--server", server, "-n", "50", "--concurrency", "8", synth}, 0,
			[]string{";; 50 queries in ", " queries/s; 50 answered, 0 failed", ";; latency p50 ", ", p90 ", ", p99 ", "sent=50 matched=50 lost=0"}, nil},
		{"query many, quiet", []string{"dns", "query", "--server", server, "-n", "50", "-c", "8", "-q", synth}, 0,
			[]string{"sent=50 matched=50 lost=0", "queries/s"}, nil},
		{"query one name with -c far above the queries", []string{"dns", "query", "--server", server, "-c", "10000", synth}, 0,
			[]string{"sent=1 matched=1 lost=0"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			ok := code == tt.code
			for _, w := range tt.stdout {
				ok = ok && strings.Contains(out, w)
			}
			for _, w := range tt.stderr {
				ok = ok && strings.Contains(errOut, w)
			}
			if !ok {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	// A server that never answers: the query fails with exit 1, counted lost.
	t.Run("query timing out", func(t *testing.T) {
		dead, err := udpdns.StartServer(udpdns.ServerConfig{Addr: "127.0.0.1:0",
			Handler: dnsfault.Drop(1, nil)(udpdns.BuiltinZone())})
		if err != nil {
			t.Fatal(err)
		}
		defer dead.Close()
		code, out, errOut := run("dns", "query", "--server", dead.Addr().String(), "--timeout", "50ms", "--retries", "1", synth)
		if code != 1 || !strings.Contains(errOut, "2 attempt(s): udpdns: timeout") || !strings.Contains(out, "sent=2 matched=0 lost=2") {
			t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a command writing from another
// goroutine; written is signalled on each write.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{written: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.written <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `dns serve` runs until its context ends: here a context the test cancels
// in place of SIGINT/SIGTERM. It serves the zone wrapped in the faults its
// flags ask for, and says what it did as it stops.
func TestDNSServeServesUntilStopped(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "db.example")
	if err := os.WriteFile(zone, []byte("$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nwww IN A 198.51.100.80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   []string
		query   string
		answer  string // "" when no answer comes
		dups    uint64
		stopped string
	}{
		{"a zone file", []string{"--zone", zone}, "www.example.test", "198.51.100.80", 0, "received 1, answered 1, dropped 0, duplicated 0"},
		{"the built-in zone, delayed and jittered", []string{"--delay", "20ms", "--jitter", "5ms"}, "example.lab", "192.0.2.1", 0,
			"received 1, answered 1, dropped 0, duplicated 0"},
		{"every answer twice", []string{"--dup", "1"}, "example.lab", "192.0.2.1", 1, "received 1, answered 1, dropped 0, duplicated 1"},
		{"every query dropped", []string{"--drop", "1"}, "example.lab", "", 0, "received 1, answered 0, dropped 1, duplicated 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, errOut, stop := startServe(t, tt.flags...)
			ev := make(chan udpdns.Event, 16)
			c, err := udpdns.NewClient(udpdns.Config{Server: addr, Timeout: 300 * time.Millisecond, Retries: -1,
				Trace: func(e udpdns.Event) {
					select {
					case ev <- e:
					default:
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r, err := c.Query(context.Background(), tt.query, dns.TypeA)
			switch {
			case tt.answer == "" && err == nil:
				t.Errorf("answered %v, want no answer", r)
			case tt.answer != "" && (err != nil || len(r.Answer) == 0 || r.Answer[len(r.Answer)-1].(*dns.A).A.String() != tt.answer):
				t.Errorf("query: %v %v, want %s", r, err, tt.answer)
			}
			for c.Stats().Duplicate < tt.dups {
				<-ev // the copy is on its way
			}
			code := stop()
			if code != 0 || !strings.Contains(errOut.String(), tt.stopped) {
				t.Errorf("serve exited %d; stderr: %s; want %q", code, errOut.String(), tt.stopped)
			}
		})
	}
}

// startServe runs `dns serve` on a free port with flags until stop, which
// returns its exit code.
func startServe(t *testing.T, flags ...string) (addr netip.AddrPort, errOut *syncBuffer, stop func() int) {
	t.Helper()
	addr, _, errOut, stop = startServeOut(t, flags...)
	return addr, errOut, stop
}

// startServeOut is startServe that also returns the command's stdout.
func startServeOut(t *testing.T, flags ...string) (addr netip.AddrPort, out, errOut *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	old := serveContext
	serveContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	t.Cleanup(func() { cancel(); serveContext = old })
	out, errOut = newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- Main(append([]string{"dns", "serve", "--addr", "127.0.0.1:0"}, flags...), out, errOut) }()
	re := regexp.MustCompile(`listening on (\S+) \(udp and tcp\)`)
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !addr.IsValid() {
		select {
		case <-out.written:
			if m := re.FindStringSubmatch(out.String()); m != nil {
				addr = netip.MustParseAddrPort(m[1])
			}
		case code := <-done:
			t.Fatalf("serve exited %d before listening\nstdout: %s\nstderr: %s", code, out.String(), errOut.String())
		case <-deadline.C:
			t.Fatalf("serve never said where it listens: %q", out.String())
		}
	}
	return addr, out, errOut, func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("serve did not stop when its context ended")
			return -1
		}
	}
}

// Every numeric dns flag is range-checked: a bad value is a usage error
// (exit 2) naming the flag and the range, before anything runs.
func TestDNSFlagsRefuseBadValues(t *testing.T) {
	tests := []struct {
		name string
		args []string
		msg  string
	}{
		{"serve --drop above 1", []string{"dns", "serve", "--drop", "2"}, "-drop: want a number from 0 to 1"},
		{"serve --drop NaN", []string{"dns", "serve", "--drop", "NaN"}, "-drop: want a number from 0 to 1"},
		{"serve --drop Inf", []string{"dns", "serve", "--drop", "Inf"}, "-drop: want a number from 0 to 1"},
		{"serve --dup negative", []string{"dns", "serve", "--dup", "-1"}, "-dup: want a number from 0 to 1"},
		{"serve --delay negative", []string{"dns", "serve", "--delay", "-5s"}, "-delay: want a duration from 0s to 1m0s"},
		{"serve --jitter too long", []string{"dns", "serve", "--jitter", "2h"}, "-jitter: want a duration from 0s to 1m0s"},
		{"serve --max-held zero", []string{"dns", "serve", "--max-held", "0"}, "-max-held: want a whole number from 1 to 100000"},
		{"serve on mDNS's port", []string{"dns", "serve", "--addr", "127.0.0.1:5353"}, "port 5353 is mDNS's"},
		{"serve --addr without a port", []string{"dns", "serve", "--addr", "127.0.0.1"}, "want HOST:PORT"},
		{"serve --cookie-secret not hex", []string{"dns", "serve", "--addr", "127.0.0.1:0", "--cookie-secret", "not-hex"}, `--cookie-secret "not-hex" is not hex: want 32 hex digits (16 bytes)`},
		{"serve --cookie-secret too short", []string{"dns", "serve", "--addr", "127.0.0.1:0", "--cookie-secret", "abcd"}, "--cookie-secret is 2 bytes: want 32 hex digits (16 bytes)"},
		{"serve --cookie-secret too long", []string{"dns", "serve", "--addr", "127.0.0.1:0", "--cookie-secret", strings.Repeat("ab", 17)}, "--cookie-secret is 17 bytes"},
		{"serve a zone file over 1 MiB", []string{"dns", "serve", "--addr", "127.0.0.1:0", "--zone", "/dev/zero"}, "larger than 1048576 bytes"},
		{"query --timeout negative", []string{"dns", "query", "--timeout", "-1s", "--server", "127.0.0.1", "x.lab"}, "-timeout: want a duration from 1ms to 1m0s"},
		{"query --retries negative", []string{"dns", "query", "--retries", "-1", "--server", "127.0.0.1", "x.lab"}, "-retries: want a whole number from 0 to 10"},
		{"query -c zero", []string{"dns", "query", "-c", "0", "--server", "127.0.0.1", "x.lab"}, "-c: want a whole number from 1 to 10000"},
		{"query -c a million", []string{"dns", "query", "-c", "1000000", "--server", "127.0.0.1", "x.lab"}, "-c: want a whole number from 1 to 10000"},
		{"query --concurrency a million", []string{"dns", "query", "--concurrency", "1000000", "--server", "127.0.0.1", "x.lab"}, "-concurrency: want a whole number from 1 to 10000"},
		{"query -n zero", []string{"dns", "query", "-n", "0", "--server", "127.0.0.1", "x.lab"}, "-n: want a whole number from 1 to 10000000"},
		{"query -n a trillion", []string{"dns", "query", "-n", "1000000000000", "--server", "127.0.0.1", "x.lab"}, "-n: want a whole number from 1 to 10000000"},
		{"query --bufsize below 512", []string{"dns", "query", "--bufsize", "100", "--server", "127.0.0.1", "x.lab"}, "--bufsize 100: want 0 (no EDNS0) or 512 to 65535 bytes"},
		{"query --bufsize above 65535", []string{"dns", "query", "--bufsize", "70000", "--server", "127.0.0.1", "x.lab"}, "-bufsize: want a whole number from 0 to 65535"},
		{"query a port out of range", []string{"dns", "query", "--server", "127.0.0.1:70000", "x.lab"}, "the port must be a number from 1 to 65535"},
		{"bench --duration negative", []string{"bench", "dns", "--duration", "-1s"}, "-duration: want a duration from 100ms to 10m0s"},
		{"bench --rounds zero", []string{"bench", "dns", "--rounds", "0"}, "-rounds: want a whole number from 1 to 100"},
		{"bench --runs is not a flag", []string{"bench", "dns", "--runs", "3"}, "flag provided but not defined: -runs"},
		{"bench -c zero", []string{"bench", "dns", "-c", "0"}, "-c: want a whole number from 1 to 10000"},
		{"bench --sockets zero", []string{"bench", "dns", "--sockets", "0"}, "-sockets: want a whole number from 1 to 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.msg) || strings.Contains(errOut, "<nil>") {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant 2, stderr containing %q", tt.args, code, out, errOut, tt.msg)
			}
		})
	}
}

// parseServer takes what people type after dig's @ and more: an address
// with or without a port, a host name with or without one; port 53 by
// default.
func TestDNSParseServer(t *testing.T) {
	tests := []struct {
		in, host string
		port     uint16
		err      string
	}{
		{"127.0.0.1:5300", "127.0.0.1", 5300, ""},
		{"127.0.0.1", "127.0.0.1", 53, ""},
		{"::1", "::1", 53, ""},
		{"[::1]", "::1", 53, ""},
		{"[::1]:5300", "::1", 5300, ""},
		{"localhost:5300", "localhost", 5300, ""},
		{"localhost", "localhost", 53, ""},
		{"ns1.example.lab.", "ns1.example.lab.", 53, ""},
		{" 127.0.0.1:5300 ", "127.0.0.1", 5300, ""},
		{"", "", 0, "--server is required"},
		{"localhost:0", "", 0, "the port must be a number from 1 to 65535"},
		{"127.0.0.1:0", "", 0, "the port must be a number from 1 to 65535"},
		{"localhost:99999", "", 0, "the port must be a number from 1 to 65535"},
		{"localhost:http", "", 0, "the port must be a number from 1 to 65535"},
		{"bad host!", "", 0, "want HOST[:PORT]"},
		{":5300", "", 0, "want HOST[:PORT]"},
		{"a..b", "", 0, "want HOST[:PORT]"},
		{"[::1", "", 0, "want HOST[:PORT]"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := parseServer(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("parseServer(%q) = %q %d %v, want an error containing %q", tt.in, host, port, err, tt.err)
				}
				return
			}
			if err != nil || host != tt.host || port != tt.port {
				t.Errorf("parseServer(%q) = %q %d %v, want %q %d", tt.in, host, port, err, tt.host, tt.port)
			}
		})
	}
	// A host name is resolved, its IPv4 address first.
	ap, err := resolveServer(context.Background(), "localhost:5300")
	if err != nil || ap != netip.MustParseAddrPort("127.0.0.1:5300") {
		t.Errorf("resolveServer(localhost:5300) = %v %v, want 127.0.0.1:5300", ap, err)
	}
}

// parseServer never panics, and what it accepts is a port from 1 and a
// host that is an address or a plausible host name.
func FuzzDNSParseServer(f *testing.F) {
	for _, s := range []string{"127.0.0.1:5300", "localhost", "[::1]:53", "::1", "", ":0", "a..b:1", "[::1", "x:65536", "%", "[fe80::1%eth0]:53"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := parseServer(s)
		if err != nil {
			if strings.Contains(err.Error(), "<nil>") {
				t.Errorf("parseServer(%q): error mentions <nil>: %v", s, err)
			}
			return
		}
		if port == 0 || host == "" {
			t.Errorf("parseServer(%q) = %q %d: accepted without host or port", s, host, port)
		}
		if _, aerr := netip.ParseAddr(host); aerr != nil && !validHostName(host) {
			t.Errorf("parseServer(%q) = %q: neither an address nor a host name", s, host)
		}
	})
}

// SIGINT, SIGTERM and SIGHUP (the terminal closed) stop `dns query -n
// HUGE` against a server that answers nothing within a second, with one
// line and exit 128+signal, as `statelab run` stops.
func TestDNSQueryStopsOnSignal(t *testing.T) {
	tests := []struct {
		sig  os.Signal
		code int
		line string
	}{
		{os.Interrupt, 130, "stopped by SIGINT"},
		{syscall.SIGTERM, 143, "stopped by SIGTERM"},
		{syscall.SIGHUP, 129, "stopped by SIGHUP"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			skipIgnoredHangup(t, tt.sig)
			first := make(chan struct{})
			var once sync.Once
			dead, err := udpdns.StartServer(udpdns.ServerConfig{Addr: "127.0.0.1:0",
				Handler: dns.HandlerFunc(func(dns.ResponseWriter, *dns.Msg) { once.Do(func() { close(first) }) })}) // never answers
			if err != nil {
				t.Fatal(err)
			}
			defer dead.Close()
			sigs := make(chan os.Signal, 1)
			old := notifyStop
			notifyStop = func() (<-chan os.Signal, func()) { return sigs, func() {} }
			defer func() { notifyStop = old }()
			var o, e bytes.Buffer
			done := make(chan int, 1)
			go func() {
				done <- Main([]string{"dns", "query", "--server", dead.Addr().String(), "-n", "10000000", "-c", "1000", "--timeout", "1m", "x.synth.lab"}, &o, &e)
			}()
			select {
			case <-first: // queries are in flight
			case <-time.After(10 * time.Second):
				t.Fatal("no query reached the server")
			}
			sigs <- tt.sig
			start := time.Now()
			select {
			case code := <-done:
				if took := time.Since(start); code != tt.code || took > time.Second ||
					strings.Count(e.String(), "\n") != 1 || !strings.Contains(e.String(), tt.line) {
					t.Errorf("exit %d after %v\nstdout: %s\nstderr: %s\nwant %d within 1s and one line %q", code, took, o.String(), e.String(), tt.code, tt.line)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("dns query did not stop on the signal")
			}
		})
	}
}

// `dns serve` logs each query on stderr (not with --quiet), answers over
// TCP as well as UDP, and suggests a name from the zone it serves.
func TestDNSServeLogsTCPAndSuggestion(t *testing.T) {
	zone := filepath.Join(t.TempDir(), "db.example")
	if err := os.WriteFile(zone, []byte("$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nwww IN A 198.51.100.80\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		flags      []string
		query      string
		answer     string
		suggestion string
		logged     bool
	}{
		{"the built-in zone, logged", nil, "example.lab.", "192.0.2.1", "example.lab A", true},
		{"a zone file, logged", []string{"--zone", zone}, "www.example.test.", "198.51.100.80", "www.example.test A", true},
		{"quiet", []string{"--quiet"}, "example.lab.", "192.0.2.1", "example.lab A", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, out, errOut, stop := startServeOut(t, tt.flags...)
			want := fmt.Sprintf("try: dig @%s -p %d %s", addr.Addr(), addr.Port(), tt.suggestion)
			if !strings.Contains(out.String(), want) {
				t.Errorf("stdout %q, want %q", out.String(), want)
			}
			for _, proto := range []string{"udp", "tcp"} {
				q := new(dns.Msg)
				q.SetQuestion(tt.query, dns.TypeA)
				r, _, err := (&dns.Client{Net: proto, Timeout: 5 * time.Second}).Exchange(q, addr.String())
				if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != tt.answer {
					t.Errorf("%s query: %v %v, want %s", proto, r, err, tt.answer)
				}
			}
			if code := stop(); code != 0 {
				t.Errorf("serve exited %d", code)
			}
			logs := errOut.String()
			for _, proto := range []string{"udp", "tcp"} {
				re := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ` + proto + ` 127\.0\.0\.1:\d+ id=\d+ ` + regexp.QuoteMeta(strconv.Quote(tt.query)) + ` A NOERROR$`)
				if re.MatchString(logs) != tt.logged {
					t.Errorf("stderr %q: %s query logged %v, want %v", logs, proto, !tt.logged, tt.logged)
				}
			}
			if !strings.Contains(logs, "received 2, answered 2, dropped 0") {
				t.Errorf("stderr %q, want the counts", logs)
			}
		})
	}
}

// --max-held caps the answers `dns serve` holds: with --delay, queries
// beyond the cap are dropped and counted.
func TestDNSServeCapsHeldAnswers(t *testing.T) {
	addr, errOut, stop := startServe(t, "--delay", "1m", "--max-held", "2")
	conn, err := net.Dial("udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 5 {
		q := new(dns.Msg)
		q.SetQuestion(fmt.Sprintf("q%d.synth.lab.", i), dns.TypeA)
		b, _ := q.Pack()
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// Each query dropped for the cap is logged: wait for the three.
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for strings.Count(errOut.String(), "answers held already (--max-held)") < 3 {
		select {
		case <-errOut.written:
		case <-deadline.C:
			t.Fatalf("stderr %q: three queries not dropped for the cap", errOut.String())
		}
	}
	_ = stop()
	if s := errOut.String(); !strings.Contains(s, "received 5, answered 0, dropped 5") || !strings.Contains(s, "over the held-answers cap 3") {
		t.Errorf("stderr %q, want 5 received, 3 over the held-answers cap", s)
	}
}

// `dns serve` as dig sees it: +cookie gets a valid RFC 9018 server cookie
// (made with --cookie-secret, for dig's address and client cookie); a
// small +bufsize gets big.lab's answer truncated over UDP and dig retries
// over TCP; +tcp works.
func TestDNSServeWithDig(t *testing.T) {
	dig := labtest.NeedTool(t, "dig")
	const secretHex = "e5e973e5a6b2a43f48e7dc849e37bfcf"
	addr, _, stop := startServe(t, "--cookie-secret", secretHex, "--quiet")
	defer stop()
	run := func(args ...string) string {
		t.Helper()
		base := []string{"@" + addr.Addr().String(), "-p", strconv.Itoa(int(addr.Port())), "+time=5", "+tries=1"}
		out, err := exec.Command(dig, append(base, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Run("+cookie gets a valid server cookie", func(t *testing.T) {
		out := run("+cookie", "example.lab", "A")
		m := regexp.MustCompile(`; COOKIE: ([0-9a-f]{16})([0-9a-f]{32}) \(good\)`).FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "192.0.2.1") {
			t.Fatalf("dig +cookie output lacks a good 24-byte cookie and the answer:\n%s", out)
		}
		secret, _ := hex.DecodeString(secretHex)
		c, err := udpdns.NewCookies(udpdns.CookieConfig{Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		client, _ := hex.DecodeString(m[1])
		server, _ := hex.DecodeString(m[2])
		if v := c.Check([8]byte(client), server, netip.MustParseAddr("127.0.0.1")); v != udpdns.CookieValid {
			t.Errorf("the server cookie dig got is %v, want valid", v)
		}
	})
	t.Run("+bufsize=512 truncates over UDP, dig retries over TCP", func(t *testing.T) {
		out := run("+bufsize=512", "big.lab", "TXT")
		if !strings.Contains(out, "Truncated, retrying in TCP mode") || !strings.Contains(out, "ANSWER: 16") {
			t.Errorf("dig +bufsize=512 big.lab TXT:\n%s", out)
		}
	})
	t.Run("+tcp", func(t *testing.T) {
		out := run("+tcp", "big.lab", "TXT")
		if !strings.Contains(out, "ANSWER: 16") || strings.Contains(out, "Truncated") {
			t.Errorf("dig +tcp big.lab TXT:\n%s", out)
		}
	})
}

// `dns query` against `dns serve`: --bufsize 512 gets big.lab's answer
// truncated over UDP and asks again over TCP (all 16 records); --cookie
// learns the server's cookie and counts no rejection.
func TestDNSQueryBufsizeAndCookie(t *testing.T) {
	addr, _, stop := startServe(t, "--quiet")
	defer stop()
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"--bufsize 512: TC, then TCP", []string{"--bufsize", "512", "--type", "TXT", "big.lab"}, []string{"ANSWER: 16", "truncated=1 tcp=1/1", ";; Truncated, retrying in TCP mode.", ") (TCP)\n"}},
		{"--bufsize 4096: fits over UDP", []string{"--bufsize", "4096", "--type", "TXT", "big.lab"}, []string{"ANSWER: 16", "truncated=0 tcp=0/0", ") (UDP)\n"}},
		{"--cookie", []string{"--cookie", "example.lab", "x.synth.lab"}, []string{"192.0.2.1", "missing-cookie=0 wrong-cookie=0", "badcookie=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(append([]string{"dns", "query", "--server", addr.String()}, tt.args...)...)
			for _, w := range tt.wants {
				if code != 0 || !strings.Contains(out, w) {
					t.Errorf("exit %d, stdout lacks %q:\n%s\nstderr: %s", code, w, out, errOut)
				}
			}
		})
	}
}
