package httpstate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoRedis means redis-server is not installed.
var ErrNoRedis = errors.New("httpstate: redis-server not installed")

// RedisServer is a redis-server process on loopback, with no persistence:
// its data lives exactly as long as the process. It dies with the process
// that started it.
type RedisServer struct {
	Addr string
	cmd  *exec.Cmd
	done chan error
	stop sync.Once
}

// URL is the --store URL for the server.
func (r *RedisServer) URL() string { return "redis://" + r.Addr + "/0" }

// PID is the redis-server process's ID.
func (r *RedisServer) PID() int { return r.cmd.Process.Pid }

// StartRedis starts redis-server on a free loopback port and returns once it
// says it accepts connections.
func StartRedis(ctx context.Context) (*RedisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRedis, err)
	}
	// redis-server --port 0 disables TCP, so take a free port from the
	// kernel and hand it over; in a network namespace of its own (the
	// lab's) nothing else races for it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "yes", "--logfile", "", "--daemonize", "no", "--loglevel", "notice")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("httpstate: starting redis-server: %w", err)
	}
	r := &RedisServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			if !signalled {
				if strings.Contains(sc.Text(), "Ready to accept connections") {
					signalled = true
					close(ready)
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		r.done <- cmd.Wait()
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-ready:
		return r, nil
	case err := <-r.done:
		return nil, fmt.Errorf("httpstate: redis-server exited (%v)", err)
	case <-t.C:
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-r.done
	return nil, fmt.Errorf("httpstate: redis-server not ready in time")
}

// Close stops redis-server; closing it again does nothing.
func (r *RedisServer) Close() {
	r.stop.Do(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case <-r.done:
		case <-t.C:
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
}
