package dnsfault

import (
	"context"
	"net"
	"sync"

	"github.com/miekg/dns"
)

// copyWriter sends every message n times.
type copyWriter struct {
	dns.ResponseWriter
	n int
}

func (w *copyWriter) Context() context.Context { return Context(w.ResponseWriter) }

func (w *copyWriter) WriteMsg(m *dns.Msg) error {
	var first error
	for range w.n {
		if err := w.ResponseWriter.WriteMsg(m); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (w *copyWriter) Write(b []byte) (int, error) {
	var first error
	for range w.n {
		if _, err := w.ResponseWriter.Write(b); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return 0, first
	}
	return len(b), nil
}

// fromWriter sends from another socket to the query's source.
type fromWriter struct {
	dns.ResponseWriter
	conn net.PacketConn
}

func (w *fromWriter) Context() context.Context { return Context(w.ResponseWriter) }

func (w *fromWriter) LocalAddr() net.Addr { return w.conn.LocalAddr() }

func (w *fromWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *fromWriter) Write(b []byte) (int, error) { return w.conn.WriteTo(b, w.RemoteAddr()) }

// tracker knows when the answer of the handler beneath is done: when that
// handler returns, or, if it hijacked the writer, when it closes it. Then
// it calls sent (if anything was written) and, when owned — this layer
// hijacked the writer below to answer later — closes it.
type tracker struct {
	dns.ResponseWriter
	owned bool
	sent  func(error)

	mu       sync.Mutex
	hijacked bool
	done     bool
	writes   int
	err      error
}

func newTracker(w dns.ResponseWriter, owned bool, sent func(error)) *tracker {
	return &tracker{ResponseWriter: w, owned: owned, sent: sent}
}

func (t *tracker) Context() context.Context { return Context(t.ResponseWriter) }

func (t *tracker) WriteMsg(m *dns.Msg) error {
	err := t.ResponseWriter.WriteMsg(m)
	t.note(err)
	return err
}

func (t *tracker) Write(b []byte) (int, error) {
	n, err := t.ResponseWriter.Write(b)
	t.note(err)
	return n, err
}

func (t *tracker) note(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes++
	if err != nil && t.err == nil {
		t.err = err
	}
}

// Hijack: the handler beneath answers later. The writer below is hijacked
// already when owned; else the hijack passes down.
func (t *tracker) Hijack() {
	t.mu.Lock()
	t.hijacked = true
	t.mu.Unlock()
	if !t.owned {
		t.ResponseWriter.Hijack()
	}
}

// Close from the handler beneath that hijacked: its answer is done.
func (t *tracker) Close() error {
	t.mu.Lock()
	h := t.hijacked
	t.mu.Unlock()
	if !h && !t.owned {
		return t.ResponseWriter.Close()
	}
	if t.finish() && !t.owned {
		return t.ResponseWriter.Close() // owned: finish closed it
	}
	return nil
}

// returned is called when the handler beneath returned.
func (t *tracker) returned() {
	t.mu.Lock()
	h := t.hijacked
	t.mu.Unlock()
	if !h {
		t.finish()
	}
}

// finish runs once; it reports whether this call was the one.
func (t *tracker) finish() bool {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return false
	}
	t.done = true
	writes, err := t.writes, t.err
	t.mu.Unlock()
	if t.sent != nil && writes > 0 {
		t.sent(err)
	}
	if t.owned {
		_ = t.ResponseWriter.Close()
	}
	return true
}
