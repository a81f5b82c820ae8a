package httpstate

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrNoHAProxy means haproxy is not installed.
var ErrNoHAProxy = errors.New("httpstate: haproxy not installed")

// HAProxy is an haproxy process balancing over calculator backends.
type HAProxy struct {
	Addr netip.AddrPort
	cmd  *exec.Cmd
	errb *bytes.Buffer
	done chan error
	dir  string
}

// URL is the balancer's base URL.
func (h *HAProxy) URL() string { return "http://" + h.Addr.String() }

// PID is the haproxy process's ID.
func (h *HAProxy) PID() int { return h.cmd.Process.Pid }

// haproxyConfig is the configuration for a policy over backends; the
// frontend listens on an inherited socket (fd 3), so it is bound before
// haproxy starts and there is nothing to wait for.
func haproxyConfig(policy Policy, backends []netip.AddrPort) string {
	var b strings.Builder
	b.WriteString(`global
    maxconn 256
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    retries 1
    option redispatch
    # One request per server connection, as the Go balancer does: a dead
    # backend is a refused connection, redispatched, never a stale one.
    option http-server-close
frontend calc
    bind fd@3
    default_backend calcs
backend calcs
    balance roundrobin
    # Name the server that answered, as the Go balancer does, so the
    # capture's client leg shows it beside the backend leg.
    http-response set-header X-Backend %[srv_name]
`)
	if policy == Sticky {
		b.WriteString("    cookie " + LBCookie + " insert indirect nocache httponly\n")
	}
	for i, a := range backends {
		fmt.Fprintf(&b, "    server b%d %s", i+1, a)
		if policy == Sticky {
			fmt.Fprintf(&b, " cookie b%d", i+1)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// StartHAProxy runs haproxy in the foreground on a fresh loopback port.
func StartHAProxy(policy Policy, backends []netip.AddrPort) (*HAProxy, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoHAProxy, err)
	}
	dir, err := os.MkdirTemp("", "statelab-haproxy-")
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(policy, backends)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	f, err := ln.(*net.TCPListener).File()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	ln.Close() // f is a duplicate and keeps the socket listening
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer f.Close()
	check := exec.Command(bin, "-c", "-f", cfg)
	check.ExtraFiles = []*os.File{f}
	if out, err := check.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("httpstate: haproxy rejects its configuration: %v: %s", err, out)
	}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h := &HAProxy{Addr: addr, cmd: cmd, errb: new(bytes.Buffer), done: make(chan error, 1), dir: dir}
	cmd.Stdout, cmd.Stderr = h.errb, h.errb
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("httpstate: starting haproxy: %w", err)
	}
	go func() { h.done <- cmd.Wait() }()
	return h, nil
}

// Close stops haproxy.
func (h *HAProxy) Close() {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		_ = h.cmd.Process.Kill()
		<-h.done
	}
	os.RemoveAll(h.dir)
}
