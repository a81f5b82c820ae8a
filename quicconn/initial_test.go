package quicconn

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The Initial keys derived from RFC 9001 Appendix A's connection ID are
// the appendix's.
func TestInitialKeysMatchRFC9001AppendixA(t *testing.T) {
	dcid := unhex(t, "8394c8f03e515708")
	for _, tc := range []struct{ label, iv string }{
		{"client in", "fa044b2f42a3fd3b46fb255c"},
		{"server in", "0ac1493ca1905853b0bba03e"},
	} {
		k, err := newInitialKeys(dcid, tc.label)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(k.iv); got != tc.iv {
			t.Errorf("%s: iv %s, want %s", tc.label, got, tc.iv)
		}
	}
}

// RFC 9001 A.4's Retry verifies against its Initial's connection ID and
// not against another; a flipped byte breaks the tag.
func TestParseRetry(t *testing.T) {
	retry := unhex(t, "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba")
	odcid := unhex(t, "8394c8f03e515708")
	flipped := bytes.Clone(retry)
	flipped[20] ^= 1
	for _, tc := range []struct {
		name  string
		b     []byte
		odcid []byte
		err   error
		token string
	}{
		{"RFC 9001 A.4", retry, odcid, nil, "token"},
		{"another Initial's connection ID", retry, unhex(t, "0000000000000000"), ErrRetryTag, ""},
		{"a byte of the token flipped", flipped, odcid, ErrRetryTag, ""},
		{"an Initial, not a Retry", []byte{0xc0, 0, 0, 0, 1, 0, 0}, odcid, ErrNotRetry, ""},
		{"cut short", retry[:10], odcid, ErrNotRetry, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRetry(tc.b, tc.odcid)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && string(r.Token) != tc.token {
				t.Errorf("token %q, want %q", r.Token, tc.token)
			}
		})
	}
}

// What a hand-built Initial gets from a server that validates addresses:
// a Retry without a token or with a forged one, INVALID_TOKEN for a valid
// token from another address, a connection for the token's own address.
func TestHandBuiltInitialsAgainstRetryServer(t *testing.T) {
	srv, err := NewServer(ServerConfig{Retry: true, HandshakeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	sock := func(addr string) *net.UDPConn {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(mustAddrPort(t, addr)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := sock("127.0.0.1:0"), sock("127.0.0.2:0")
	exchange := func(c *net.UDPConn, dcid, token []byte) []byte {
		t.Helper()
		pkt, err := BuildInitial(InitialSpec{DCID: dcid, SCID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) < MinInitialSize {
			t.Fatalf("%d-byte Initial", len(pkt))
		}
		if tok, ok := InitialToken(pkt); !ok || !bytes.Equal(tok, token) {
			t.Fatalf("token read back %x %t, want %x", tok, ok, token)
		}
		if _, err := c.WriteToUDPAddrPort(pkt, srv.Addr); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2000)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf[:n]
	}
	d1 := bytes.Repeat([]byte{0xd1}, 8)
	r, err := ParseRetry(exchange(a, d1, nil), d1)
	if err != nil || len(r.Token) == 0 {
		t.Fatalf("first Initial: %v, token %d B", err, len(r.Token))
	}
	forged := bytes.Clone(r.Token)
	forged[len(forged)/2] ^= 0xff
	d2 := bytes.Repeat([]byte{0xd2}, 8)
	if _, err := ParseRetry(exchange(a, d2, forged), d2); err != nil {
		t.Errorf("forged token: %v, want a new Retry", err)
	}
	d3 := bytes.Repeat([]byte{0xd3}, 8)
	o, err := OpenServerInitial(exchange(b, d3, r.Token), d3)
	if err != nil {
		t.Fatalf("token from another address: %v", err)
	}
	if len(o.Frames) == 0 || o.Frames[0].Type != 0x1c || o.Frames[0].ErrorCode != ErrCodeInvalidToken {
		t.Errorf("token from another address: frames %+v, want CONNECTION_CLOSE INVALID_TOKEN", o.Frames)
	}
	if st := srv.Stats(); st.Created != 0 || st.Retried != 2 {
		t.Errorf("before a valid token: %+v, want 0 created, 2 Retry", st)
	}
	d4 := bytes.Repeat([]byte{0xd4}, 8)
	o, err = OpenServerInitial(exchange(a, d4, r.Token), d4)
	if err != nil || len(o.Frames) == 0 || o.Frames[0].Name() != "ACK" {
		t.Errorf("valid token: %v, frames %+v, want an ACK", err, o.Frames)
	}
	if st := srv.Stats(); st.Created != 1 {
		t.Errorf("after a valid token: %+v, want 1 created", st)
	}
}

func FuzzParseRetry(f *testing.F) {
	f.Add(unhex(f, "ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba"), unhex(f, "8394c8f03e515708"))
	f.Add([]byte{0xff, 0, 0, 0, 1, 21}, []byte{})
	f.Add([]byte{0xf0, 0, 0, 0, 1, 0, 0}, []byte{1})
	f.Fuzz(func(t *testing.T, b, odcid []byte) {
		r, err := ParseRetry(b, odcid)
		if err == nil && len(r.Token)+16 > len(b) {
			t.Fatalf("token of %d bytes from %d", len(r.Token), len(b))
		}
	})
}

func FuzzOpenServerInitial(f *testing.F) {
	pkt, _ := BuildInitial(InitialSpec{DCID: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Frames: []byte{0x1c, 0x0b, 0, 3, 'b', 'a', 'd'}})
	f.Add(pkt, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{0xc0, 0, 0, 0, 1, 0, 0, 0, 0x7f}, []byte{})
	f.Add([]byte{0xc0, 0, 0, 0, 1, 0, 0, 0xff, 0xff}, []byte{})
	f.Fuzz(func(t *testing.T, b, odcid []byte) {
		OpenServerInitial(b, odcid)
		InitialToken(b)
	})
}

func FuzzParseFrames(f *testing.F) {
	for _, s := range [][]byte{{0x01, 0, 0}, {0x02, 5, 0, 0, 5}, {0x03, 5, 0, 1, 5, 1, 1, 0, 0, 0}, {0x06, 0, 2, 'h', 'i'},
		{0x1c, 0x0b, 0, 3, 'b', 'a', 'd'}, {0x1d, 0x0b, 0xff}, {0x02, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := parseFrames(b)
		if err != nil && !errors.Is(err, ErrFrame) {
			t.Fatalf("error %v is not ErrFrame", err)
		}
		_ = fs
	})
}

func mustAddrPort(t testing.TB, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
