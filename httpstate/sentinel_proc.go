package httpstate

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RedisProc is a redis-server process of a replicated group: a primary, a
// replica or a Sentinel, on an address of the caller's choosing (each on
// its own loopback address, port 6379 or 26379, so Wireshark dissects the
// servers' traffic as RESP), with no persistence. It dies with the process
// that started it.
type RedisProc struct {
	Addr     string // host:port it listens on
	Sentinel bool

	cmd  *exec.Cmd
	done chan error
	stop sync.Once

	mu   sync.Mutex
	tail []string // its last log lines, for errors
}

// RedisProcSpec is what StartRedisProc starts.
type RedisProcSpec struct {
	// Host and Port to listen on; outgoing connections leave from Host too
	// (bind-source-addr), so every connection in a capture names its node.
	Host string
	Port int
	// Sentinel starts a Sentinel (redis-server --sentinel); Config is then
	// its configuration file's lines (written to Dir, which Sentinel
	// rewrites), else the server's extra directives, as
	// "name value" lines.
	Sentinel bool
	Config   []string
	Dir      string
}

// StartRedisProc starts a redis-server of spec and returns once it is
// ready: a server once it accepts connections, a Sentinel once it
// monitors its master.
func StartRedisProc(ctx context.Context, spec RedisProcSpec) (*RedisProc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRedis, err)
	}
	base := []string{
		fmt.Sprintf("port %d", spec.Port), "bind " + spec.Host, "bind-source-addr " + spec.Host,
		"protected-mode no", "daemonize no", "logfile \"\"", "loglevel notice", "dir " + spec.Dir,
	}
	var args []string
	ready := "Ready to accept connections"
	if spec.Sentinel {
		conf := filepath.Join(spec.Dir, fmt.Sprintf("sentinel-%s-%d.conf", spec.Host, spec.Port))
		lines := append(base, spec.Config...)
		if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("httpstate: writing %s: %w", conf, err)
		}
		args = []string{conf, "--sentinel"}
		ready = "+monitor master"
	} else {
		lines := append(base, `save ""`, "appendonly no")
		for _, l := range append(lines, spec.Config...) {
			name, value, _ := strings.Cut(l, " ")
			args = append(args, "--"+name)
			if value == `""` {
				value = ""
			}
			args = append(args, value)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("httpstate: starting redis-server: %w", err)
	}
	r := &RedisProc{Addr: fmt.Sprintf("%s:%d", spec.Host, spec.Port), Sentinel: spec.Sentinel, cmd: cmd, done: make(chan error, 1)}
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			r.mu.Lock()
			r.tail = append(r.tail, sc.Text())
			if len(r.tail) > 8 {
				r.tail = r.tail[1:]
			}
			r.mu.Unlock()
			if !signalled && strings.Contains(sc.Text(), ready) {
				signalled = true
				close(up)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		r.done <- cmd.Wait()
	}()
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-up:
		return r, nil
	case err := <-r.done:
		r.done <- err
		return nil, fmt.Errorf("httpstate: redis-server on %s exited (%v): %s", r.Addr, err, r.lastLines())
	case <-t.C:
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	<-r.done
	return nil, fmt.Errorf("httpstate: redis-server on %s not ready in time: %s", r.Addr, r.lastLines())
}

func (r *RedisProc) lastLines() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.tail, " | ")
}

// PID is the process's ID.
func (r *RedisProc) PID() int { return r.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to be gone; it reports
// whether the process died of that signal.
func (r *RedisProc) Kill() bool {
	killed := false
	r.stop.Do(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
		ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed = ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	})
	return killed
}

// Close stops the process (SIGTERM, then SIGKILL after a grace period);
// closing it again, or after Kill, does nothing.
func (r *RedisProc) Close() {
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
