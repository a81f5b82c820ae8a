package httpexp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab/labtest"
)

// The failover scenario as a test: it fails when an acknowledged write is
// lost under replica-confirmed writes, when the workflow does not resume
// after a failover, when asynchronous replication loses nothing of what was
// acknowledged while the replicas' link was held (the window must show),
// and when the split brain discards nothing (or the guard lets a write
// through).
func TestStoreFailoverExperiment(t *testing.T) {
	labtest.NeedTool(t, "redis-server")
	r := labtest.RunExperiment(t, experiment("http/store-failover"), 1)
	for _, c := range r.Checks {
		if strings.Contains(c.Name, "the workflow resumed") && !c.Passed {
			t.Errorf("the workflow did not resume: %s: %s", c.Name, c.Detail)
		}
	}
	tests := []struct {
		metric string
		ok     func(float64) bool
		want   string
	}{
		{"WAIT_1_primary_killed.acknowledged_lost_count", func(v float64) bool { return v == 0 }, "0: replica-confirmed writes lose no acknowledged write"},
		{"async_primary_killed.acknowledged_lost_count", func(v float64) bool { return v >= 1 }, "≥ 1: the writes acknowledged while the link was held"},
		{"split_brain_async.acknowledged_lost_count", func(v float64) bool { return v >= 1 }, "≥ 1: the cut-off primary's writes, discarded"},
		{"split_brain_min_replicas_to_write_1.acknowledged_lost_count", func(v float64) bool { return v == 0 }, "0: the guard refused the write"},
		{"WAIT_1_primary_killed.unwritable_ms", func(v float64) bool { return v > 0 }, "> 0: measured"},
	}
	for _, tt := range tests {
		v, ok := r.Metrics[tt.metric]
		if !ok || !tt.ok(v) {
			t.Errorf("%s = %v (present %t), want %s", tt.metric, v, ok, tt.want)
		}
	}
	if r.Holding == nil || !strings.Contains(r.Holding.RestartLoses, "with WAIT 1") {
		t.Errorf("holding row: %+v", r.Holding)
	}
}

// Without redis-server the experiment says it did not run, and fails
// nothing; with it (and tshark), every packet of its capture carries a
// comment and Wireshark dissects the servers' legs on port 6379 as RESP,
// with none malformed.
func TestStoreFailoverCapture(t *testing.T) {
	labtest.NeedTool(t, "redis-server")
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("http/store-failover"), 2)
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "!frame.comment"); n != 0 {
		t.Errorf("%d packets without a comment", n)
	}
	if n := labtest.TsharkCount(t, path, "resp"); n == 0 {
		t.Errorf("no packet dissected as RESP")
	}
	if n := labtest.TsharkCount(t, path, "_ws.malformed && tcp.port == 6379"); n != 0 {
		t.Errorf("%d malformed RESP frames", n)
	}
	comments := strings.Join(labtest.TsharkComments(t, path), "\n")
	for _, want := range []string{"(primary (promoted by the Sentinels))", "(dead (SIGKILL))", "a replication link", "returned old primary, converted by the Sentinels", "+switch-master"} {
		if !strings.Contains(comments, want) {
			t.Errorf("no comment contains %q", want)
		}
	}
}

// The final history is matched against the committed operations in order:
// a committed operation missing is lost, one in the history that was never
// committed (or is there twice) is extra.
func TestMatchHistory(t *testing.T) {
	op := func(i int) commit { return commit{op: flowOps[i]} }
	entry := func(i int) httpstate.HistoryEntry { return httpstate.HistoryEntry{Op: flowOps[i].op, B: flowOps[i].b} }
	tests := []struct {
		name        string
		commits     []commit
		hist        []httpstate.HistoryEntry
		lost, extra int
	}{
		{"all there", []commit{op(0), op(1), op(2)}, []httpstate.HistoryEntry{entry(0), entry(1), entry(2)}, 0, 0},
		{"two in the middle lost", []commit{op(0), op(1), op(2), op(3)}, []httpstate.HistoryEntry{entry(0), entry(3)}, 2, 0},
		{"the last lost", []commit{op(0), op(1)}, []httpstate.HistoryEntry{entry(0)}, 1, 0},
		{"one applied twice", []commit{op(0), op(1)}, []httpstate.HistoryEntry{entry(0), entry(1), entry(1)}, 0, 1},
		{"one never committed", []commit{op(0)}, []httpstate.HistoryEntry{entry(0), entry(4)}, 0, 1},
		{"empty history", []commit{op(0)}, nil, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := matchHistory(tt.commits, tt.hist)
			if len(v.lost) != tt.lost || len(v.extra) != tt.extra || v.ok != (tt.extra == 0) {
				t.Fatalf("lost %d extra %d ok %t; want lost %d extra %d", len(v.lost), len(v.extra), v.ok, tt.lost, tt.extra)
			}
		})
	}
}

func TestRespSummary(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"command", "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", "[PING hi]"},
		{"status", "+PONG\r\n", "+PONG"},
		{"error", "-NOREPLICAS Not enough good replicas to write.\r\n", "error NOREPLICAS Not enough good replicas to write."},
		{"integer", ":3\r\n", "integer 3"},
		{"nil", "$-1\r\n", "nil"},
		{"two messages", "+OK\r\n+OK\r\n", "+OK (+1 more)"},
		{"binary bulk", "$3\r\n\x00\x01\x02\r\n", "(3 bytes)"},
		{"an RDB transfer", "$90000\r\nREDIS0010", "bulk string of 90000 bytes (continues in later segments)"},
		{"a long command cut by the segment", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc", "[SET k bulk string of 10 bytes (continues in later segments)]"},
		{"more than four elements", "*6\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n$1\r\ne\r\n$1\r\nf\r\n", "[a b c d … 6 elements]"},
		{"a continuation", "abc\r\n", "continuation (5 bytes)"},
		{"a bad length", "*x\r\n", "continuation (4 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := respSummary([]byte(tt.in)); got != tt.want {
				t.Fatalf("respSummary(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Any payload: respSummary returns without panicking, and a parsed message
// never claims more bytes than there are.
func FuzzRespSummary(f *testing.F) {
	for _, s := range []string{"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", "+OK\r\n", "$-1\r\n", "*-1\r\n", "$5\r\nab", "*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", ":x\r\n", "*99999999\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = respSummary(b)
		if _, n := respOne(b, 0); n > len(b) {
			t.Fatalf("respOne(%q) consumed %d of %d bytes", b, n, len(b))
		}
	})
}

// bench http measures the Sentinel-backed store with asynchronous and with
// replica-confirmed writes, without an error.
func TestBenchSentinelKinds(t *testing.T) {
	labtest.NeedTool(t, "redis-server")
	ctx := context.Background()
	g, err := StartSentinelGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := Bench(ctx, BenchOptions{Duration: 300 * time.Millisecond, Rounds: 1, Concurrency: 2, Sentinel: g.URL(0)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]BenchResult{}
	for _, r := range res {
		got[r.Kind] = r
	}
	for _, k := range []string{"store-sentinel", "store-sentinel-wait1"} {
		if r, ok := got[k]; !ok || r.Requests == 0 || r.Errors != 0 {
			t.Errorf("%s: %+v (present %t)", k, r, ok)
		}
	}
}
