package quicconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

func TestHTTP3IndexAndBytes(t *testing.T) {
	srv, err := NewServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Cert)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx := context.Background()
	for _, tc := range []struct{ path, want string }{
		{"/", "statelab quic server"},
		{"/bytes/1000", ""},
	} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+srv.Addr.String()+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) || tc.path == "/bytes/1000" && len(b) != 1000 {
			t.Errorf("GET %s: %d, %d bytes", tc.path, resp.StatusCode, len(b))
		}
	}
}
