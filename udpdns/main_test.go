package udpdns

import (
	"context"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m, roles) }

// startServer starts a server for one test.
func startServer(t testing.TB, cfg ServerConfig) *Server {
	t.Helper()
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	s, err := StartServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
