package udpdns

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/udpdns/dnsfault"
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
	srv := startServer(t, faulty(dnsfault.Jitter(time.Millisecond, dnsfault.NewDraws(1))))
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

// The server counts every datagram it writes, copies included.
func TestServerCountsDatagramsWritten(t *testing.T) {
	tests := []struct {
		name     string
		cfg      ServerConfig
		written  uint64
		answered uint64
		copies   uint64
	}{
		{"one copy each", ServerConfig{}, 5, 5, 0},
		{"duplicated: two copies each", faulty(dnsfault.Duplicate(1, nil)), 10, 5, 5},
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
			if st := srv.Stats(); st.Written != tt.written || st.Answered != tt.answered || st.Copies != tt.copies || st.Received != 5 {
				t.Errorf("stats %+v, want 5 received, %d written, %d answered, %d copies", st, tt.written, tt.answered, tt.copies)
			}
		})
	}
}
