package quicconn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
)

// Go's crypto/tls writes no CLIENT_EARLY_TRAFFIC_SECRET to its key log,
// so Wireshark cannot read 0-RTT packets from it. EarlySecretLog
// computes that line from what the client had: the resumption secret
// (PSK) of the session it offered, and its ClientHello, which the
// client's Initial packets carry under keys anyone can derive from their
// destination connection ID (RFC 9001 §5.2).

// ErrEarlySecret is returned when the 0-RTT secret cannot be derived.
var ErrEarlySecret = errors.New("quicconn: cannot derive the 0-RTT secret")

// initialSaltV1 is QUIC v1's Initial salt (RFC 9001 §5.2).
var initialSaltV1 = []byte{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a}

// EarlySecretLog is the NSS key log line CLIENT_EARLY_TRAFFIC_SECRET for
// the resumption whose first flight is datagrams (the client's first
// datagrams, Initials and 0-RTT, in order) and whose offered session is
// st. The ClientHello is reassembled from the Initials' CRYPTO frames.
func EarlySecretLog(datagrams [][]byte, st *tls.SessionState) (string, error) {
	if st == nil {
		return "", fmt.Errorf("%w: no session was offered", ErrEarlySecret)
	}
	raw, err := st.Bytes()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	suite, psk, err := sessionSecret(raw)
	if err != nil {
		return "", err
	}
	h, _, err := suiteHash(suite)
	if err != nil {
		return "", err
	}
	ch, err := ClientHello(datagrams)
	if err != nil {
		return "", err
	}
	early, err := hkdf.Extract(h, psk, nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	th := h()
	th.Write(ch)
	secret, err := hkdfExpandLabel(h, early, "c e traffic", th.Sum(nil), th.Size())
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("CLIENT_EARLY_TRAFFIC_SECRET %x %x\n", ch[6:38], secret), nil
}

// sessionSecret reads the cipher suite and the secret (for a TLS 1.3
// client, the PSK) from a tls.SessionState's Bytes: version (2), type (1),
// cipher suite (2), created at (8), secret<1..255>.
func sessionSecret(b []byte) (suite uint16, secret []byte, err error) {
	if len(b) < 14 || int(b[13]) == 0 || len(b) < 14+int(b[13]) {
		return 0, nil, fmt.Errorf("%w: session state of %d bytes too short", ErrEarlySecret, len(b))
	}
	if v := binary.BigEndian.Uint16(b); v != tls.VersionTLS13 {
		return 0, nil, fmt.Errorf("%w: session of TLS version %#x, not 1.3", ErrEarlySecret, v)
	}
	return binary.BigEndian.Uint16(b[3:5]), b[14 : 14+int(b[13])], nil
}

// suiteHash is a TLS 1.3 suite's hash and AEAD key length (AES-GCM
// suites only: their packet protection is what this file implements).
func suiteHash(suite uint16) (func() hash.Hash, int, error) {
	switch suite {
	case tls.TLS_AES_128_GCM_SHA256:
		return sha256.New, 16, nil
	case tls.TLS_AES_256_GCM_SHA384:
		return sha512.New384, 32, nil
	}
	return nil, 0, fmt.Errorf("%w: cipher suite %s not supported", ErrEarlySecret, tls.CipherSuiteName(suite))
}

// hkdfExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1).
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, context []byte, n int) ([]byte, error) {
	info := binary.BigEndian.AppendUint16(nil, uint16(n))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "+label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	b, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	return b, nil
}

// packetKeys are one direction's QUIC packet protection keys.
type packetKeys struct {
	aead cipher.AEAD
	iv   []byte
	hp   cipher.Block
}

// keysFrom derives QUIC packet protection from a traffic secret (RFC
// 9001 §5.1).
func keysFrom(h func() hash.Hash, secret []byte, keyLen int) (*packetKeys, error) {
	key, err := hkdfExpandLabel(h, secret, "quic key", nil, keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := hkdfExpandLabel(h, secret, "quic iv", nil, 12)
	if err != nil {
		return nil, err
	}
	hpKey, err := hkdfExpandLabel(h, secret, "quic hp", nil, keyLen)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	hp, err := aes.NewCipher(hpKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	return &packetKeys{aead: aead, iv: iv, hp: hp}, nil
}

// clientInitialKeys are the keys of the client's Initial packets to dcid.
func clientInitialKeys(dcid []byte) (*packetKeys, error) {
	k, err := newInitialKeys(dcid, "client in")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEarlySecret, err)
	}
	return k, nil
}

// longPacket is one long header packet of a datagram: its type bits, its
// DCID, and where its packet number starts and the packet ends.
type longPacket struct {
	typ               byte // 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry
	dcid              []byte
	start, pnOff, end int
}

// splitLong walks the coalesced long header packets of a datagram; a
// short header packet ends it.
func splitLong(b []byte) ([]longPacket, error) {
	var ps []longPacket
	off := 0
	for off < len(b) && b[off]&0x80 != 0 {
		p := b[off:]
		if len(p) < 7 || binary.BigEndian.Uint32(p[1:5]) != 1 {
			return ps, fmt.Errorf("%w: not a QUIC v1 long header at byte %d", ErrEarlySecret, off)
		}
		lp := longPacket{typ: (p[0] >> 4) & 3, start: off}
		i := 5
		dl := int(p[i])
		i++
		if dl > 20 || i+dl >= len(p) {
			return ps, fmt.Errorf("%w: destination connection ID of %d bytes", ErrEarlySecret, dl)
		}
		lp.dcid = p[i : i+dl]
		i += dl
		sl := int(p[i])
		i += 1 + sl
		if sl > 20 || i > len(p) {
			return ps, fmt.Errorf("%w: source connection ID of %d bytes", ErrEarlySecret, sl)
		}
		if lp.typ == 3 {
			return ps, fmt.Errorf("%w: a Retry packet", ErrEarlySecret)
		}
		if lp.typ == 0 {
			tl, n := varint(p[i:])
			if n == 0 || uint64(len(p)-i-n) < tl {
				return ps, fmt.Errorf("%w: Initial token cut short", ErrEarlySecret)
			}
			i += n + int(tl)
		}
		pl, n := varint(p[i:])
		if n == 0 || uint64(len(p)-i-n) < pl || pl < 20 {
			return ps, fmt.Errorf("%w: packet length %d beyond the datagram", ErrEarlySecret, pl)
		}
		i += n
		lp.pnOff, lp.end = off+i, off+i+int(pl)
		ps = append(ps, lp)
		off = lp.end
	}
	return ps, nil
}

// open removes header protection and decrypts the long header packet p
// of datagram b, returning its packet number and payload.
func (k *packetKeys) open(b []byte, p longPacket) (uint64, []byte, error) {
	if p.pnOff+4+16 > p.end {
		return 0, nil, fmt.Errorf("%w: packet too short to sample", ErrEarlySecret)
	}
	var mask [16]byte
	k.hp.Encrypt(mask[:], b[p.pnOff+4:p.pnOff+20])
	pkt := append([]byte(nil), b[:p.end]...)
	first := p.start
	pkt[first] ^= mask[0] & 0x0f
	pnLen := int(pkt[first]&3) + 1
	var pn uint64
	for i := 0; i < pnLen; i++ {
		pkt[p.pnOff+i] ^= mask[1+i]
		pn = pn<<8 | uint64(pkt[p.pnOff+i])
	}
	nonce := append([]byte(nil), k.iv...)
	for i := 0; i < 8; i++ {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	hdr := pkt[first : p.pnOff+pnLen]
	out, err := k.aead.Open(nil, nonce, pkt[p.pnOff+pnLen:p.end], hdr)
	if err != nil {
		return pn, nil, fmt.Errorf("%w: packet %d does not decrypt: %w", ErrEarlySecret, pn, err)
	}
	return pn, out, nil
}

// ClientHello reassembles the TLS ClientHello from the CRYPTO frames of
// the client's Initial packets in datagrams (its first flight).
func ClientHello(datagrams [][]byte) ([]byte, error) {
	var keys *packetKeys
	crypto := map[uint64][]byte{}
	for _, d := range datagrams {
		ps, err := splitLong(d)
		if err != nil && len(ps) == 0 {
			return nil, err
		}
		for _, p := range ps {
			if p.typ != 0 {
				continue
			}
			if keys == nil {
				if keys, err = clientInitialKeys(p.dcid); err != nil {
					return nil, err
				}
			}
			_, payload, err := keys.open(d, p)
			if err != nil {
				return nil, err
			}
			if err := cryptoFrames(payload, crypto); err != nil {
				return nil, err
			}
		}
	}
	var stream []byte
	for range len(crypto) {
		c, ok := crypto[uint64(len(stream))]
		if !ok {
			break
		}
		stream = append(stream, c...)
	}
	if len(stream) < 4 || stream[0] != 1 {
		return nil, fmt.Errorf("%w: no ClientHello in %d bytes of CRYPTO data", ErrEarlySecret, len(stream))
	}
	n := int(stream[1])<<16 | int(stream[2])<<8 | int(stream[3])
	if len(stream) < 4+n || n < 2+32 {
		return nil, fmt.Errorf("%w: ClientHello of %d bytes, %d in the Initials", ErrEarlySecret, n, len(stream)-4)
	}
	return stream[:4+n], nil
}

// cryptoFrames collects the CRYPTO frames of an Initial's payload by
// offset; PADDING, PING and ACK are skipped, anything else is an error.
func cryptoFrames(b []byte, out map[uint64][]byte) error {
	for len(b) > 0 {
		t := b[0]
		b = b[1:]
		switch t {
		case 0x00, 0x01: // PADDING, PING
		case 0x02, 0x03: // ACK
			nums := 4
			if t == 0x03 {
				nums += 3
			}
			var count uint64
			for i := 0; i < nums; i++ {
				v, n := varint(b)
				if n == 0 {
					return fmt.Errorf("%w: ACK frame cut short", ErrEarlySecret)
				}
				if i == 2 {
					count = v
				}
				b = b[n:]
			}
			for i := uint64(0); i < 2*count; i++ {
				_, n := varint(b)
				if n == 0 {
					return fmt.Errorf("%w: ACK ranges cut short", ErrEarlySecret)
				}
				b = b[n:]
			}
		case 0x06: // CRYPTO
			off, n := varint(b)
			if n == 0 {
				return fmt.Errorf("%w: CRYPTO frame cut short", ErrEarlySecret)
			}
			b = b[n:]
			l, n := varint(b)
			if n == 0 || uint64(len(b)-n) < l || off > 1<<20 {
				return fmt.Errorf("%w: CRYPTO frame cut short", ErrEarlySecret)
			}
			out[off] = append([]byte(nil), b[n:n+int(l)]...)
			b = b[n+int(l):]
		default:
			return fmt.Errorf("%w: frame type %#x in an Initial", ErrEarlySecret, t)
		}
	}
	return nil
}
