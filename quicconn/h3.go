package quicconn

// HTTP/3 (quic-go/http3) on the same server, so that standard QUIC clients
// can be pointed at it.

import (
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type h3Server struct{ s *http3.Server }

func newH3(h http.Handler, idle time.Duration) *h3Server {
	return &h3Server{&http3.Server{Handler: h, IdleTimeout: idle}}
}

func (h *h3Server) serve(conn *quic.Conn) error { return h.s.ServeQUICConn(conn) }
func (h *h3Server) close()                      { h.s.Close() }
