package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/sandbox"
)

// An experiment that exists only in this test binary: it starts a capture,
// makes a temporary directory (as the http experiments do for their
// stores), says so through a FIFO, and blocks until the run is cancelled.
func init() {
	testExperiments = append(testExperiments, lab.Experiment{Name: "test/block", Summary: "blocks until cancelled (test only)", Run: func(env *lab.Env) error {
		if _, err := env.Capture(capture.Options{}); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp("", "statelab-block-")
		if err != nil {
			return err
		}
		env.Cleanup(func() { os.RemoveAll(tmp) })
		if err := os.WriteFile(filepath.Join(tmp, "sessions.db"), []byte("state"), 0o600); err != nil {
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

// TestHelperRun is the statelab process of the lifecycle tests: it runs
// only when one of them starts it.
func TestHelperRun(t *testing.T) {
	if os.Getenv("STATELAB_TEST_HELPER_RUN") == "" {
		t.Skip("helper process")
	}
	code := Main(strings.Fields(os.Getenv("STATELAB_TEST_HELPER_RUN")), os.Stdout, os.Stderr)
	sandbox.RemoveTemp() // as main does
	os.Exit(code)
}

// blockedLab is a `statelab run test/block` started from outside the lab's
// namespace, as a user starts it, and waited for until its experiment runs.
type blockedLab struct {
	cmd    *exec.Cmd
	done   chan error
	labPID int // the process inside the namespace
	out    string
	tmp    string // TMPDIR of the statelab process
	stderr *strings.Builder
}

func startBlockedLab(t *testing.T) *blockedLab {
	t.Helper()
	dir := t.TempDir()
	b := &blockedLab{out: filepath.Join(dir, "out"), tmp: filepath.Join(dir, "tmp"), done: make(chan error, 1), stderr: &strings.Builder{}}
	if err := os.Mkdir(b.tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "ready")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Started from outside the namespace so that it enters one of its own.
	b.cmd = exec.Command(os.Args[0], "-test.run=^TestHelperRun$")
	b.cmd.Env = append(filterEnv(filterEnv(os.Environ(), "STATELAB_SANDBOX="), "TMPDIR="),
		"STATELAB_TEST_HELPER_RUN=run test/block --out "+b.out, "STATELAB_TEST_FIFO="+fifo, "TMPDIR="+b.tmp)
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	f, err := os.Open(fifo) // blocks until the experiment is running
	if err != nil {
		t.Fatal(err)
	}
	var buf [32]byte
	n, _ := f.Read(buf[:])
	f.Close()
	b.labPID, err = strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatalf("lab pid %q: %v", buf[:n], err)
	}
	return b
}

// wait returns the exit status of the statelab process, failing the test
// if it takes more than 20 s.
func (b *blockedLab) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		t.Fatalf("statelab still running 20 s after the signal; stderr: %s", b.stderr)
	}
	return b.cmd.ProcessState.ExitCode()
}

// checkNothingLeft fails if the capture is not a valid file or any
// temporary file of the run is left.
func (b *blockedLab) checkNothingLeft(t *testing.T) {
	t.Helper()
	if _, err := capture.ReadFile(filepath.Join(b.out, "test", "block.pcapng")); err != nil {
		t.Errorf("capture after the stop: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(b.out, "test", ".*")); len(left) != 0 {
		t.Errorf("temporary capture files left behind: %v", left)
	}
	if left, _ := os.ReadDir(b.tmp); len(left) != 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("temporary files left in TMPDIR: %v", names)
	}
}

// Every signal a user or a terminal sends ends a run the same way: the
// experiment is cancelled, its capture written, a line says so, the exit
// status is 128+signal and nothing is left in TMPDIR.
func TestSignalsStopARunTheSameWay(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			skipIgnoredHangup(t, sig)
			b := startBlockedLab(t)
			if err := b.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := b.wait(t); code != 128+int(sig) {
				t.Errorf("exit status %d, want %d; stderr: %s", code, 128+int(sig), b.stderr)
			}
			if want := "stopped by " + unix.SignalName(sig); !strings.Contains(b.stderr.String(), want) {
				t.Errorf("stderr %q does not say %q", b.stderr, want)
			}
			b.checkNothingLeft(t)
		})
	}
}

// Killing statelab with SIGKILL mid-experiment leaves nothing running: the
// lab process in the namespace gets SIGTERM, writes its capture and exits,
// and the namespace goes with it.
func TestKilledLabLeavesNothing(t *testing.T) {
	b := startBlockedLab(t)
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	// The lab process is not our child: wait for its exit on a pidfd.
	if pfd, err := unix.PidfdOpen(b.labPID, 0); err == nil {
		fds := []unix.PollFd{{Fd: int32(pfd), Events: unix.POLLIN}}
		deadline := time.Now().Add(10 * time.Second)
		n, err := 0, error(unix.EINTR)
		for err == unix.EINTR && time.Now().Before(deadline) { // the runtime's signals interrupt poll
			n, err = unix.Poll(fds, int(time.Until(deadline).Milliseconds())+1)
		}
		unix.Close(pfd)
		if err != nil || n == 0 {
			t.Fatalf("lab process %d still running 10 s after statelab was killed (%v)", b.labPID, err)
		}
	} // ESRCH: it has already gone.
	if alive(b.labPID) {
		t.Fatalf("lab process %d is still running", b.labPID)
	}
	b.checkNothingLeft(t)
}

// SIGKILL of the lab process inside the namespace (it cannot clean up)
// leaves no temporary file either: they live in a directory the still
// living statelab process removes. The capture in progress is lost, and
// the exit status and one line on stderr say how the lab ended.
func TestKilledLabProcessLeavesNoTemporaryFiles(t *testing.T) {
	b := startBlockedLab(t)
	if left, _ := os.ReadDir(b.tmp); len(left) != 1 || !strings.HasPrefix(left[0].Name(), "statelab-run-") {
		t.Fatalf("TMPDIR holds %v during the run, want one statelab-run-* directory", left)
	}
	if err := syscall.Kill(b.labPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t); code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit status %d, want %d", code, 128+int(syscall.SIGKILL))
	}
	if left, _ := os.ReadDir(b.tmp); len(left) != 0 {
		t.Errorf("temporary files left in TMPDIR after the lab process was killed: %v", left)
	}
	if want := "killed by SIGKILL"; strings.Count(b.stderr.String(), want) != 1 {
		t.Errorf("stderr %q does not say once that the lab process was %s", b.stderr, want)
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

// skipIgnoredHangup skips a test of SIGHUP when this test binary started
// with SIGHUP ignored (under nohup): its children inherit the ignore and
// keep it, as they must (sandbox.StopSignals).
func skipIgnoredHangup(t *testing.T, sig os.Signal) {
	t.Helper()
	if sig == syscall.SIGHUP && !slices.Contains(sandbox.StopSignals, sig) {
		t.Skip("this test started with SIGHUP ignored (nohup): SIGHUP stays ignored")
	}
}
