package lb

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestEncapDecap(t *testing.T) {
	for _, a := range []string{"127.0.0.1:4433", "127.0.0.2:1", "[::1]:65535"} {
		addr := netip.MustParseAddrPort(a)
		b := Encap(addr, []byte("quic"))
		if len(b) != EncapLen(addr)+4 {
			t.Errorf("%s: %d bytes, want %d", a, len(b), EncapLen(addr)+4)
		}
		got, p, err := Decap(b)
		if err != nil || got != addr || string(p) != "quic" {
			t.Errorf("%s: Decap = %s %q %v", a, got, p, err)
		}
	}
	for _, bad := range [][]byte{nil, {2, 4, 127, 0, 0, 1, 0, 1}, {1, 5, 127, 0, 0, 1, 0, 1}, {1, 4, 127, 0}, {1, 4, 127, 0, 0, 1, 0, 0}, {1, 4, 0, 0, 0, 0, 0, 1}} {
		if a, _, err := Decap(bad); !errors.Is(err, ErrEncap) {
			t.Errorf("Decap(%x) = %s, %v; want ErrEncap", bad, a, err)
		}
	}
}

// Decap never panics, and what it accepts encapsulates back to itself.
func FuzzDecap(f *testing.F) {
	f.Add(Encap(netip.MustParseAddrPort("127.0.0.1:443"), []byte{0x40, 1, 2}))
	f.Add(Encap(netip.MustParseAddrPort("[::1]:443"), nil))
	f.Add([]byte{1, 4, 127})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, p, err := Decap(b)
		if err != nil {
			if !errors.Is(err, ErrEncap) {
				t.Fatalf("error %v is not ErrEncap", err)
			}
			return
		}
		if b[1] == 16 && a.Addr().Is4() {
			return // an IPv4-mapped IPv6 address reads back as IPv4
		}
		if again := Encap(a, p); !bytes.Equal(again, b) {
			t.Fatalf("%x decapsulated to %s, which encapsulates to %x", b, a, again)
		}
	})
}

// DCID reads a long header's DCID by its length and a short header's by
// the length it is told.
func TestDCID(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    []byte
		want []byte
		ok   bool
	}{
		{"short header", []byte{0x40, 1, 2, 3, 4, 5, 6, 7, 8, 9}, []byte{1, 2, 3, 4, 5, 6, 7, 8}, true},
		{"short header cut short", []byte{0x40, 1, 2}, nil, false},
		{"long header", []byte{0xc0, 0, 0, 0, 1, 3, 9, 8, 7, 0}, []byte{9, 8, 7}, true},
		{"long header cut short", []byte{0xc0, 0, 0, 0, 1, 3, 9}, nil, false},
		{"a DCID over 20 bytes", append([]byte{0xc0, 0, 0, 0, 1, 21}, make([]byte, 21)...), nil, false},
		{"empty", nil, nil, false},
	} {
		got, err := DCID(tc.d, 8)
		if (err == nil) != tc.ok || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: DCID = %x, %v; want %x", tc.name, got, err, tc.want)
		}
	}
}

// Route: by CID, a short header goes to the backend its server ID names,
// a client-chosen DCID and an unknown server ID to a DCID hash (the same
// for the same DCID); by 4-tuple, the source decides.
func TestRoute(t *testing.T) {
	cfg := Config{ServerIDLen: 2, NonceLen: 5}
	backends := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1001"), netip.MustParseAddrPort("127.0.0.1:1002"), netip.MustParseAddrPort("127.0.0.1:1003")}
	b := &Balancer{Front: netip.MustParseAddrPort("127.0.0.1:9"), mode: ByCID, cfg: cfg, backends: backends}
	src1, src2 := netip.MustParseAddrPort("127.0.0.1:5001"), netip.MustParseAddrPort("127.0.0.2:5002")
	cid := func(i int) []byte { c, _ := cfg.Encode(cfg.ServerID(i), []byte{1, 2, 3, 4, 5}); return c }
	short := func(dcid []byte) []byte { return append(append([]byte{0x40}, dcid...), 0xaa, 0xbb) }
	for i := range backends {
		for _, src := range []netip.AddrPort{src1, src2} {
			if r := b.Route(src, short(cid(i))); r.Backend != i || r.By != ByServerID {
				t.Errorf("short header with server ID %d from %s: %+v", i, src, r)
			}
		}
	}
	initial := []byte{0xc0, 0, 0, 0, 1, 20}
	initial = append(initial, bytes.Repeat([]byte{0x5a}, 20)...)
	r1, r2 := b.Route(src1, initial), b.Route(src2, initial)
	if r1.By != ByDCIDHash || r1.Backend != r2.Backend || r1.Why == "" {
		t.Errorf("an Initial's client-chosen DCID: %+v from one source, %+v from another", r1, r2)
	}
	unknown, _ := cfg.Encode([]byte{0, 9}, []byte{1, 2, 3, 4, 5})
	if r := b.Route(src1, short(unknown)); r.By != ByDCIDHash {
		t.Errorf("an unknown server ID: %+v", r)
	}
	b.mode = ByTuple
	if r := b.Route(src1, short(cid(0))); r.By != ByTupleHash {
		t.Errorf("by 4-tuple: %+v", r)
	}
	moved := 0
	for p := range 30 {
		if b.Route(netip.AddrPortFrom(src1.Addr(), uint16(6000+p)), nil).Backend != b.Route(src1, nil).Backend {
			moved++
		}
	}
	if moved == 0 || moved == 30 {
		t.Errorf("by 4-tuple, %d of 30 new source ports land on another backend; want some, not all", moved)
	}
}
