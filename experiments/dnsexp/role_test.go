package dnsexp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

// A server process, started through lab/subproc as this binary's role,
// serves and stops; its arguments round-trip.
func TestServerProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tally := filepath.Join(t.TempDir(), "tally")
	p, addr, err := startServerProcess(ctx, serverProc{seed: 3, tally: tally})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Kill() })
	c, err := udpdns.NewClient(udpdns.Config{Server: addr, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := "child." + udpdns.SynthSuffix
	if r, err := c.Query(ctx, name, dns.TypeA); err != nil || answerA(r) != udpdns.SynthA(name) {
		t.Fatalf("query: %v, %v", r, err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
	if n, err := readTally(tally); n != 1 || err != nil {
		t.Errorf("tally %d, %v; want the one answer", n, err)
	}
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"a bad fraction", []string{"-drop", "lots"}, false},
		{"a stray argument", []string{"extra"}, false},
		{"round trip", serverProc{addr: "127.0.0.1:9", seed: 5, drop: 0.5, delay: time.Second, tally: "t", zone: "z"}.args(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServerProc(tt.args)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if tt.ok && c != (serverProc{addr: "127.0.0.1:9", seed: 5, drop: 0.5, delay: time.Second, tally: "t", zone: "z"}) {
				t.Errorf("round trip: %+v", c)
			}
		})
	}
}

// The tally counts every datagram written, copies included, and none that
// failed; a missing file counts 0; a file that cannot be made fails.
func TestTally(t *testing.T) {
	dir := t.TempDir()
	if n, err := readTally(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Fatalf("readTally of a missing file = %d, %v; want 0, nil", n, err)
	}
	if _, err := openTally(filepath.Join(dir, "no", "such", "dir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tally file that cannot be made: err = %v", err)
	}
	tests := []struct {
		name string
		mw   dnsfault.Middleware
		want int
	}{
		{"one each", nil, 5},
		{"duplicated", dnsfault.Duplicate(1, nil), 10},
		{"dropped", dnsfault.Drop(1, nil), 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			tl, err := openTally(path)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := udpdns.StartServer(udpdns.ServerConfig{Handler: tl.wrap(dnsfault.Chain(udpdns.BuiltinZone(), tt.mw))})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			c, err := udpdns.NewClient(udpdns.Config{Server: srv.Addr(), Timeout: 100 * time.Millisecond, Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for j := range 5 {
				_, _ = c.Query(context.Background(), synthName("t", j), dns.TypeA)
			}
			srv.Close()
			tl.close()
			if n, err := readTally(path); n != tt.want || err != nil || uint64(n) != srv.Stats().Written {
				t.Errorf("tally %d, %v; want %d (the server wrote %d)", n, err, tt.want, srv.Stats().Written)
			}
		})
	}
}

// A write that fails is taken out of the tally again.
func TestTallyUndoesAFailedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tally")
	tl, err := openTally(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tl.close()
	w := &tallyWriter{ResponseWriter: failingWriter{}, t: tl}
	if err := w.WriteMsg(new(dns.Msg)); err == nil {
		t.Fatal("the write did not fail")
	}
	if _, err := w.Write([]byte{0}); err == nil {
		t.Fatal("the write did not fail")
	}
	if n, _ := readTally(path); n != 0 {
		t.Errorf("tally %d after two failed writes", n)
	}
}

// failingWriter fails every write.
type failingWriter struct{ dns.ResponseWriter }

func (failingWriter) WriteMsg(*dns.Msg) error   { return errors.New("no route") }
func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no route") }
