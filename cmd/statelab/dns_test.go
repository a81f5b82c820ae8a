package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
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
		{"query bad --server", []string{"dns", "query", "--server", "localhost", synth}, 2, nil, []string{"need --server HOST:PORT"}},
		{"query no --server", []string{"dns", "query", synth}, 2, nil, []string{"need --server HOST:PORT"}},
		{"query no name", []string{"dns", "query", "--server", server}, 2, nil, []string{"at least one NAME"}},
		{"query bad type", []string{"dns", "query", "--server", server, "--type", "NOPE", synth}, 2, nil, []string{`unknown --type "NOPE"`}},
		{"query answers and counters", []string{"dns", "query", "--server", server, synth, "example.lab"}, 0,
			[]string{";; NOERROR " + synth, synth + "\t60\tIN\tA\t" + udpdns.SynthA(synth).String(), ";; NOERROR example.lab", "192.0.2.1",
				";; client [127.0.0.1:", "sent=2 matched=2 lost=0"}, nil},
		{"query NXDOMAIN", []string{"dns", "query", "--server", server, "nosuch.lab"}, 0, []string{";; NXDOMAIN nosuch.lab"}, nil},
		{"query many, quiet", []string{"dns", "query", "--server", server, "-n", "50", "-c", "8", "-q", synth}, 0,
			[]string{"sent=50 matched=50 lost=0"}, nil},
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
	ctx, cancel := context.WithCancel(context.Background())
	old := serveContext
	serveContext = func() (context.Context, context.CancelFunc) { return ctx, cancel }
	t.Cleanup(func() { cancel(); serveContext = old })
	out, errOut := newSyncBuffer(), newSyncBuffer()
	done := make(chan int, 1)
	go func() { done <- Main(append([]string{"dns", "serve", "--addr", "127.0.0.1:0"}, flags...), out, errOut) }()
	re := regexp.MustCompile(`listening on (\S+) \(udp\)`)
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
	return addr, errOut, func() int {
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
