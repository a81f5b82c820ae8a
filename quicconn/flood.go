package quicconn

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"time"

	"github.com/quic-go/quic-go"
)

// SpoofedInitial is a client's first Initial, a full-size datagram with a
// whole ClientHello, opened so that it can be sealed again under any
// number of fresh destination connection IDs: each copy, sent from any
// address, starts a new connection at a server, which is what a flood of
// spoofed Initials costs it. The lab's tests of a server's defences (the
// library's and the quic serve process's) send them.
type SpoofedInitial struct {
	datagram  []byte // as sent, header protection removed
	dcidAt    int    // offset of the destination connection ID
	dcidLen   int
	pnAt      int // offset of the packet number
	pnLen     int
	end       int // end of the Initial packet in the datagram
	pn        uint32
	plaintext []byte
}

// CaptureInitial has quic-go dial a UDP socket of its own and keeps the
// first datagram it sends: an Initial with a whole ClientHello for alpn
// (X25519 only, so it fits one packet).
func CaptureInitial(ctx context.Context, alpn string) (*SpoofedInitial, error) {
	catcher, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer catcher.Close()
	dialCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}, CurvePreferences: []tls.CurveID{tls.X25519}, MinVersion: tls.VersionTLS13}
		if conn, err := quic.DialAddr(dialCtx, catcher.LocalAddr().String(), tlsConf, &quic.Config{}); err == nil {
			conn.CloseWithError(0, "")
		}
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	catcher.SetReadDeadline(deadline)
	buf := make([]byte, 2048)
	n, _, err := catcher.ReadFromUDP(buf)
	if err != nil {
		return nil, fmt.Errorf("quicconn: capturing a client's Initial: %w", err)
	}
	return OpenSpoofable(buf[:n])
}

// OpenSpoofable removes a client Initial datagram's protection (RFC 9001
// §5) so that it can be sealed again under other connection IDs.
func OpenSpoofable(d []byte) (*SpoofedInitial, error) {
	d = append([]byte(nil), d...)
	if len(d) < MinInitialSize || d[0]&0xf0 != 0xc0 || binary.BigEndian.Uint32(d[1:5]) != quicV1 {
		return nil, fmt.Errorf("%w: not the Initial of a full-size datagram: % x", ErrNotInitial, d[:min(len(d), 8)])
	}
	s := &SpoofedInitial{dcidAt: 6, dcidLen: int(d[5])}
	i := s.dcidAt + s.dcidLen
	if i >= len(d) {
		return nil, ErrNotInitial
	}
	i += 1 + int(d[i]) // source connection ID
	if i >= len(d) {
		return nil, ErrNotInitial
	}
	tokLen, k := varint(d[i:])
	i += k + int(tokLen)
	if k == 0 || i >= len(d) {
		return nil, ErrNotInitial
	}
	length, k := varint(d[i:])
	i += k
	s.pnAt, s.end = i, i+int(length)
	if k == 0 || s.end > len(d) {
		return nil, ErrNotInitial
	}
	keys, err := newInitialKeys(d[s.dcidAt:s.dcidAt+s.dcidLen], "client in")
	if err != nil {
		return nil, err
	}
	mask, ok := keys.mask(d, s.pnAt)
	if !ok {
		return nil, ErrNotInitial
	}
	d[0] ^= mask[0] & 0x0f
	s.pnLen = int(d[0]&3) + 1
	for j := range s.pnLen {
		d[s.pnAt+j] ^= mask[1+j]
		s.pn = s.pn<<8 | uint32(d[s.pnAt+j])
	}
	hdr := s.pnAt + s.pnLen
	if hdr > s.end {
		return nil, ErrNotInitial
	}
	pt, err := keys.aead.Open(nil, keys.nonce(s.pn), d[hdr:s.end], d[:hdr])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	s.datagram, s.plaintext = d, pt
	return s, nil
}

// Under returns the Initial datagram protected under a new random
// destination connection ID: to the server, a new client.
func (s *SpoofedInitial) Under() ([]byte, error) {
	d := append([]byte(nil), s.datagram...)
	dcid := d[s.dcidAt : s.dcidAt+s.dcidLen]
	rand.Read(dcid)
	keys, err := newInitialKeys(dcid, "client in")
	if err != nil {
		return nil, err
	}
	hdr := s.pnAt + s.pnLen
	if sealed := keys.aead.Seal(d[:hdr], keys.nonce(s.pn), s.plaintext, d[:hdr]); len(sealed) != s.end {
		return nil, fmt.Errorf("quicconn: resealed Initial of %d bytes, want %d", len(sealed), s.end)
	}
	mask, ok := keys.mask(d, s.pnAt)
	if !ok {
		return nil, ErrNotInitial
	}
	d[0] ^= mask[0] & 0x0f
	for j := range s.pnLen {
		d[s.pnAt+j] ^= mask[1+j]
	}
	return d, nil
}
