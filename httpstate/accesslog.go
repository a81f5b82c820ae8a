package httpstate

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// AccessLog wraps h so that each request it answers writes one line to w:
//
//	2026-12-01T05:06:00.123Z 127.0.0.1:51234 "POST /calculate HTTP/1.1" 200 15B 0.412ms
//
// the time the request arrived (UTC), the client's address, the request
// line (quoted, so nothing a client sends can start a line of its own),
// the status, the bytes of the response body and how long the handler
// took. Lines are written whole, one at a time.
func AccessLog(h http.Handler, w io.Writer) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggedWriter{ResponseWriter: rw}
		h.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		line := fmt.Sprintf("%s %s %s %d %dB %.3fms\n",
			start.UTC().Format("2006-01-02T15:04:05.000Z"), r.RemoteAddr,
			strconv.Quote(r.Method+" "+r.URL.RequestURI()+" "+r.Proto),
			lw.status, lw.bytes, float64(time.Since(start).Microseconds())/1000)
		mu.Lock()
		_, _ = io.WriteString(w, line)
		mu.Unlock()
	})
}

// loggedWriter notes a response's status and size.
type loggedWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
