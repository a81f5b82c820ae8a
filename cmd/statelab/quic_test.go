package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
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

// bench quic runs the three scenarios and prints JSON with a ratio spread.
func TestBenchQUICJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs transfers")
	}
	code, out, errOut := run("bench", "quic", "--size", "2000000", "--runs", "1", "--json")
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

// quic serve's code path, in-process, and quic get against it: raw
// streams with a migration and HTTP/3 through a rebinding NAT.
func TestQUICServeAndGet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs lockedLog
	addrCh := make(chan netip.AddrPort, 1)
	done := make(chan error, 1)
	go func() { done <- serveQUIC(ctx, "127.0.0.1:0", &logs, func(a netip.AddrPort) { addrCh <- a }) }()
	var addr netip.AddrPort
	select {
	case addr = <-addrCh:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string // the path change shown as it happens
	}{
		{[]string{"quic", "get", "quic://" + addr.String() + "/bytes/3000000", "--migrate-after", "1ms"}, "validated"},
		{[]string{"quic", "get", "https://" + addr.String() + "/bytes/3000000", "--insecure", "--rebind-after", "1ms"}, "NAT: binding"},
		{[]string{"quic", "get", "https://" + addr.String() + "/", "--insecure"}, "200"},
	} {
		code, out, errOut := run(tc.args...)
		if code != 0 || !strings.Contains(out, "done:") || strings.Contains(out, "intact false") || !strings.Contains(out, tc.want) {
			t.Errorf("statelab %q = %d, want 0 and %q\nstdout: %s\nstderr: %s", tc.args, code, tc.want, out, errOut)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "listening on udp "+addr.String()) || !strings.Contains(l, "connection from") || !strings.Contains(l, "interrupted; closing") {
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
