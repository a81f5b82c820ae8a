package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/internal/capture"
	"github.com/statelab/statelab/internal/lab"
)

// An experiment that exists only in this test binary: it starts a capture,
// says so through a FIFO, and blocks until the run is cancelled.
func init() {
	lab.Register(lab.Experiment{Name: "test/block", Summary: "blocks until cancelled (test only)", Run: func(env *lab.Env) error {
		if _, err := env.Capture(capture.Options{}); err != nil {
			return err
		}
		if fifo := os.Getenv("STATELAB_TEST_FIFO"); fifo != "" {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
		}
		<-env.Ctx.Done()
		env.Check("cancelled", true, "")
		return env.Ctx.Err()
	}})
}

// TestHelperRun is the statelab process of TestKilledLabLeavesNothing: it
// runs only when that test starts it.
func TestHelperRun(t *testing.T) {
	if os.Getenv("STATELAB_TEST_HELPER_RUN") == "" {
		t.Skip("helper process")
	}
	os.Exit(Main(strings.Fields(os.Getenv("STATELAB_TEST_HELPER_RUN")), os.Stdout, os.Stderr))
}

// Killing statelab with SIGKILL mid-experiment leaves nothing running: the
// lab process in the namespace gets SIGTERM, writes its capture and exits,
// and the namespace goes with it.
func TestKilledLabLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The helper is started from outside the namespace so that it enters
	// one of its own, as a user's statelab does.
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRun$")
	cmd.Env = append(filterEnv(os.Environ(), "STATELAB_SANDBOX="),
		"STATELAB_TEST_HELPER_RUN=run test/block --out "+dir, "STATELAB_TEST_FIFO="+fifo)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	f, err := os.Open(fifo) // blocks until the experiment is running
	if err != nil {
		t.Fatal(err)
	}
	var buf [32]byte
	n, _ := f.Read(buf[:])
	f.Close()
	labPID, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("lab pid %q: %v", buf[:n], err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	// The lab process is not our child: wait for its exit on a pidfd.
	if pfd, err := unix.PidfdOpen(labPID, 0); err == nil {
		fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
		deadline := time.Now().Add(10 * time.Second)
		n, err := 0, error(unix.EINTR)
		for err == unix.EINTR && time.Now().Before(deadline) { // the runtime's signals interrupt poll
			n, err = unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		}
		unix.Close(pfd)
		if err != nil || n == 0 {
			t.Fatalf("lab process %d still running 10 s after statelab was killed (%v)", labPID, err)
		}
	} // ESRCH: it has already gone.
	if alive(labPID) {
		t.Fatalf("lab process %d is still running", labPID)
	}
	if _, err := capture.ReadFile(filepath.Join(dir, "test", "block.pcapng")); err != nil {
		t.Errorf("capture after the kill: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "test", ".*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func filterEnv(env []string, prefix string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}
