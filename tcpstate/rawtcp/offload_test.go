package rawtcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// With the checksum offloaded (a packet socket on lo) and without it (the
// raw socket, checksums summed by the lab), the kernel accepts every lab
// segment: 1 MiB in 64 KiB segments reaches a kernel socket whole, and the
// kernel's answer reaches the lab.
func TestKernelAcceptsTheLabsSegmentsWithAndWithoutOffload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		software bool
	}{{"checksum offloaded", false}, {"checksum summed by the lab", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			s := newTestStack(t, StackConfig{Link: LinkConfig{SoftwareChecksum: tc.software},
				Engine: tcpstate.Config{MSS: 65535 - 40, SendBufferSize: 1 << 20, RecvBufferSize: 1 << 20, MinRTO: 200 * time.Millisecond, MSL: 100 * time.Millisecond}, RecordLimit: -1})
			if got := s.Link().Offloaded(); got == tc.software {
				t.Fatalf("Offloaded() = %v with SoftwareChecksum %v", got, tc.software)
			}
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			data := make([]byte, 1<<20)
			for i := range data {
				data[i] = byte(i*7 + i>>11)
			}
			got := make(chan [32]byte, 1)
			go func() {
				k, err := ln.Accept()
				if err != nil {
					got <- [32]byte{}
					return
				}
				defer k.Close()
				b, _ := io.ReadAll(k)
				k.Write([]byte("whole"))
				got <- sha256.Sum256(b)
			}()
			c, err := s.Dial(ctx, netip.MustParseAddrPort(ln.Addr().String()), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.WriteContext(ctx, data); err != nil {
				t.Fatal(err)
			}
			if err := c.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			select {
			case sum := <-got:
				if sum != sha256.Sum256(data) {
					t.Fatal("the kernel read other bytes than the lab sent")
				}
			case <-ctx.Done():
				t.Fatalf("the kernel never read the lab's %d bytes: %v", len(data), c)
			}
			reply, err := io.ReadAll(readerCtx{ctx, c})
			if !bytes.Equal(reply, []byte("whole")) {
				t.Fatalf("lab read %q, %v", reply, err)
			}
		})
	}
}

// The IPv4 header checksum of a known header (RFC 1071's example shape:
// the sum of the words with the field zero, folded and complemented).
func TestIPv4Checksum(t *testing.T) {
	h := []byte{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7}
	if got := ipv4Checksum(h); got != 0xb861 {
		t.Fatalf("checksum %#04x, want 0xb861", got)
	}
}

// lo's accept_local and route_localnet, which the offload needs, are on
// while any offloading link is open and back to what they were once the
// last one closes.
func TestOffloadPutsLoBackWhenTheLastLinkCloses(t *testing.T) {
	read := func() string {
		var s string
		for _, p := range loSysctls {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			s += strings.TrimSpace(string(b)) + " "
		}
		return s
	}
	before := read()
	open := func() *Link {
		l, err := OpenLink(LinkConfig{NetNS: netNS(t)})
		if err != nil {
			t.Fatal(err)
		}
		if !l.Offloaded() {
			t.Fatal("no offload")
		}
		return l
	}
	a, b := open(), open()
	if got := read(); got != "1 1 " {
		t.Fatalf("with two links open: %q, want both on", got)
	}
	a.Close()
	if got := read(); got != "1 1 " {
		t.Fatalf("with one link left open: %q, want both on", got)
	}
	b.Close()
	b.Close() // twice: counted once
	if got := read(); got != before {
		t.Fatalf("after the last link closed: %q, want %q as before", got, before)
	}
}
