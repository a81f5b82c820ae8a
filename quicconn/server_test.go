package quicconn

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func TestRawStreamOperations(t *testing.T) {
	srv, err := NewServer(ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	t.Run("upload returns the sha256 and count", func(t *testing.T) {
		data := []byte("the connection ID, not the address, names the connection")
		r, err := cl.Upload(ctx, data, 7, nil)
		if err != nil || !r.Match || r.Received != int64(len(data)) {
			t.Fatalf("upload: %+v, %v", r, err)
		}
	})
	t.Run("download sends N pattern bytes", func(t *testing.T) {
		n, sum, err := cl.Download(ctx, 100000, nil)
		if err != nil || n != 100000 || sum != PatternSum(100000) {
			t.Fatalf("download: %d bytes, sum ok %t, %v", n, sum == PatternSum(100000), err)
		}
	})
	t.Run("echo returns what was sent", func(t *testing.T) {
		st, err := cl.Conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Write([]byte{OpEcho})
		st.Write([]byte("ping"))
		st.Close()
		b, err := io.ReadAll(st)
		if err != nil || string(b) != "ping" {
			t.Fatalf("echo: %q, %v", b, err)
		}
	})
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"unknown operation resets the stream", []byte{'X'}},
		{"oversized download resets the stream", binary.BigEndian.AppendUint64([]byte{OpDownload}, MaxDownload+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := cl.Conn.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			st.Write(tc.req)
			st.Close()
			_, err = io.ReadAll(st)
			var se *quic.StreamError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a stream reset", err)
			}
		})
	}
}
