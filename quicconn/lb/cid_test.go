package lb

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

// Encode then Decode gives the server ID back, and every encoded CID is
// as long as the config computes.
func TestEncodeDecode(t *testing.T) {
	for _, tc := range []struct {
		cfg      Config
		sid      []byte
		first    byte // the CID's first octet
		wantErr  bool
		wantLen  int
		nonceLen int
	}{
		{Config{Rotation: 0, ServerIDLen: 2, NonceLen: 5}, []byte{0, 1}, 0x07, false, 8, 5},
		{Config{Rotation: 1, ServerIDLen: 1, NonceLen: 4}, []byte{9}, 0x25, false, 6, 4},
		{Config{Rotation: 6, ServerIDLen: 3, NonceLen: 16}, []byte{1, 2, 3}, 0xd3, false, 20, 16},
		{Config{Rotation: 7, ServerIDLen: 2, NonceLen: 5}, []byte{0, 1}, 0, true, 8, 5},
		{Config{Rotation: 0, ServerIDLen: 0, NonceLen: 5}, nil, 0, true, 6, 5},
		{Config{Rotation: 0, ServerIDLen: 2, NonceLen: 3}, []byte{0, 1}, 0, true, 6, 3},
		{Config{Rotation: 0, ServerIDLen: 4, NonceLen: 16}, []byte{0, 0, 0, 1}, 0, true, 21, 16},
		{Config{Rotation: 0, ServerIDLen: 2, NonceLen: 5}, []byte{1}, 0, true, 8, 5}, // server ID of the wrong length
	} {
		t.Run(fmt.Sprintf("%+v", tc.cfg), func(t *testing.T) {
			if tc.cfg.Len() != tc.wantLen {
				t.Errorf("Len %d, want %d", tc.cfg.Len(), tc.wantLen)
			}
			nonce := bytes.Repeat([]byte{0xaa}, tc.nonceLen)
			cid, err := tc.cfg.Encode(tc.sid, nonce)
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrConfig) {
					t.Fatalf("Encode: %x, %v; want ErrConfig", cid, err)
				}
				return
			}
			if err != nil || len(cid) != tc.cfg.Len() || cid[0] != tc.first {
				t.Fatalf("Encode: %x (%d bytes), %v; want %d bytes starting %#x", cid, len(cid), err, tc.cfg.Len(), tc.first)
			}
			sid, err := tc.cfg.Decode(cid)
			if err != nil || !bytes.Equal(sid, tc.sid) {
				t.Fatalf("Decode(%x) = %x, %v; want %x", cid, sid, err, tc.sid)
			}
		})
	}
}

// Decode refuses a CID that is not the config's, saying why.
func TestDecodeRefuses(t *testing.T) {
	cfg := Config{Rotation: 2, ServerIDLen: 2, NonceLen: 5}
	good, _ := cfg.Encode([]byte{0, 3}, []byte{1, 2, 3, 4, 5})
	for _, tc := range []struct {
		name string
		cid  []byte
	}{
		{"too short", good[:7]},
		{"too long", append(append([]byte(nil), good...), 0)},
		{"another config rotation", append([]byte{good[0] ^ 0x20}, good[1:]...)},
		{"a wrong length self-description", append([]byte{good[0] ^ 0x01}, good[1:]...)},
		{"empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if sid, err := cfg.Decode(tc.cid); !errors.Is(err, ErrCID) {
				t.Errorf("Decode(%x) = %x, %v; want ErrCID", tc.cid, sid, err)
			}
		})
	}
}

func TestServerID(t *testing.T) {
	cfg := Config{ServerIDLen: 2, NonceLen: 5}
	for i, want := range [][]byte{{0, 1}, {0, 2}, {0, 3}} {
		if got := cfg.ServerID(i); !bytes.Equal(got, want) {
			t.Errorf("ServerID(%d) = %x, want %x", i, got, want)
		}
	}
}

func TestGeneratorIssuesDecodableCIDs(t *testing.T) {
	cfg := Config{Rotation: 0, ServerIDLen: 2, NonceLen: 5}
	g := &Generator{Config: cfg, ServerID: cfg.ServerID(1), R: bytes.NewReader(bytes.Repeat([]byte{7}, 100))}
	seen := map[string]bool{}
	for range 3 {
		id, err := g.GenerateConnectionID()
		if err != nil || id.Len() != g.ConnectionIDLen() {
			t.Fatalf("%v, %v (len %d, want %d)", id, err, id.Len(), g.ConnectionIDLen())
		}
		sid, err := cfg.Decode(id.Bytes())
		if err != nil || !bytes.Equal(sid, cfg.ServerID(1)) {
			t.Fatalf("Decode(%v) = %x, %v", id, sid, err)
		}
		seen[id.String()] = true
	}
	if _, err := (&Generator{Config: cfg, ServerID: []byte{1}, R: bytes.NewReader(nil)}).GenerateConnectionID(); err == nil {
		t.Error("a generator with no randomness issued a CID")
	}
}

// Decode never panics, and whatever it accepts re-encodes to itself.
func FuzzDecode(f *testing.F) {
	cfg := Config{Rotation: 0, ServerIDLen: 2, NonceLen: 5}
	good, _ := cfg.Encode([]byte{0, 2}, []byte{1, 2, 3, 4, 5})
	for _, s := range [][]byte{good, good[:3], {0xff}, nil, {0x07, 0, 0, 0, 0, 0, 0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sid, err := cfg.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrCID) {
				t.Fatalf("error %v is not ErrCID", err)
			}
			return
		}
		again, err := cfg.Encode(sid, b[1+cfg.ServerIDLen:])
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("%x decoded to server ID %x, which encodes to %x, %v", b, sid, again, err)
		}
	})
}
