package udpdns

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// With TCP set the server answers over TCP on the UDP port too.
func TestServerAnswersOverTCP(t *testing.T) {
	s := startServer(t, ServerConfig{TCP: true})
	for _, proto := range []string{"udp", "tcp"} {
		t.Run(proto, func(t *testing.T) {
			q := new(dns.Msg)
			q.SetQuestion("example.lab.", dns.TypeA)
			c := &dns.Client{Net: proto, Timeout: 5 * time.Second}
			r, _, err := c.Exchange(q, s.Addr().String())
			if err != nil || answerA(r).String() != "192.0.2.1" {
				t.Fatalf("%s query: %v %v, want 192.0.2.1", proto, r, err)
			}
		})
	}
}

// tcpQuery writes m over conn with its length prefix, padded with an
// EDNS0 padding option of pad bytes.
func tcpQuery(t *testing.T, conn net.Conn, pad int) {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("example.lab.", dns.TypeA)
	q.SetEdns0(4096, false)
	if pad > 0 {
		q.IsEdns0().Option = append(q.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, pad)})
	}
	b := mustPack(q)
	if _, err := conn.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)); err != nil {
		t.Fatal(err)
	}
}

// closedByServer reports whether conn reads EOF (or a reset): the server
// closed it. It fails the test when the server neither closed nor answered
// within 5s.
func closedByServer(t *testing.T, conn net.Conn) bool {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [2]byte
	_, err := io.ReadFull(conn, b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server neither answered nor closed the connection")
	}
	return err != nil
}

// A TCP query longer than MaxTCPMessageBytes closes the connection; one
// within it is answered.
func TestServerTCPMessageSizeLimit(t *testing.T) {
	tests := []struct {
		name   string
		pad    int
		closed bool
	}{
		{"a small query is answered", 0, false},
		{"a query over the limit closes the connection", 1000, true},
	}
	s := startServer(t, ServerConfig{TCP: true, MaxTCPMessageBytes: 512})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tcpQuery(t, conn, tt.pad)
			if got := closedByServer(t, conn); got != tt.closed {
				t.Errorf("closed %v, want %v", got, tt.closed)
			}
		})
	}
}

// Connections beyond the per-client or the total limit are closed on
// accept and counted.
func TestServerTCPConnectionLimits(t *testing.T) {
	s := startServer(t, ServerConfig{TCP: true, MaxConns: 3, MaxConnsPerClient: 2})
	dialFrom := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Skipf("cannot dial from %s: %v", local, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	tests := []struct {
		name    string
		from    string
		refused bool
	}{
		{"first from a client", "127.0.0.1", false},
		{"second from the same client", "127.0.0.1", false},
		{"third from the same client: over the per-client limit", "127.0.0.1", true},
		{"first from another client", "127.0.0.2", false},
		{"second from another client: over the total limit", "127.0.0.2", true},
	}
	refused := uint64(0)
	for _, tt := range tests {
		c := dialFrom(tt.from)
		tcpQuery(t, c, 0)
		if got := closedByServer(t, c); got != tt.refused {
			t.Errorf("%s: closed %v, want %v", tt.name, got, tt.refused)
		}
		if tt.refused {
			refused++
		}
		if got := s.Stats().ConnsRefused; got != refused {
			t.Errorf("%s: %d connections refused, want %d", tt.name, got, refused)
		}
	}
}

// LoadZoneFile reads at most MaxZoneFileBytes: a longer file, or an
// endless one, is refused.
func TestZoneFileSizeCap(t *testing.T) {
	dir := t.TempDir()
	soa := "$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nwww IN A 198.51.100.80\n"
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		body := soa + strings.Repeat(";", max(0, size-len(soa)-1)) + "\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, err string
	}{
		{"a file at the cap", write("at", MaxZoneFileBytes), ""},
		{"a file one byte over", write("over", MaxZoneFileBytes+1), "larger than 1048576 bytes"},
		{"an endless file", "/dev/zero", "larger than 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := os.Stat(tt.path); err != nil {
				t.Skip(err)
			}
			z, err := LoadZoneFile(tt.path)
			switch {
			case tt.err == "" && (err != nil || z.Records() == 0):
				t.Errorf("LoadZoneFile: %v, want the zone", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("LoadZoneFile: %v, want an error containing %q", err, tt.err)
			}
		})
	}
}

// A zone holds at most MaxZoneRecords records and MaxZoneRecordBytes of
// them however they are written: $GENERATE makes up to 65,536 records of
// one line, so the file's byte cap alone would let a 1 MiB file ask for
// billions of records, or gigabytes of large ones.
func TestZoneRecordCap(t *testing.T) {
	const soa = "$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\n"
	gen := func(lines int) string {
		var b strings.Builder
		b.WriteString(soa)
		for i := range lines {
			fmt.Fprintf(&b, "$GENERATE 0-65535 h%d-$ A 192.0.2.1\n", i)
		}
		return b.String()
	}
	tests := []struct {
		name, zone, err string
	}{
		{"one $GENERATE line, under the cap", gen(1), ""},
		{"three $GENERATE lines, over the cap", gen(3), "more than 100000 records"},
		{"plain records over the cap", soa + strings.Repeat("www IN A 192.0.2.1\n", 100_001), "more than 100000 records"},
		{"large records under the record cap, over the byte cap", soa + "$GENERATE 0-65535 t$ TXT" + strings.Repeat(" "+strings.Repeat("x", 250), 4) + "\n", "more than 16777216 bytes of records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := ParseZone(strings.NewReader(tt.zone), "", "test")
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("ParseZone: %v, want the zone", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("ParseZone = %d records, %v; want an error containing %q", z.Records(), err, tt.err)
			}
		})
	}
}

// Example names a name the zone answers, for `dns serve`'s suggestion.
func TestZoneExample(t *testing.T) {
	tests := []struct {
		name, zone, want string
		qtype            uint16
	}{
		{"the first name with an A record", "$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nzz IN A 192.0.2.9\nwww IN A 198.51.100.80\n", "www.example.test.", dns.TypeA},
		{"AAAA when there is no A", "$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nv6 IN AAAA 2001:db8::1\n", "v6.example.test.", dns.TypeAAAA},
		{"the origin's SOA otherwise", "$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\n", "example.test.", dns.TypeSOA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := ParseZone(bytes.NewReader([]byte(tt.zone)), "", "test")
			if err != nil {
				t.Fatal(err)
			}
			if name, qtype := z.Example(); name != tt.want || qtype != tt.qtype {
				t.Errorf("Example() = %s %s, want %s %s", name, dns.TypeToString[qtype], tt.want, dns.TypeToString[tt.qtype])
			}
		})
	}
	if name, qtype := BuiltinZone().Example(); name != "example.lab." || qtype != dns.TypeA {
		t.Errorf("built-in Example() = %s %d, want example.lab. A", name, qtype)
	}
}

// Port 0 gives a free UDP port that may already be taken for TCP: the
// server picks again rather than failing (seen in CI: "bind: address
// already in use"), and a port asked for is not silently changed.
func TestServerPicksAPortFreeForBothUDPAndTCP(t *testing.T) {
	inUse := func(collisions int) func(string, *net.TCPAddr) (*net.TCPListener, error) {
		return func(network string, a *net.TCPAddr) (*net.TCPListener, error) {
			if collisions > 0 {
				collisions--
				return nil, &net.OpError{Op: "listen", Net: network, Addr: a, Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
			}
			return net.ListenTCP(network, a)
		}
	}
	for _, tc := range []struct {
		name       string
		addr       string
		collisions int
		wantErr    bool
	}{
		{"port 0 retries past three collisions", "127.0.0.1:0", 3, false},
		{"port 0 gives up after listenAttempts", "127.0.0.1:0", listenAttempts, true},
		{"a port asked for is tried once", "127.0.0.1:" + freeUDPPort(t), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listenTCP = inUse(tc.collisions)
			t.Cleanup(func() { listenTCP = net.ListenTCP })
			s, err := StartServer(ServerConfig{Addr: tc.addr, TCP: true})
			if tc.wantErr {
				if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
					s.Close()
					t.Fatalf("StartServer = %v, want EADDRINUSE", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartServer: %v", err)
			}
			defer s.Close()
			q := new(dns.Msg)
			q.SetQuestion("example.lab.", dns.TypeA)
			c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
			if _, _, err := c.Exchange(q, s.Addr().String()); err != nil {
				t.Fatalf("tcp query: %v", err)
			}
		})
	}
}

// freeUDPPort returns a UDP port the kernel just had free.
func freeUDPPort(t *testing.T) string {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port)
}
