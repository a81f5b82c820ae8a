package quicconn

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The qlog file holds whole records only: what quic-go wrote of a record
// when the file is completed is left out, whether it is closed by quic-go
// or abandoned by a stopped run.
func TestRecordFileWritesWholeRecordsOnly(t *testing.T) {
	const whole = "\x1e{\"time\":1,\"name\":\"a\"}\n\x1e{\"time\":2,\"name\":\"b\"}\n"
	for _, tc := range []struct {
		name   string
		writes []string
		end    func(*recordFile)
		want   string
	}{
		{"closed after whole records", []string{"\x1e", "{\"time\":1,", "\"name\":\"a\"}", "\n", "\x1e{\"time\":2,\"name\":\"b\"}\n"}, func(r *recordFile) { r.Close() }, whole},
		{"abandoned mid-record", []string{whole, "\x1e{\"time\":3,\"na"}, func(r *recordFile) { r.abandon() }, whole},
		{"closed with a record cut short", []string{whole, "\x1e{\"time\":3"}, func(r *recordFile) { r.Close() }, whole},
		{"more than a buffer's worth", []string{string(bytes.Repeat([]byte(whole), flushAt/len(whole)+10)), "\x1e{"}, func(r *recordFile) { r.abandon() },
			string(bytes.Repeat([]byte(whole), flushAt/len(whole)+10))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.sqlog")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			r := &recordFile{f: f}
			for _, w := range tc.writes {
				if _, err := r.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			tc.end(r)
			r.Write([]byte("\x1e{\"late\":1}\n")) // discarded

			b, _ := os.ReadFile(path)
			if string(b) != tc.want {
				t.Errorf("file holds %d bytes ending %q, want %d", len(b), b[max(0, len(b)-20):], len(tc.want))
			}
		})
	}
}

func TestRemoveQlogsRemovesOnlyThisExperimentsFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]bool{ // name: removed
		"rebind-port-client-0a1b2c.sqlog":     true,
		"rebind-port-server-0a1b2c.sqlog":     true,
		"rebind-port-server-ffee.sqlog":       true,
		"rebind-port-client-notes.sqlog":      false, // not a connection ID
		"rebind-port-x-client-0a1b2c.sqlog":   false,
		"rebind-addr-client-0a1b2c.sqlog":     false,
		"rebind-port.pcapng":                  false,
		"rebind-port-client-0a1b2c.sqlog.bak": false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := RemoveQlogs(dir, "rebind-port")
	if err != nil || n != 3 {
		t.Fatalf("removed %d, %v; want 3", n, err)
	}
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if gone := os.IsNotExist(err); gone != removed {
			t.Errorf("%s: removed %t, want %t", name, gone, removed)
		}
	}
}

// A run stopped while its connection is open still leaves qlog files
// that end on a whole record: Finish completes them.
func TestTracerFinishCompletesTheQlogsOfOpenConnections(t *testing.T) {
	dir := t.TempDir()
	tr := &Tracer{Dir: dir, Prefix: "stop"}
	srv, err := NewServer(ServerConfig{Tracer: tr, IdleTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert, Tracer: tr, IdleTimeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Upload(ctx, make([]byte, 200<<10), 16<<10, nil); err != nil {
		t.Fatal(err)
	}
	// The connection is open: quic-go has not closed its qlogs.
	if cut := tr.Finish(0); cut != 2 {
		t.Fatalf("Finish completed %d open qlogs, want 2", cut)
	}
	// quic-go records on; nothing more reaches the files.
	if _, err := cl.Upload(ctx, make([]byte, 10<<10), 16<<10, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range tr.Conns() {
		b, err := os.ReadFile(c.File)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(b, []byte("\n")) {
			t.Errorf("%s ends %q, not on a whole record", filepath.Base(c.File), b[max(0, len(b)-20):])
		}
		records := bytes.Split(bytes.TrimPrefix(b, []byte{0x1e}), []byte{0x1e})
		for i, r := range records {
			if !json.Valid(r) {
				t.Fatalf("%s: record %d of %d is not JSON: %q", filepath.Base(c.File), i, len(records), r)
			}
		}
		if len(records) < 10 {
			t.Errorf("%s: %d records", filepath.Base(c.File), len(records))
		}
	}
	// Once the connection is closed, Finish has nothing left to complete.
	cl.Conn.CloseWithError(0, "done")
	for _, c := range tr.Conns() {
		select {
		case <-c.Done():
		case <-time.After(testTimeout):
			t.Fatalf("the %s's trace did not end", c.Role)
		}
	}
	if cut := tr.Finish(0); cut != 0 {
		t.Errorf("Finish after close completed %d files, want 0", cut)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.sqlog"))
	if len(names) != 2 || !slices.ContainsFunc(names, func(n string) bool { return filepath.Base(n)[:11] == "stop-client" }) {
		t.Errorf("files %v", names)
	}
}
