package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHTTPCommandsRefuseBadUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"serve --help shows examples", []string{"http", "serve", "--help"}, 0, "Examples:", ""},
		{"serve unknown mode", []string{"http", "serve", "--mode", "sometimes"}, 2, "", `want stateless, stateful, store or token`},
		{"serve store URL for a stateless server", []string{"http", "serve", "--mode", "stateless", "--store", "redis://127.0.0.1:1"}, 2, "", "--store is for --mode store"},
		{"serve bad store URL", []string{"http", "serve", "--mode", "store", "--store", "ftp://x"}, 2, "", "--store"},
		{"serve stray argument", []string{"http", "serve", "now"}, 2, "", "takes no arguments"},
		{"serve Sentinel URL without a master", []string{"http", "serve", "--mode", "store", "--store", "redis-sentinel://127.0.0.1:26379"}, 2, "", "no master name"},
		{"serve unreachable Sentinel", []string{"http", "serve", "--mode", "store", "--store", "redis-sentinel://127.0.0.1:1/mymaster"}, 2, "", "no Sentinel answered"},
		{"serve address already taken or invalid", []string{"http", "serve", "--addr", "127.0.0.1:99999"}, 2, "", "statelab http serve:"},
		{"bench --help", []string{"bench", "http", "--help"}, 0, "Examples:", ""},
		{"bench zero duration", []string{"bench", "http", "--duration", "0s"}, 2, "", "-duration: want a duration from 1ms"},
		{"bench too many clients", []string{"bench", "http", "--concurrency", "5000"}, 2, "", "-concurrency: want a whole number from 1 to 1024"},
		{"bench -c zero", []string{"bench", "http", "-c", "0"}, 2, "", "-c: want a whole number from 1 to 1024"},
		{"bench -c not a number", []string{"bench", "http", "-c", "many"}, 2, "", "want a whole number"},
		{"bench negative duration", []string{"bench", "http", "--duration", "-1s"}, 2, "", "want a duration from"},
		{"bench duration too long", []string{"bench", "http", "--duration", "11m"}, 2, "", "want a duration from"},
		{"bench duration without a unit", []string{"bench", "http", "--duration", "5"}, 2, "", "want a duration such as"},
		{"bench zero rounds", []string{"bench", "http", "--rounds", "0"}, 2, "", "-rounds: want a whole number from 1 to 100"},
		{"bench too many rounds", []string{"bench", "http", "--rounds", "101"}, 2, "", "-rounds"},
		{"bench --runs is not a flag", []string{"bench", "http", "--runs", "3"}, 2, "", "runs"},
		{"bench help names -c and --concurrency", []string{"bench", "http", "--help"}, 0, "-concurrency N", ""},
		{"serve zero max sessions", []string{"http", "serve", "--max-sessions", "0"}, 2, "", "-max-sessions: want a whole number from 1"},
		{"serve negative max sessions", []string{"http", "serve", "--max-sessions", "-5"}, 2, "", "-max-sessions"},
		{"serve help documents the session policy", []string{"http", "serve", "--help"}, 0, "session_limit", ""},
		{"serve help documents --quiet", []string{"http", "serve", "--help"}, 0, "-quiet", ""},
		{"serve token secret not hex", []string{"http", "serve", "--mode", "token", "--token-secret", "zz"}, 2, "", "--token-secret: httpstate: token secret: not hex"},
		{"serve token secret too short", []string{"http", "serve", "--mode", "token", "--token-secret", strings.Repeat("ab", 16)}, 2, "", "16 bytes (32 hex digits), want at least 32 bytes (64 hex digits)"},
		{"serve token secret for another mode", []string{"http", "serve", "--mode", "stateful", "--token-secret", strings.Repeat("ab", 32)}, 2, "", "--token-secret is for --mode token"},
		{"serve token lifetime for another mode", []string{"http", "serve", "--token-lifetime", "1m"}, 2, "", "--token-lifetime is for --mode token"},
		{"serve token lifetime zero", []string{"http", "serve", "--mode", "token", "--token-lifetime", "0s"}, 2, "", "-token-lifetime: want a duration from 1s"},
		{"serve token with a store", []string{"http", "serve", "--mode", "token", "--store", "sqlite:x.db"}, 2, "", "a token server keeps no store"},
		{"serve help documents the token cap", []string{"http", "serve", "--help"}, 0, "4096 bytes", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout ∋ %q, stderr ∋ %q", tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}

// bench http measures every kind in one run and reports the ratio to
// stateless, as JSON for programs.
func TestBenchHTTPJSON(t *testing.T) {
	code, out, errOut := run("bench", "http", "--duration", "150ms", "--concurrency", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, kind := range []string{"stateless", "stateful", "store-sqlite"} {
		if !strings.Contains(out, kind) {
			t.Errorf("no %s figures in %s", kind, out)
		}
	}
}

// bench http reports workflows per second beside requests per second, the
// store-backed cost per request, and whether the Redis target was met.
func TestBenchHTTPReportsWorkflowsAndStoreCost(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"json", []string{"--json"}, []string{`"workflows_per_second"`, `"requests_per_workflow"`, `"store_reads_per_request"`, `"target_met"`, `"ratio_basis":"workflows per second"`}},
		{"text", nil, []string{"flows/s", "req/flow", "store-sqlite costs, per request:", "store reads", "store writes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(append([]string{"bench", "http", "--duration", "150ms", "--concurrency", "2"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
		})
	}
}

// http serve warns when an existing SQLite store is readable by others (it
// holds live tokens); here the listen fails afterwards, so the command ends.
func TestHTTPServeWarnsAboutAStoreOthersCanRead(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	if err := os.WriteFile(db, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	code, out, errOut := run("http", "serve", "--mode", "store", "--store", "sqlite://"+db, "--addr", "127.0.0.1:99999")
	if code != 2 || !strings.Contains(errOut, "warning: "+db+" is mode 0644") || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// An unreachable Sentinel is told in statelab's words alone: go-redis's own
// log lines (its source file and line, its retries) stay out of stderr.
func TestHTTPServeUnreachableSentinelSaysItOnce(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$")
	cmd.Env = append(os.Environ(), "STATELAB_TEST_HELPER_RUN=http serve --mode store --store redis-sentinel://127.0.0.1:1/mymaster")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "no Sentinel answered") ||
		strings.Contains(string(out), "pool.go") || strings.Contains(string(out), "redis: 20") {
		t.Errorf("http serve with an unreachable Sentinel: %v\n%s\nwant exit 2 and statelab's error alone", err, out)
	}
}

// `http serve` writes one access-log line per request on stderr, none with
// --quiet, and a stop signal — SIGHUP as well as SIGINT and SIGTERM —
// shuts it down gracefully (exit 0) instead of killing it mid-request.
// (In this process: the signal goes to the test binary, whose stop
// signals the command has taken by the time it prints its address.)
func TestHTTPServeLogsRequestsAndStopsOnEverySignal(t *testing.T) {
	tests := []struct {
		name  string
		quiet bool
		sig   syscall.Signal
	}{
		{"logs, stopped by SIGHUP", false, syscall.SIGHUP},
		{"logs, stopped by SIGTERM", false, syscall.SIGTERM},
		{"--quiet logs nothing, stopped by SIGINT", true, syscall.SIGINT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skipIgnoredHangup(t, tt.sig)
			args := []string{"http", "serve", "--mode", "stateless", "--addr", "127.0.0.1:0"}
			if tt.quiet {
				args = append(args, "--quiet")
			}
			pr, pw := io.Pipe()
			var stderr lockedLog
			done := make(chan int, 1)
			go func() { done <- Main(args, pw, &stderr); pw.Close() }()
			line, err := bufio.NewReader(pr).ReadString('\n')
			url := regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(line)
			if err != nil || url == "" {
				t.Fatalf("first line %q (%v), want the address it serves; stderr: %s", line, err, stderr.String())
			}
			go io.Copy(io.Discard, pr)
			rep, err := http.Get(url + "/nope")
			if err != nil {
				t.Fatal(err)
			}
			rep.Body.Close()
			if err := syscall.Kill(os.Getpid(), tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("stopped by %v: exit %d, want 0\nstderr: %s", tt.sig, code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("http serve did not stop on %v", tt.sig)
			}
			logged := strings.Contains(stderr.String(), `"GET /nope HTTP/1.1" 404`)
			if logged == tt.quiet {
				t.Errorf("quiet %v, access line logged %v; stderr:\n%s", tt.quiet, logged, stderr.String())
			}
		})
	}
}
