package capture

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWriteFileRoundTripsThroughPcapgo(t *testing.T) {
	keylog := []byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET 00112233 44556677\n")
	tests := []struct {
		name string
		file File
	}{
		{"no packets", File{Experiment: "x/empty"}},
		{"packets with and without comments", File{Experiment: "http/calculator", Description: "six numbers against four",
			Packets: []*Packet{
				pkt(tcpFrame(t, 40000, 80, 1, true, "")),
				pkt(tcpFrame(t, 40000, 80, 2, false, "POST /calculate"), "stateless request 1: add(10, 5)"),
				pkt(tcpFrame(t, 80, 40000, 9, false, "200"), "two", "comments"),
			}}},
		{"secrets of every padding", File{Experiment: "quic/x", Secrets: [][]byte{keylog, keylog[:1], keylog[:2], keylog[:3]},
			Packets: []*Packet{pkt(udp6Frame(t, 1, 2, "quic"), "client: path 1")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "c.pcapng")
			if err := WriteFile(path, tt.file); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains([]byte(got.Description), []byte(tt.file.Experiment)) || !bytes.Contains([]byte(got.Experiment), []byte(tt.file.Experiment)) {
				t.Errorf("section/interface do not name the experiment: %q / %q", got.Description, got.Experiment)
			}
			if len(got.Packets) != len(tt.file.Packets) {
				t.Fatalf("read %d packets, wrote %d", len(got.Packets), len(tt.file.Packets))
			}
			for i, p := range tt.file.Packets {
				g := got.Packets[i]
				if !bytes.Equal(g.Data, p.Data) || !g.Time.Equal(p.Time) || !slices.Equal(g.Comments, p.Comments) {
					t.Errorf("packet %d: got %d bytes at %v comments %q; want %d bytes at %v comments %q",
						i, len(g.Data), g.Time, g.Comments, len(p.Data), p.Time, p.Comments)
				}
			}
			if len(got.Secrets) != len(tt.file.Secrets) {
				t.Fatalf("read %d secrets blocks, wrote %d", len(got.Secrets), len(tt.file.Secrets))
			}
			for i := range got.Secrets {
				if !bytes.Equal(got.Secrets[i], tt.file.Secrets[i]) {
					t.Errorf("secrets %d: got %q want %q", i, got.Secrets[i], tt.file.Secrets[i])
				}
			}
		})
	}
}

// Cutting a valid file anywhere but at a block boundary is an error wrapping
// ErrMalformed, never a panic.
func TestSecretsCutAtEveryLength(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	if err := WriteFile(path, File{Experiment: "x/y", Secrets: [][]byte{[]byte("abcde")},
		Packets: []*Packet{pkt(tcpFrame(t, 1, 2, 3, false, "z"), "c")}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Secrets(b); err != nil {
		t.Fatalf("whole file: %v", err)
	}
	boundaries := map[int]bool{}
	for off := 0; off < len(b); {
		boundaries[off] = true
		off += int(uint32(b[off+4]) | uint32(b[off+5])<<8 | uint32(b[off+6])<<16 | uint32(b[off+7])<<24)
	}
	for n := 1; n < len(b); n++ {
		_, err := Secrets(b[:n])
		if boundaries[n] {
			if err != nil {
				t.Errorf("cut at block boundary %d: %v", n, err)
			}
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("cut at %d: err = %v, want ErrMalformed", n, err)
		}
	}
}

func FuzzSecrets(f *testing.F) {
	var buf bytes.Buffer
	tmp := filepath.Join(f.TempDir(), "seed.pcapng")
	if err := WriteFile(tmp, File{Experiment: "f/z", Secrets: [][]byte{[]byte("k")}}); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(tmp)
	buf.Write(b)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Secrets(b)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		for _, s := range out {
			if len(s) > len(b) {
				t.Fatal("secret longer than input")
			}
		}
	})
}
