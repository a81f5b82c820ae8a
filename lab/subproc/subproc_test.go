package subproc

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

var testRoles = Roles{
	"test-echo": func(ctx context.Context, args []string, ready func(string)) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte(strings.Join(args, ",")))
				c.Close()
			}
		}()
		ready(ln.Addr().String())
		<-ctx.Done()
		return nil
	},
	"test-fails": func(context.Context, []string, func(string)) error { return errors.New("no luck") },
}

func TestMain(m *testing.M) {
	Dispatch(testRoles)
	os.Exit(m.Run())
}

func TestStartServesThenStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start(ctx, "test-echo", "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Ready)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, _ := c.Read(buf)
	c.Close()
	if string(buf[:n]) != "a,b" {
		t.Errorf("child says %q, want its arguments a,b", buf[:n])
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestKillIsACrash(t *testing.T) {
	p, err := Start(context.Background(), "test-echo")
	if err != nil {
		t.Fatal(err)
	}
	p.Kill()
	ws := p.Cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child ended with %v, want killed by SIGKILL", p.Cmd.ProcessState)
	}
	if _, err := net.Dial("tcp", p.Ready); err == nil {
		t.Errorf("the killed child's port %s still accepts", p.Ready)
	}
}

func TestStartReportsChildThatNeverGetsReady(t *testing.T) {
	tests := []struct {
		role string
		want error
	}{
		{"test-fails", ErrNotReady},
		{"no-such-role", ErrNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			_, err := Start(context.Background(), tt.role)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}
