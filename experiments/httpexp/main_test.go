package httpexp

import (
	"context"
	"net/http"
	"testing"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/labtest"
)

// The tests run in the lab's namespace; a test binary started as one of
// the experiments' roles (a server process) runs it.
func TestMain(m *testing.M) { labtest.Main(m, roles) }

// experiment is one of the package's experiments, by name.
func experiment(name string) lab.Experiment {
	for _, e := range Experiments() {
		if e.Name == name {
			return e
		}
	}
	panic("no experiment " + name)
}

// The package lists every http experiment once, each with a summary and
// what it shows; http/crash and http/signed-token, which start server
// processes, name their role.
func TestExperimentsAreListed(t *testing.T) {
	want := []string{"http/calculator", "http/crash", "http/features", "http/load-balancing", "http/mechanisms", "http/signed-token", "http/store-failover"}
	exps := Experiments()
	if _, err := lab.NewCatalogue(exps); err != nil {
		t.Fatal(err)
	}
	if len(exps) != len(want) {
		t.Fatalf("%d experiments, want %d", len(exps), len(want))
	}
	for i, e := range exps {
		if e.Name != want[i] || e.Summary == "" || e.Shows == "" {
			t.Errorf("experiment %d: %q summary %q shows %q", i, e.Name, e.Summary, e.Shows)
		}
		if _, ok := e.Roles[childRole]; ok != (e.Name == "http/crash" || e.Name == "http/signed-token" || e.Name == "http/store-failover") {
			t.Errorf("%s: server process role listed %v", e.Name, ok)
		}
	}
}

// startSession starts a session and computes 10 + 5 on it.
func startSession(t *testing.T, c *httpstate.Client) string {
	t.Helper()
	rep, err := c.Post(context.Background(), "/session", nil)
	if err != nil || rep.Status != http.StatusCreated || len(rep.Cookie) < 43 {
		t.Fatalf("session start: %+v %v", rep, err)
	}
	if _, err := c.Post(context.Background(), "/calculate", httpstate.CalcRequest{Op: httpstate.Add, A: num(10), B: num(5)}); err != nil {
		t.Fatal(err)
	}
	return rep.Cookie
}

// startRedis starts a redis-server for the test (or skips it as
// labtest.NeedTool says) and stops it when the test ends.
func startRedis(tb testing.TB) *httpstate.RedisServer {
	tb.Helper()
	labtest.NeedTool(tb, "redis-server")
	rs, err := httpstate.StartRedis(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rs.Close)
	return rs
}
