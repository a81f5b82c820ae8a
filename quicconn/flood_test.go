package quicconn

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// A flood of Initials from spoofed addresses, each a complete ClientHello
// under a connection ID of its own, costs the server what a real
// client's would until it asks for a Retry: past HandshakeRate it keeps no
// state for an address it has not validated, the handshakes in progress
// stay under MaxHandshakes, the tracer forgets every connection that ended,
// and a real client still connects.
func TestQUICServerHoldsInitialFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 20,000 Initials")
	}
	const (
		flood         = 20000
		sources       = 200
		maxHandshakes = 300
		heapLimit     = 200 << 20
	)
	tr := &Tracer{TuplesOnly: true, Forget: true}
	var (
		logMu sync.Mutex
		logs  []string
	)
	logf := func(f string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		logs = append(logs, fmt.Sprintf(f, a...))
	}
	// Each handshake the gate admits is a full TLS handshake, milliseconds
	// of the race detector's CPU: at 100 a second the admitted ones ate the
	// share a loaded machine gives the server, which then read the flood
	// below the rate (no Retry at all) and answered no real client. At 20 a
	// second the server keeps the CPU to read the flood and answer Retry.
	const rate = 20
	born := time.Now()
	srv, err := NewServer(ServerConfig{Tracer: tr, Logf: logf, HandshakeRate: rate, MaxHandshakes: maxHandshakes, HandshakeTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	initial := clientInitial(t)

	// Send from many loopback addresses and ports, as a spoofer would.
	conns := make([]*net.UDPConn, 0, sources)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range sources {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i / 250), byte(1 + i%250)}), 0)))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	to := net.UDPAddrFromAddrPort(srv.Addr)
	start := time.Now()
	var peak uint64
	var ms runtime.MemStats
	for i := range flood {
		if _, err := conns[i%sources].WriteToUDP(initial.under(t), to); err != nil {
			t.Fatalf("Initial %d: %v", i, err)
		}
		if i%1000 == 999 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			if st := srv.Stats(); st.Handshaking > maxHandshakes {
				t.Fatalf("after %d Initials: %d handshakes in progress, cap %d", i+1, st.Handshaking, maxHandshakes)
			}
		}
	}
	st := srv.Stats()
	lived := time.Since(born)
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	rss := vmRSS(t)
	t.Logf("%d Initials in %v: %+v, heap in use at most %d MiB, RSS %d MiB, %d traces", flood, time.Since(start).Round(time.Millisecond), st, peak>>20, rss>>20, len(tr.Conns()))
	if raceEnabled {
		rss = 0 // the race detector's shadow memory is resident too
	}
	if peak > heapLimit || rss > heapLimit {
		t.Errorf("heap in use reached %d MiB, RSS %d MiB, limit %d MiB", peak>>20, rss>>20, heapLimit>>20)
	}
	// What the server saw is judged, not what was sent: on a busy machine
	// it reads (and so sees the flood) at whatever pace it is scheduled,
	// and a stretch of gateQuiet under the rate is, rightly, the end of one
	// flood and the next its return. Past the rate it keeps no state: the
	// token bucket (a burst of rate, rate a second since the server
	// started) bounds the connections it created, however many Initials
	// reached it; and it logs the flood's start and end, never a line an
	// Initial.
	if st.Retried == 0 {
		t.Errorf("no Retry packet for %d Initials: the flood did not reach the server's limit (%+v)", flood, st)
	}
	if bound := int64(rate * (1 + lived.Seconds())); st.Created > bound {
		t.Errorf("%d connections created in %v, more than the %d a rate of %d a second allows (%+v)", st.Created, lived.Round(time.Millisecond), bound, rate, st)
	}
	logMu.Lock()
	if err := floodLogged(logs, time.Since(born)); err != nil {
		t.Error(err)
	}
	logMu.Unlock()

	// Every handshake the flood started ends (HandshakeTimeout), and with
	// it the connection's trace.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, c := range tr.Conns() {
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("a spoofed handshake's trace is still open: %+v, %d traces", srv.Stats(), len(tr.Conns()))
		}
	}
	if n, st := len(tr.Conns()), srv.Stats(); n > st.Handshaking+st.Open {
		t.Errorf("the tracer holds %d traces for %d live connections (%+v)", n, st.Handshaking+st.Open, st)
	}

	// A real client connects and downloads.
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	if err != nil {
		t.Fatalf("a real client after the flood: %v (%+v)", err, srv.Stats())
	}
	defer cl.Close()
	if n, sum, err := cl.Download(ctx, 10000, nil); err != nil || n != 10000 || sum != PatternSum(10000) {
		t.Fatalf("download after the flood: %d bytes, %v", n, err)
	}
}

// The cap on handshakes in progress holds even below the rate: past
// MaxHandshakes an Initial gets a Retry, and a client that validated its
// address is refused until a slot comes back, when a handshake ends.
func TestQUICServerCapsHandshakesInProgress(t *testing.T) {
	const maxHandshakes = 20
	tr := &Tracer{TuplesOnly: true, Forget: true}
	srv, err := NewServer(ServerConfig{Tracer: tr, HandshakeRate: 1_000_000, MaxHandshakes: maxHandshakes, HandshakeTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	initial := clientInitial(t)
	// One Initial at a time, each from a port of its own and answered
	// before the next, so none is lost to a full socket buffer and the
	// first answer on the port is the server's reply to it.
	buf := make([]byte, 2048)
	for i := range 2 * maxHandshakes {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteToUDP(initial.under(t), net.UDPAddrFromAddrPort(srv.Addr)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := c.ReadFromUDP(buf); err != nil {
			t.Fatalf("no answer to Initial %d: %v (%+v)", i, err, srv.Stats())
		}
		if retry := buf[0]&0xf0 == 0xf0; retry != (i >= maxHandshakes) {
			t.Fatalf("Initial %d answered with a Retry: %t; want one only past %d in progress (%+v)", i, retry, maxHandshakes, srv.Stats())
		}
	}
	if st := srv.Stats(); st.Handshaking != maxHandshakes || st.Retried != maxHandshakes {
		t.Errorf("%+v: want %d in progress and %d Retry packets", st, maxHandshakes, maxHandshakes)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err = Dial(short, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	cancelShort()
	if err == nil || srv.Stats().Refused == 0 {
		t.Fatalf("a client while %d handshakes are in progress: %v, %+v; want refused", maxHandshakes, err, srv.Stats())
	}
	for _, c := range tr.Conns() { // the spoofed handshakes time out
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("handshakes still in progress: %+v", srv.Stats())
		}
	}
	cl, err := Dial(ctx, ClientConfig{Server: srv.Addr, Trust: srv.Cert})
	if err != nil {
		t.Fatalf("a client once the handshakes ended: %v (%+v)", err, srv.Stats())
	}
	cl.Close()
}

// floodLogged checks the gate's log of a flood over lived: it says Retry
// is on first, then alternates between its end and its return (each end a
// quiet stretch of gateQuiet), so at most 1 + 2 lines a gateQuiet.
func floodLogged(logs []string, lived time.Duration) error {
	if len(logs) == 0 {
		return fmt.Errorf("the flood logged nothing, want a line that says Retry is on")
	}
	if most := 1 + 2*int(lived/gateQuiet); len(logs) > most {
		return fmt.Errorf("the flood logged %d lines in %v, more than %d (one line a flood's start or end): %q", len(logs), lived.Round(time.Millisecond), most, logs)
	}
	for i, l := range logs {
		want := "Retry first"
		if i%2 == 1 {
			want = "back under the limits"
		}
		if !strings.Contains(l, want) {
			return fmt.Errorf("line %d of the flood's log is %q, want one that says %q (the gate's on and off in turn): %q", i, l, want, logs)
		}
	}
	return nil
}

// vmRSS is the process's resident set size (VmRSS of /proc/self/status),
// in bytes; 0 where there is no /proc.
func vmRSS(t *testing.T) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	return 0
}

// spoofable is a client's first Initial, decrypted, to send again under
// other connection IDs: each copy is a new connection to the server.
type spoofable struct {
	datagram  []byte // as sent, header protection removed
	dcidAt    int    // offset of the destination connection ID
	dcidLen   int
	pnAt      int // offset of the packet number
	pnLen     int
	end       int // end of the Initial packet in the datagram
	pn        uint64
	plaintext []byte
}

// clientInitial has quic-go dial a UDP socket of the test's and takes the
// first datagram: an Initial with a whole ClientHello (X25519 only, so it
// fits one packet).
func clientInitial(t *testing.T) *spoofable {
	t.Helper()
	catcher, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer catcher.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPN}, CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS13}
		conn, err := quic.DialAddr(ctx, catcher.LocalAddr().String(), tlsConf, &quic.Config{})
		if err == nil {
			conn.CloseWithError(0, "")
		}
	}()
	defer func() { cancel(); <-done }()
	buf := make([]byte, 2048)
	catcher.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := catcher.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openInitial(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openInitial removes an Initial's protection (RFC 9001 §5).
func openInitial(d []byte) (*spoofable, error) {
	d = append([]byte(nil), d...)
	if len(d) < 1200 || d[0]&0xf0 != 0xc0 || binary.BigEndian.Uint32(d[1:5]) != 1 {
		return nil, fmt.Errorf("not a QUIC v1 Initial of a full-size datagram: % x", d[:min(len(d), 8)])
	}
	s := &spoofable{dcidAt: 6, dcidLen: int(d[5])}
	i := s.dcidAt + s.dcidLen
	i += 1 + int(d[i]) // source connection ID
	tokLen, k := varint(d[i:])
	i += k + int(tokLen)
	length, k := varint(d[i:])
	i += k
	s.pnAt, s.end = i, i+int(length)
	key, iv, hp := initialKeys(d[s.dcidAt : s.dcidAt+s.dcidLen])
	mask := hpMask(hp, d[s.pnAt+4:s.pnAt+20])
	d[0] ^= mask[0] & 0x0f
	s.pnLen = int(d[0]&3) + 1
	for j := range s.pnLen {
		d[s.pnAt+j] ^= mask[1+j]
		s.pn = s.pn<<8 | uint64(d[s.pnAt+j])
	}
	hdr := s.pnAt + s.pnLen
	pt, err := key.Open(nil, nonce(iv, s.pn), d[hdr:s.end], d[:hdr])
	if err != nil {
		return nil, fmt.Errorf("opening the Initial: %w", err)
	}
	s.datagram, s.plaintext = d, pt
	return s, nil
}

// under returns the Initial protected under a new random destination
// connection ID.
func (s *spoofable) under(t *testing.T) []byte {
	d := append([]byte(nil), s.datagram...)
	dcid := d[s.dcidAt : s.dcidAt+s.dcidLen]
	rand.Read(dcid)
	key, iv, hp := initialKeys(dcid)
	hdr := s.pnAt + s.pnLen
	sealed := key.Seal(d[:hdr], nonce(iv, s.pn), s.plaintext, d[:hdr])
	if len(sealed) != s.end {
		t.Fatalf("sealed Initial of %d bytes, want %d", len(sealed), s.end)
	}
	mask := hpMask(hp, d[s.pnAt+4:s.pnAt+20])
	d[0] ^= mask[0] & 0x0f
	for j := range s.pnLen {
		d[s.pnAt+j] ^= mask[1+j]
	}
	return d
}

// initialKeys are the client's Initial AEAD, IV and header protection
// cipher for a destination connection ID (RFC 9001 §5.2).
func initialKeys(dcid []byte) (cipher.AEAD, []byte, cipher.Block) {
	salt := []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}
	secret, _ := hkdf.Extract(sha256.New, dcid, salt)
	client := expandLabel(secret, "client in", 32)
	block, _ := aes.NewCipher(expandLabel(client, "quic key", 16))
	aead, _ := cipher.NewGCM(block)
	hp, _ := aes.NewCipher(expandLabel(client, "quic hp", 16))
	return aead, expandLabel(client, "quic iv", 12), hp
}

func expandLabel(secret []byte, label string, n int) []byte {
	l := "tls13 " + label
	info := append(binary.BigEndian.AppendUint16(nil, uint16(n)), byte(len(l)))
	info = append(append(info, l...), 0)
	out, _ := hkdf.Expand(sha256.New, secret, string(info), n)
	return out
}

func hpMask(hp cipher.Block, sample []byte) []byte {
	m := make([]byte, 16)
	hp.Encrypt(m, sample)
	return m
}

func nonce(iv []byte, pn uint64) []byte {
	n := append([]byte(nil), iv...)
	for i := range 8 {
		n[len(n)-1-i] ^= byte(pn >> (8 * i))
	}
	return n
}

// The flood's log is judged by the gate's rule: Retry on first, then off
// and on in turn, no more lines than quiet stretches allow.
func TestFloodLogged(t *testing.T) {
	on := "more than 100 new handshakes a second (or 300 in progress): clients must validate their address with a Retry first"
	off := "no Retry needed for 5s: handshakes back under the limits (218 Retry packets sent so far)"
	tests := []struct {
		name  string
		logs  []string
		lived time.Duration
		ok    bool
	}{
		{"one flood: one line", []string{on}, 20 * time.Second, true},
		{"a slow reader's flood ends and returns", []string{on, off, on}, 44 * time.Second, true},
		{"nothing logged", nil, 20 * time.Second, false},
		{"off before on", []string{off, on}, 20 * time.Second, false},
		{"on twice in a row", []string{on, on}, 20 * time.Second, false},
		{"more lines than quiet stretches allow", []string{on, off, on, off, on}, 9 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := floodLogged(tt.logs, tt.lived); (err == nil) != tt.ok {
				t.Errorf("floodLogged(%d lines, %v) = %v, want ok %v", len(tt.logs), tt.lived, err, tt.ok)
			}
		})
	}
}
