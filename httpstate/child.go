package httpstate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// ChildEnv names the variable that turns any binary linking this package
// into a calculator server process: the crash experiments need a server they
// can kill -9 for real, so they re-execute their own binary (the statelab
// CLI or a test binary) with ChildEnv set. The check runs in this package's
// init, before main or TestMain, so every binary that can run the
// experiments can also be their server.
const ChildEnv = "STATELAB_HTTP_CHILD"

// ErrChild is wrapped by errors starting or talking to a server process.
var ErrChild = errors.New("httpstate: server process")

// ChildSpec is what a server process serves: a mode, an address and, for the
// store-backed mode, a --store URL.
type ChildSpec struct {
	Mode  Mode   `json:"mode"`
	Addr  string `json:"addr"`
	Store string `json:"store,omitempty"`
}

// readyPrefix starts the one line a server process prints on stdout once
// its socket is listening.
const readyPrefix = "LISTENING "

func init() {
	if spec := os.Getenv(ChildEnv); spec != "" {
		os.Exit(childMain(spec, os.Stdin, os.Stdout, os.Stderr))
	}
}

// childMain serves until stdin closes (the parent went away or asked it to
// stop) or a SIGTERM/SIGINT comes.
func childMain(specJSON string, stdin io.Reader, stdout, stderr io.Writer) int {
	var spec ChildSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintf(stderr, "%s=%q: %v\n", ChildEnv, specJSON, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	run, cleanup, err := ServeMode(ctx, spec)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer cleanup()
	fmt.Fprintf(stdout, "%s%s\n", readyPrefix, run.Addr)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(eof) }()
	select {
	case <-eof:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = run.Shutdown(sctx)
	return 0
}

// ServeMode opens the spec's store, builds the server and listens. cleanup
// stops the server and releases the store.
func ServeMode(ctx context.Context, spec ChildSpec) (*Running, func(), error) {
	cfg := Config{Mode: spec.Mode}
	closeStore := func() error { return nil }
	if spec.Store != "" && spec.Mode != Stateless {
		u, err := ParseStoreURL(spec.Store)
		if err != nil {
			return nil, nil, err
		}
		st, c, err := OpenStore(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		cfg.Store, closeStore = st, c
	}
	srv, err := New(cfg)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	run, err := Listen(spec.Addr, srv)
	if err != nil {
		srv.Close()
		closeStore()
		return nil, nil, err
	}
	return run, func() { run.Close(); srv.Close(); closeStore() }, nil
}

// Child is a calculator server in a separate process.
type Child struct {
	Spec ChildSpec
	Addr netip.AddrPort
	cmd  *exec.Cmd
	in   io.WriteCloser
	errb *bytes.Buffer
	done chan error
}

// URL is the child's base URL.
func (c *Child) URL() string { return "http://" + c.Addr.String() }

// StartChild runs a calculator server in a new process of this binary and
// returns once it listens. The process dies with the parent.
func StartChild(ctx context.Context, spec ChildSpec) (*Child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: finding own executable: %v", ErrChild, err)
	}
	js, _ := json.Marshal(spec)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(js))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &Child{Spec: spec, cmd: cmd, errb: new(bytes.Buffer), done: make(chan error, 1)}
	cmd.Stderr = c.errb
	if c.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrChild, err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
		c.done <- cmd.Wait()
	}()
	ready := time.NewTimer(20 * time.Second)
	defer ready.Stop()
	select {
	case l, ok := <-line:
		if ap, err := netip.ParseAddrPort(strings.TrimPrefix(l, readyPrefix)); ok && err == nil && strings.HasPrefix(l, readyPrefix) {
			c.Addr = ap
			return c, nil
		}
		err := <-c.done
		return nil, fmt.Errorf("%w %s exited before listening (%v): %s", ErrChild, spec.Mode, err, strings.TrimSpace(c.errb.String()))
	case <-ready.C:
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-c.done
	return nil, fmt.Errorf("%w %s did not listen in time: %s", ErrChild, spec.Mode, strings.TrimSpace(c.errb.String()))
}

// Kill sends SIGKILL and waits for the process to be gone. It reports
// whether the process really died of the signal.
func (c *Child) Kill() (bool, error) {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return false, fmt.Errorf("%w: kill -9: %v", ErrChild, err)
	}
	err := <-c.done
	c.done <- err
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, nil
		}
	}
	return false, nil
}

// Stop asks the process to exit (closing its stdin) and waits, killing it
// after a grace period.
func (c *Child) Stop() {
	_ = c.in.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case err := <-c.done:
		c.done <- err
	case <-t.C:
		_ = c.cmd.Process.Kill()
		err := <-c.done
		c.done <- err
	}
}
