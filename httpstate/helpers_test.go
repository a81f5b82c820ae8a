package httpstate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The package's tests need no namespace and nothing of the lab: servers
// listen on loopback ports the kernel picks, and a test that needs a
// server in another process runs this test binary again as one.

// serveSpecEnv, set to a JSON ServeSpec, makes the test binary a server
// process instead of a test run (startProcess).
const serveSpecEnv = "HTTPSTATE_TEST_SERVE"

func TestMain(m *testing.M) {
	if spec := os.Getenv(serveSpecEnv); spec != "" {
		os.Exit(serveProcess(spec))
	}
	os.Exit(m.Run())
}

// serveProcess serves a spec until SIGTERM, after printing its address.
func serveProcess(js string) int {
	var spec ServeSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "server process: spec %q: %v\n", js, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	run, cleanup, err := ServeMode(ctx, spec)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server process: %v\n", err)
		return 1
	}
	defer cleanup()
	fmt.Println(run.Addr)
	<-ctx.Done()
	return 0
}

// startProcess runs a server of spec in a new process of this test binary
// and returns its base URL once it listens; the process is stopped when the
// test ends and dies with the test binary.
func startProcess(t *testing.T, spec ServeSpec) string {
	t.Helper()
	js, _ := json.Marshal(spec)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), serveSpecEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatalf("server process %s exited before it listened", js)
		}
		return "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatalf("server process %s: not listening after 20 s", js)
	}
	return ""
}

// requireEnv is the variable CI sets so that a missing tool fails a test
// instead of skipping it (the lab's rule, labtest.RequireEnv).
const requireEnv = "STATELAB_REQUIRE_TOOLS"

// needTool skips a test that needs an outside tool when it is missing,
// unless STATELAB_REQUIRE_TOOLS is set, when it fails: a test that skips in
// CI proves nothing.
func needTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv(requireEnv) != "" {
			tb.Fatalf("%s is required (%s is set) but not installed: %v", name, requireEnv, err)
		}
		tb.Skipf("%s not installed; set %s=1 to make this a failure", name, requireEnv)
	}
}

func num(v float64) *float64 { return &v }
