package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/quicconn"
)

func TestQUICGetUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring expected on stdout
		stderr string // substring expected on stderr
	}{
		{"--help shows examples", []string{"quic", "get", "--help"}, 0, "Examples:", ""},
		{"--help shows an https example", []string{"quic", "get", "-h"}, 0, "statelab quic get https://127.0.0.1:4433/bytes/", ""},
		{"--help documents --insecure", []string{"quic", "get", "--help"}, 0, "-insecure", ""},
		{"missing URL", []string{"quic", "get"}, 2, "", "give one URL"},
		{"two URLs", []string{"quic", "get", "https://127.0.0.1:1/", "https://127.0.0.1:2/"}, 2, "", "give one URL"},
		{"bad scheme", []string{"quic", "get", "http://127.0.0.1:4433/"}, 2, "", `unsupported URL "http://127.0.0.1:4433/"`},
		{"no port", []string{"quic", "get", "https://127.0.0.1/"}, 2, "", "has no port"},
		{"raw path must be /bytes/N", []string{"quic", "get", "quic://127.0.0.1:4433/index"}, 2, "", "path must be /bytes/N"},
		{"bad duration", []string{"quic", "get", "--migrate-after", "soon", "https://127.0.0.1:4433/"}, 2, "", "invalid value"},
		{"-o into a missing directory", []string{"quic", "get", "-o", "/nonexistent/dir/out", "https://127.0.0.1:4433/"}, 2, "", "-o /nonexistent/dir/out: cannot write there"},
		{"-o a directory", []string{"quic", "get", "-o", "/", "https://127.0.0.1:4433/"}, 2, "", "is a directory"},
		{"--data over raw streams", []string{"quic", "get", "-d", "x", "quic://127.0.0.1:4433/bytes/1"}, 2, "", "--data needs an https:// URL"},
		{"--data from a missing file", []string{"quic", "get", "-d", "@/nonexistent/body", "https://127.0.0.1:4433/echo"}, 2, "", "--data @/nonexistent/body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// Every numeric flag of the quic commands is range-checked: a bad value is
// a usage error (exit 2) that names the flag and the range, before
// anything runs.
func TestQUICFlagsRefuseBadValues(t *testing.T) {
	url := "https://127.0.0.1:4433/"
	tests := []struct {
		name string
		args []string
		want string // on stderr
	}{
		{"bench quic --runs -1", []string{"bench", "quic", "--runs", "-1"}, "-runs: want a whole number from 1 to 100"},
		{"bench quic --rounds 0", []string{"bench", "quic", "--rounds", "0"}, "-rounds: want a whole number from 1 to 100"},
		{"bench quic --rounds 1000", []string{"bench", "quic", "--rounds", "1000"}, "from 1 to 100"},
		{"bench quic --rounds x", []string{"bench", "quic", "--rounds", "x"}, "want a whole number"},
		{"bench quic --size 0", []string{"bench", "quic", "--size", "0"}, "-size: want a size from 1 to 1GiB"},
		{"bench quic --size 2GiB", []string{"bench", "quic", "--size", "2GiB"}, "want a size from 1 to 1GiB"},
		{"bench quic --size -1MiB", []string{"bench", "quic", "--size", "-1MiB"}, "want a size such as"},
		{"bench quic --size lots", []string{"bench", "quic", "--size", "lots"}, "want a size such as"},
		{"bench quic --size NaN", []string{"bench", "quic", "--size", "NaN"}, "want a size such as"},
		{"quic serve --handshake-rate 0", []string{"quic", "serve", "--handshake-rate", "0"}, "-handshake-rate: want a whole number from 1 to"},
		{"quic serve --max-handshakes -1", []string{"quic", "serve", "--max-handshakes", "-1"}, "-max-handshakes: want a whole number from 1 to"},
		{"quic serve --retry=maybe", []string{"quic", "serve", "--retry=maybe"}, "-retry"},
		{"quic get --timeout 0s", []string{"quic", "get", "--timeout", "0s", url}, "-timeout: want a duration from 1ms to"},
		{"quic get --timeout -1s", []string{"quic", "get", "--timeout", "-1s", url}, "-timeout: want a duration from 1ms to"},
		{"quic get --migrate-after -5s", []string{"quic", "get", "--migrate-after", "-5s", url}, "-migrate-after: want a duration from 0s to"},
		{"quic get --rebind-after 2h", []string{"quic", "get", "--rebind-after", "2h", url}, "-rebind-after: want a duration from 0s to 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) || out != "" {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant 2 and stderr containing %q", tt.args, code, out, errOut, tt.want)
			}
		})
	}
}

// The quic commands' flags take units and the one name for one thing.
func TestQUICFlagsAcceptUnits(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		ok   func() bool
	}{
		{"bench quic", []string{"--size", "1MiB"}, func() bool { return benchQUICFlags.size == 1<<20 }},
		{"bench quic", []string{"--size", "2.5MB", "--rounds", "5"}, func() bool { return benchQUICFlags.size == 2_500_000 && benchQUICFlags.rounds == 5 }},
		{"bench quic", []string{"--runs", "4"}, func() bool { return benchQUICFlags.rounds == 4 }},
		{"bench quic", nil, func() bool { return benchQUICFlags.size == 32<<20 && benchQUICFlags.rounds == benchcmp.DefaultRounds }},
		{"quic get", []string{"--timeout", "250ms", "-o", "x"}, func() bool { return quicGetFlags.timeout == 250*time.Millisecond && quicGetFlags.output == "x" }},
		{"quic get", []string{"--output", "y"}, func() bool { return quicGetFlags.output == "y" }},
		{"quic serve", []string{"--retry", "--handshake-rate", "10", "--max-handshakes", "20"}, func() bool {
			f := quicServeFlags
			return f.retry && f.rate == 10 && f.maxHandshakes == 20
		}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet(tt.cmd, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		commands[tt.cmd].flags(fs)
		if err := fs.Parse(tt.args); err != nil || !tt.ok() {
			t.Errorf("%s %q: err %v, flags %+v %+v %+v", tt.cmd, tt.args, err, benchQUICFlags, quicGetFlags, quicServeFlags)
		}
	}
}

// bench quic runs the three scenarios and prints JSON with a ratio spread.
func TestBenchQUICJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs transfers")
	}
	code, out, errOut := run("bench", "quic", "--size", "2MB", "--rounds", "1", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var v struct {
		Results []struct {
			Scenario string  `json:"scenario"`
			Lost     int64   `json:"lost_bytes"`
			Intact   bool    `json:"sha256_match"`
			Changes  int     `json:"path_changes"`
			Settle   float64 `json:"settle_ms"`
			RatioMin float64 `json:"ratio_min"`
			RatioMax float64 `json:"ratio_max"`
		} `json:"results"`
		Spread map[string][3]float64 `json:"ratio_spread_min_median_max"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	// Each scenario's changes all happen within its measurement, which
	// waits for the armed ones (settle_ms): exactly as many as it promises.
	want := map[string]int{"none": 0, "rebind": 1, "migrate3": 3}
	if len(v.Results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(v.Results), len(want), out)
	}
	for _, r := range v.Results {
		changes, ok := want[r.Scenario]
		if !ok || r.Lost != 0 || !r.Intact || r.Changes != changes || r.RatioMin <= 0 || r.RatioMin > r.RatioMax || r.Settle < 0 {
			t.Errorf("result %+v: want scenario in %v with %d change(s), nothing lost, a ratio spread", r, want, changes)
		}
		if _, ok := v.Spread[r.Scenario]; !ok {
			t.Errorf("no ratio spread for %s", r.Scenario)
		}
	}
}

// startQUICServe runs quic serve's code path in-process on a free port;
// stop ends it and returns its log.
func startQUICServe(t *testing.T, cfg quicconn.ServerConfig) (addr netip.AddrPort, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedLog
	addrCh := make(chan netip.AddrPort, 1)
	done := make(chan error, 1)
	cfg.Addr = "127.0.0.1:0"
	go func() { done <- serveQUIC(ctx, cfg, &logs, func(a netip.AddrPort) { addrCh <- a }) }()
	select {
	case addr = <-addrCh:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	return addr, func() string {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		return logs.String()
	}
}

// quic serve's code path, in-process, and quic get against it: raw
// streams with a migration and HTTP/3 through a rebinding NAT. The body
// goes to stdout or -o FILE, the log to stderr in words.
func TestQUICServeAndGet(t *testing.T) {
	addr, stop := startQUICServe(t, quicconn.ServerConfig{})
	const n = 3000000
	file := filepath.Join(t.TempDir(), "body")
	dataFile := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dataFile, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // on stderr: the path change shown as it happens
		body func(out string) bool
	}{
		{[]string{"quic", "get", "quic://" + addr.String() + "/bytes/3000000", "--migrate-after", "1ms", "-o", file}, "validated", func(out string) bool {
			b, err := os.ReadFile(file)
			return out == "" && err == nil && sha256.Sum256(b) == quicconn.PatternSum(n)
		}},
		{[]string{"quic", "get", "https://" + addr.String() + "/bytes/3000000", "--insecure", "--rebind-after", "1ms"}, "NAT: binding", func(out string) bool {
			return sha256.Sum256([]byte(out)) == quicconn.PatternSum(n)
		}},
		{[]string{"quic", "get", "https://" + addr.String() + "/", "--insecure"}, "HTTP/3.0 200 OK", func(out string) bool {
			return strings.Contains(out, "statelab quic server")
		}},
		{[]string{"quic", "get", "https://" + addr.String() + "/echo", "--insecure", "-d", "hello, echo"}, "POST", func(out string) bool {
			return out == "hello, echo"
		}},
		{[]string{"quic", "get", "https://" + addr.String() + "/echo", "--insecure", "--data", "@" + dataFile}, "HTTP/3.0 200 OK", func(out string) bool {
			return out == "from a file\n"
		}},
	} {
		code, out, errOut := run(tc.args...)
		if code != 0 || !strings.Contains(errOut, "done:") || !strings.Contains(errOut, tc.want) || !tc.body(out) {
			t.Errorf("statelab %q = %d, want 0, %q and the body\nstdout: %.300q\nstderr: %s", tc.args, code, tc.want, out, errOut)
		}
		for _, bad := range []string{`path "`, "<nil>", "err "} {
			if strings.Contains(errOut, bad) {
				t.Errorf("statelab %q: stderr has %q:\n%s", tc.args, bad, errOut)
			}
		}
	}
	if l := stop(); !strings.Contains(l, "listening on udp "+addr.String()) || !strings.Contains(l, "connection from") || !strings.Contains(l, "interrupted; closing") {
		t.Errorf("serve log:\n%s", l)
	}
}

// A fetch that fails leaves -o FILE as it was and no partial file beside
// it.
func TestQUICGetOutputKeptOnFailure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keep")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A port with nobody on it: the handshake never completes.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	code, _, errOut := run("quic", "get", "--timeout", "300ms", "-o", file, "quic://"+pc.LocalAddr().String()+"/bytes/10")
	b, _ := os.ReadFile(file)
	ents, _ := os.ReadDir(dir)
	if code == 0 || string(b) != "old" || len(ents) != 1 {
		t.Errorf("exit %d, file %q, %d entries in its directory; want a failure, \"old\", 1\nstderr: %s", code, b, len(ents), errOut)
	}
}

// quic serve --retry validates every client's address: the client still
// gets its bytes, after a Retry the server logged in its counts.
func TestQUICServeRetry(t *testing.T) {
	addr, stop := startQUICServe(t, quicconn.ServerConfig{Retry: true})
	code, out, errOut := run("quic", "get", "https://"+addr.String()+"/", "--insecure")
	if code != 0 || !strings.Contains(out, "statelab quic server") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if l := stop(); !strings.Contains(l, "Retry for every client") {
		t.Errorf("serve log:\n%s", l)
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A standard QUIC client of another implementation completes through
// quic serve --retry: ngtcp2's gtlsclient (Debian's ngtcp2-client) gets
// a Retry, echoes its token and downloads its bytes over HTTP/3.
func TestQUICServeRetryNgtcp2(t *testing.T) {
	bin := labtest.NeedTool(t, "gtlsclient")
	addr, stop := startQUICServe(t, quicconn.ServerConfig{Retry: true})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port := strconv.Itoa(int(addr.Port()))
	out, err := exec.CommandContext(ctx, bin, "--no-quic-dump", "--exit-on-all-streams-close", "--timeout=5s", "--download="+dir,
		addr.Addr().String(), port, "https://"+addr.String()+"/bytes/5000").CombinedOutput()
	stop()
	if err != nil {
		t.Fatalf("gtlsclient: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("type=Retry")) {
		t.Errorf("gtlsclient logged no Retry:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "5000"))
	if err != nil || sha256.Sum256(b) != quicconn.PatternSum(5000) {
		t.Errorf("downloaded %d bytes (%v), want the 5000 pattern bytes", len(b), err)
	}
}
