package httpstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Running is an HTTP server listening on a real socket.
type Running struct {
	Addr    netip.AddrPort
	srv     *http.Server
	handler http.Handler // what Listen was given; srv.Handler counts its answers
	done    chan error

	once     sync.Once
	err      error
	answered atomic.Int64
}

// Answered is how many requests the server's handler has answered: the
// server's own count, which an experiment compares with the exchanges its
// capture holds. A request counts when its handler returns, before
// net/http flushes the reply, so once a client has read a reply the count
// includes it.
func (r *Running) Answered() int { return int(r.answered.Load()) }

// URL is the server's base URL.
func (r *Running) URL() string { return "http://" + r.Addr.String() }

// Listen starts serving h on addr ("127.0.0.1:0" picks a free port). The
// socket is bound and listening when Listen returns, so the address is
// ready to dial.
func Listen(addr string, h http.Handler) (*Running, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpstate: listen %s: %w", addr, err)
	}
	r := &Running{Addr: ln.Addr().(*net.TCPAddr).AddrPort(), handler: h, done: make(chan error, 1)}
	counted := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h.ServeHTTP(w, req)
		r.answered.Add(1) // not deferred: a handler that aborts answered nothing
	})
	r.srv = &http.Server{
		Handler:           counted,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() { r.done <- r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the server and closes every connection at once. It is safe to
// call more than once.
func (r *Running) Close() error {
	r.once.Do(func() {
		r.err = r.srv.Close()
		if serr := <-r.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
			r.err = serr
		}
	})
	return r.err
}

// Shutdown stops the server gracefully within ctx.
func (r *Running) Shutdown(ctx context.Context) error {
	r.once.Do(func() {
		r.err = r.srv.Shutdown(ctx)
		<-r.done
	})
	return r.err
}
