package udpdns

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// seeded is a repeatable random source, as env.Bytes gives the experiments.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	return rand.NewChaCha8(s)
}

// sentAs records each query's ID and QNAME as sent, by its QNAME as asked.
func sentAs(t *testing.T, cfg Config, names []string, concurrent bool, perQuery func(name string) io.Reader) map[string]string {
	t.Helper()
	srv := startServer(t, ServerConfig{Jitter: time.Millisecond})
	var mu sync.Mutex
	got := map[string]string{}
	cfg.Server, cfg.Timeout = srv.Addr(), 5*time.Second
	cfg.Trace = func(e Event) {
		if e.Kind == EventSent {
			mu.Lock()
			got[fmt.Sprintf("%s attempt %d", dns.CanonicalName(e.Name), e.Attempt)] = fmt.Sprintf("%#04x %s", e.ID, e.Name)
			mu.Unlock()
		}
	}
	c := newClient(t, cfg)
	ask := func(name string) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		var err error
		if perQuery != nil {
			_, err = c.ExchangeRand(ctxFor(t, 10*time.Second), m, perQuery(name))
		} else {
			_, err = c.Exchange(ctxFor(t, 10*time.Second), m)
		}
		if err != nil {
			t.Error(err)
		}
	}
	if !concurrent {
		for _, n := range names {
			ask(n)
		}
		return got
	}
	var wg sync.WaitGroup
	for _, n := range names {
		wg.Go(func() { ask(n) })
	}
	wg.Wait()
	return got
}

// One seed, the same IDs and 0x20 case: with Config.Rand when queries go
// out in a fixed order, with a reader per query (ExchangeRand) whatever
// order concurrent queries go out in.
func TestSeededSourceRepeatsIDs(t *testing.T) {
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("abcdefgh%d.%s", i, SynthSuffix)
	}
	perQuery := func(seed uint64) func(string) io.Reader {
		return func(name string) io.Reader {
			var s [32]byte
			s[0] = byte(seed)
			copy(s[1:], name)
			return rand.NewChaCha8(s)
		}
	}
	tests := []struct {
		name       string
		cfg        func() Config
		concurrent bool
		perQuery   func(string) io.Reader
	}{
		{"Config.Rand, queries in order", func() Config { return Config{Rand: seeded(1)} }, false, nil},
		{"Config.Rand, 0x20, queries in order", func() Config { return Config{Rand: seeded(2), Case0x20: true} }, false, nil},
		{"a reader per query, concurrent", func() Config { return Config{} }, true, perQuery(3)},
		{"a reader per query, concurrent, 0x20, four sockets", func() Config { return Config{Case0x20: true, Sockets: 4} }, true, perQuery(4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := sentAs(t, tt.cfg(), names, tt.concurrent, tt.perQuery)
			second := sentAs(t, tt.cfg(), names, tt.concurrent, tt.perQuery)
			if len(first) != len(names) {
				t.Fatalf("%d queries sent, want %d", len(first), len(names))
			}
			for k, v := range first {
				if second[k] != v {
					t.Errorf("%s: sent as %s, then as %s", k, v, second[k])
				}
			}
		})
	}
}

// Without a seeded source the IDs come from crypto/rand: two clients do
// not repeat each other.
func TestDefaultSourceDoesNotRepeat(t *testing.T) {
	names := []string{"a." + SynthSuffix, "b." + SynthSuffix, "c." + SynthSuffix, "d." + SynthSuffix}
	first := sentAs(t, Config{}, names, false, nil)
	second := sentAs(t, Config{}, names, false, nil)
	same := 0
	for k, v := range first {
		if second[k] == v {
			same++
		}
	}
	if same == len(names) {
		t.Errorf("two clients without Config.Rand sent the same IDs: %v", first)
	}
}

// A random source that fails fails the query; nothing goes out.
func TestFailingSourceFailsTheQuery(t *testing.T) {
	broken := errors.New("no entropy")
	tests := []struct {
		name string
		cfg  Config
		rnd  io.Reader
	}{
		{"Config.Rand", Config{Rand: &failingReader{broken}}, nil},
		{"Config.Rand with 0x20", Config{Rand: &failingReader{broken}, Case0x20: true}, nil},
		{"ExchangeRand's reader", Config{}, &failingReader{broken}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := newFakeServer(t, "127.0.0.1:0")
			tt.cfg.Server = fs.addr()
			c := newClient(t, tt.cfg)
			m := new(dns.Msg)
			m.SetQuestion("x."+SynthSuffix, dns.TypeA)
			var err error
			if tt.rnd != nil {
				_, err = c.ExchangeRand(ctxFor(t, 5*time.Second), m, tt.rnd)
			} else {
				_, err = c.Exchange(ctxFor(t, 5*time.Second), m)
			}
			if !errors.Is(err, broken) {
				t.Fatalf("err = %v, want %v", err, broken)
			}
			if st := c.Stats(); st.Sent != 0 || !st.Consistent() {
				t.Errorf("stats %v, want nothing sent", st)
			}
		})
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

// The server's draws for a query depend on the seed and the query, not on
// the order concurrent queries reach it; the same query again draws anew.
func TestServerDrawsIndependentOfArrivalOrder(t *testing.T) {
	queries := make([]*dns.Msg, 50)
	for i := range queries {
		queries[i] = new(dns.Msg)
		queries[i].SetQuestion(fmt.Sprintf("o%d.%s", i, SynthSuffix), dns.TypeA)
		queries[i].Id = uint16(1000 + i)
	}
	cfg := ServerConfig{Seed: 9, Jitter: time.Second, DropRate: 0.5, DupRate: 0.5}
	draw := func(order []int) map[int]Action {
		s, err := NewServer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		out := map[int]Action{}
		for _, i := range order {
			out[i] = s.decide(queries[i], netip.AddrPort{})
		}
		return out
	}
	forward := make([]int, len(queries))
	for i := range forward {
		forward[i] = i
	}
	backward := make([]int, len(queries))
	for i := range backward {
		backward[i] = len(queries) - 1 - i
	}
	a, b := draw(forward), draw(backward)
	for i := range queries {
		if a[i].Delay != b[i].Delay || a[i].Drop != b[i].Drop || a[i].Copies != b[i].Copies {
			t.Errorf("query %d: %+v in order, %+v in reverse", i, a[i], b[i])
		}
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	differ := false
	first := s.decide(queries[0], netip.AddrPort{})
	for range 10 {
		if again := s.decide(queries[0], netip.AddrPort{}); again.Delay != first.Delay {
			differ = true
		}
	}
	if !differ {
		t.Error("the same query drew the same delay eleven times")
	}
}

// The server counts every datagram it writes, copies included, in Stats and
// in its tally file, which another process can read after it is gone.
func TestServerCountsDatagramsWritten(t *testing.T) {
	tally := filepath.Join(t.TempDir(), "tally")
	if n, err := ReadTally(tally); n != 0 || err != nil {
		t.Fatalf("ReadTally of a missing file = %d, %v; want 0, nil", n, err)
	}
	tests := []struct {
		name     string
		cfg      ServerConfig
		want     uint64
		inTally  int
		toTally  string
		answered uint64
	}{
		{"one copy each", ServerConfig{}, 5, 0, "", 5},
		{"duplicated: two copies each, in the tally file", ServerConfig{DupRate: 1, TallyFile: tally}, 10, 10, tally, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.cfg)
			c := newClient(t, Config{Server: srv.Addr(), Timeout: 5 * time.Second})
			for i := range 5 {
				if _, err := c.Query(ctxFor(t, 5*time.Second), fmt.Sprintf("w%d.%s", i, SynthSuffix), dns.TypeA); err != nil {
					t.Fatal(err)
				}
			}
			srv.Close()
			if st := srv.Stats(); st.Written != tt.want || st.Answered != tt.answered {
				t.Errorf("stats %+v, want %d written, %d answered", st, tt.want, tt.answered)
			}
			if tt.toTally != "" {
				if n, err := ReadTally(tt.toTally); n != tt.inTally || err != nil {
					t.Errorf("tally %d, %v; want %d", n, err, tt.inTally)
				}
			}
		})
	}
	if _, err := NewServer(ServerConfig{TallyFile: filepath.Join(t.TempDir(), "no", "such", "dir")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a tally file that cannot be made: err = %v", err)
	}
}
