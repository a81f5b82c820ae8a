package sandbox_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/sandbox"
)

// helperEnv makes the test binary act as the process inside the namespace.
const helperEnv = "STATELAB_SANDBOX_TEST_HELPER"

// TestMain lets the re-executed test binary act as the inside process: it
// brings lo up, listens, answers every connection with a token, and reports
// its address and network namespace until its stdin closes.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(insideHelper())
	}
	if os.Getenv(signalsEnv) != "" {
		fmt.Println(sandbox.StopSignals)
		os.Exit(0)
	}
	if os.Getenv(enterEnv) != "" {
		if err := sandbox.Enter(); err != nil {
			fmt.Println("refused:", err)
			os.Exit(3)
		}
		fmt.Println("entered")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const token = "inside-the-lab"

// signalsEnv makes the test binary print sandbox.StopSignals.
const signalsEnv = "STATELAB_SANDBOX_TEST_SIGNALS"

// SIGHUP stops a program as Ctrl-C does, unless the program started with
// it ignored (nohup): then it stays ignored, so `nohup statelab http serve
// &` outlives the terminal.
func TestStopSignalsKeepNohup(t *testing.T) {
	tests := []struct {
		name, shell, want string
	}{
		{"started plainly", `exec "$0" -test.run=^$`, "[interrupt terminated hangup]"},
		{"started with SIGHUP ignored, as nohup does", `trap "" HUP; exec "$0" -test.run=^$`, "[interrupt terminated]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", tt.shell, os.Args[0])
			cmd.Env = append(os.Environ(), signalsEnv+"=1")
			out, err := cmd.Output()
			if got := strings.TrimSpace(string(out)); err != nil || got != tt.want {
				t.Errorf("StopSignals = %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// enterEnv makes the test binary call sandbox.Enter and say what came of it.
const enterEnv = "STATELAB_SANDBOX_TEST_ENTER"

// A process handed a pipe that vouches for it (the Marker's nonce) but
// that is not in the namespace the pipe names refuses to run, with the
// reason; it does not re-execute itself into yet another namespace, so a
// forged pipe, or a host whose new namespaces fail the check, can never
// nest namespaces or run the lab anywhere it was not given.
func TestEnterRefusesWhereThePipeIsFalse(t *testing.T) {
	tests := []struct {
		name, pipe string
	}{
		{"a namespace that is not the parent's", "abc net:[4026531999]\n"},
		{"this process's own namespace", ""}, // filled in below
	}
	own, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Skipf("no /proc/self/ns/net: %v", err)
	}
	tests[1].pipe = "abc " + own + "\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			w.WriteString(tt.pipe)
			w.Close()
			defer r.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), enterEnv+"=1", sandbox.Marker+"=3:abc")
			cmd.ExtraFiles = []*os.File{r}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "refusing to run the lab") {
				t.Errorf("Enter with a false pipe: %v\n%s\nwant exit 3 and \"refusing to run the lab\"", err, out)
			}
		})
	}
}

func insideHelper() int {
	if !sandbox.Inside() {
		fmt.Println("error: marker missing")
		return 1
	}
	if err := sandbox.Setup(); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, token)
			c.Close()
		}
	}()
	// The lab can reach its own socket.
	self := dialToken(ln.Addr().String())
	ns, _ := os.Readlink("/proc/self/ns/net")
	fmt.Printf("addr %s\nns %s\nself %s\nuid %d\n", ln.Addr(), ns, self, os.Getuid())
	io.Copy(io.Discard, os.Stdin) // live until the parent closes stdin
	return 0
}

// dialToken dials addr and returns what the listener there says, or the error.
func dialToken(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "refused: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func startInside(t *testing.T) (info map[string]string, stop func() error) {
	t.Helper()
	cmd := sandbox.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		if os.Getenv("STATELAB_REQUIRE_TOOLS") == "" {
			t.Skipf("namespaces unavailable here: %v", err)
		}
		t.Fatal(err)
	}
	info = map[string]string{}
	sc := bufio.NewScanner(stdout)
	for len(info) < 4 && sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		if k == "error:" {
			t.Fatalf("inside: %s", v)
		}
		info[k] = v
	}
	return info, func() error { stdin.Close(); return cmd.Wait() }
}

func TestSocketInsideIsInvisibleOutside(t *testing.T) {
	info, stop := startInside(t)
	if info["self"] != token {
		t.Errorf("inside, the lab cannot reach its own listener: %q", info["self"])
	}
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	if info["ns"] == "" || info["ns"] == hostNS {
		t.Errorf("inside runs in network namespace %q, the host is in %q: want a new one", info["ns"], hostNS)
	}
	// The same address from the host's namespace reaches nothing of the
	// lab's: refused, or some other listener, never the lab's token.
	if got := dialToken(info["addr"]); got == token {
		t.Errorf("the host reached the lab's socket at %s", info["addr"])
	}
	if err := stop(); err != nil {
		t.Fatalf("inside process: %v", err)
	}
}

// As a non-root user the lab is root only inside its own user namespace.
func TestNonRootIsMappedToRootInside(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as a non-root user; .ci/run runs this package as nobody too")
	}
	info, stop := startInside(t)
	defer stop()
	if info["uid"] != "0" {
		t.Errorf("uid inside = %s, want 0 (mapped from %d)", info["uid"], os.Geteuid())
	}
}
