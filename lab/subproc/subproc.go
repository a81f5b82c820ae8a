// Package subproc runs parts of an experiment as real, separate processes —
// a server that an experiment kills with SIGKILL, or stops and starts again
// — from whichever binary is running: the statelab CLI, a user's lab, or a
// package's test binary. The binary names its roles and calls Dispatch with
// them first thing (lab.Main does, with the catalogue's roles, and so does
// labtest.Main), which runs the role when this process was started as one.
// Nothing is registered by importing a package.
//
// The child inherits the lab's namespace, says it is ready by writing its
// address on a pipe of its own (stdout stays free), and dies with its
// parent.
package subproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors returned by Start.
var (
	ErrUnknownRole = errors.New("subproc: unknown role")
	ErrNotReady    = errors.New("subproc: child exited before it was ready")
)

const (
	envRole = "STATELAB_SUBPROC"
	envArgs = "STATELAB_SUBPROC_ARGS"
)

// Role is the body of a child process. It calls ready once with the address
// it serves (or any line the parent wants), then runs until ctx is cancelled
// (SIGTERM) or it fails.
type Role func(ctx context.Context, args []string, ready func(addr string)) error

// Roles names the process bodies a binary can run.
type Roles map[string]Role

// Dispatch runs the named role if this process was started as one of
// roles, and exits with its status; otherwise it returns at once.
func Dispatch(roles Roles) {
	name := os.Getenv(envRole)
	if name == "" {
		return
	}
	os.Exit(runRole(roles[name], name))
}

func runRole(r Role, name string) int {
	if r == nil {
		fmt.Fprintf(os.Stderr, "%v %q in this binary\n", ErrUnknownRole, name)
		return 2
	}
	var args []string
	if err := json.Unmarshal([]byte(os.Getenv(envArgs)), &args); err != nil {
		fmt.Fprintf(os.Stderr, "subproc: bad arguments for %s: %v\n", name, err)
		return 2
	}
	readyPipe := os.NewFile(3, "ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var once sync.Once
	ready := func(addr string) {
		once.Do(func() {
			fmt.Fprintf(readyPipe, "%s\n", strings.ReplaceAll(addr, "\n", " "))
			readyPipe.Close()
		})
	}
	if err := r(ctx, args, ready); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "subproc %s: %v\n", name, err)
		return 1
	}
	return 0
}

// Proc is a running child.
type Proc struct {
	Cmd *exec.Cmd
	// Ready is what the child passed to ready: usually its address.
	Ready string

	done chan struct{}
	err  error
}

// PID is the child's process ID.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Start runs this binary again as the named role and waits until it is
// ready or ctx ends. The child writes its standard error to the parent's.
func Start(ctx context.Context, role string, args ...string) (*Proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("subproc: %w", err)
	}
	if args == nil {
		args = []string{}
	}
	a, _ := json.Marshal(args)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("subproc: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envRole+"="+role, envArgs+"="+string(a))
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("subproc: starting %s: %w", role, err)
	}
	w.Close()
	p := &Proc{Cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n') // EOF when the child exits unready
		line <- s
	}()
	select {
	case s := <-line:
		if s == "" {
			<-p.done
			return nil, fmt.Errorf("%w: %s: %v", ErrNotReady, role, p.err)
		}
		p.Ready = strings.TrimSuffix(s, "\n")
		return p, nil
	case <-ctx.Done():
		_ = p.Kill()
		return nil, fmt.Errorf("subproc: %s not ready: %w", role, ctx.Err())
	}
}

// Kill sends SIGKILL — no cleanup, no goodbye, as a crash — and waits for
// the child to be gone.
func (p *Proc) Kill() error {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return nil
}

// Stop asks the child to finish (SIGTERM) and waits up to timeout before
// killing it. It returns the child's exit error, if any.
func (p *Proc) Stop(timeout time.Duration) error {
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return p.Kill()
	}
}

// Done is closed when the child has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }
