package lb

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/quic-go/quic-go"
)

// Errors of the connection ID codec.
var (
	// ErrConfig is an invalid CID configuration.
	ErrConfig = errors.New("lb: invalid CID config")
	// ErrCID is a connection ID that does not decode under a config.
	ErrCID = errors.New("lb: connection ID does not decode")
)

// Config is a QUIC-LB plaintext CID configuration
// (draft-ietf-quic-load-balancers §5.1, §5.2): a connection ID is a first
// octet — three config rotation bits, then five bits of length
// self-description, the CID's length minus one — followed by the server
// ID and a nonce.
type Config struct {
	// Rotation is the config rotation codepoint, 0 to 6 (7 marks an
	// unroutable CID).
	Rotation uint8
	// ServerIDLen and NonceLen are in bytes: a server ID of at least 1,
	// a nonce of at least 4, at most 19 together.
	ServerIDLen, NonceLen int
}

// Len is the length of the connection IDs the config makes.
func (c Config) Len() int { return 1 + c.ServerIDLen + c.NonceLen }

// Validate reports what is wrong with the config.
func (c Config) Validate() error {
	switch {
	case c.Rotation > 6:
		return fmt.Errorf("%w: config rotation %d (0 to 6; 7 is unroutable)", ErrConfig, c.Rotation)
	case c.ServerIDLen < 1:
		return fmt.Errorf("%w: server ID of %d bytes (at least 1)", ErrConfig, c.ServerIDLen)
	case c.NonceLen < 4:
		return fmt.Errorf("%w: nonce of %d bytes (at least 4)", ErrConfig, c.NonceLen)
	case c.Len() > 20:
		return fmt.Errorf("%w: connection IDs of %d bytes (at most 20)", ErrConfig, c.Len())
	}
	return nil
}

// firstOctet is the CID's first octet under the config.
func (c Config) firstOctet() byte { return c.Rotation<<5 | byte(c.Len()-1) }

// Encode makes the connection ID of serverID with nonce.
func (c Config) Encode(serverID, nonce []byte) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(serverID) != c.ServerIDLen || len(nonce) != c.NonceLen {
		return nil, fmt.Errorf("%w: server ID of %d bytes and nonce of %d for a config of %d and %d", ErrConfig,
			len(serverID), len(nonce), c.ServerIDLen, c.NonceLen)
	}
	b := make([]byte, 0, c.Len())
	b = append(b, c.firstOctet())
	b = append(b, serverID...)
	return append(b, nonce...), nil
}

// Decode returns the server ID in cid, or ErrCID when cid is not one of
// the config's: its length, its config rotation bits or its length
// self-description differ.
func (c Config) Decode(cid []byte) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if len(cid) != c.Len() {
		return nil, fmt.Errorf("%w: %d bytes, the config's are %d", ErrCID, len(cid), c.Len())
	}
	if rot := cid[0] >> 5; rot != c.Rotation {
		return nil, fmt.Errorf("%w: config rotation %d, want %d", ErrCID, rot, c.Rotation)
	}
	if l := int(cid[0]&0x1f) + 1; l != c.Len() {
		return nil, fmt.Errorf("%w: length self-description %d, want %d", ErrCID, l, c.Len())
	}
	return cid[1 : 1+c.ServerIDLen], nil
}

// Generator issues a server's connection IDs under a config: quic-go's
// ConnectionIDGenerator (quic.Transport.ConnectionIDGenerator), the nonce
// drawn from R.
type Generator struct {
	Config   Config
	ServerID []byte
	R        io.Reader

	mu sync.Mutex
}

// GenerateConnectionID implements quic.ConnectionIDGenerator.
func (g *Generator) GenerateConnectionID() (quic.ConnectionID, error) {
	nonce := make([]byte, g.Config.NonceLen)
	g.mu.Lock()
	_, err := io.ReadFull(g.R, nonce)
	g.mu.Unlock()
	if err != nil {
		return quic.ConnectionID{}, fmt.Errorf("lb: nonce: %w", err)
	}
	b, err := g.Config.Encode(g.ServerID, nonce)
	if err != nil {
		return quic.ConnectionID{}, err
	}
	return quic.ConnectionIDFromBytes(b), nil
}

// ConnectionIDLen implements quic.ConnectionIDGenerator.
func (g *Generator) ConnectionIDLen() int { return g.Config.Len() }
