package httpstate

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The signed token: a session kept by the client. The server signs the
// session's state (last result, history, counts) with HMAC-SHA256 into a
// JWT (RFC 7519, github.com/golang-jwt/jwt/v5), hands it to the client, and
// checks it on its way back without looking anything up: any backend that
// holds the secret can serve any request, and none keeps anything per
// client.

// Token errors; each is refused with 401 and its own code (tokenRefusal).
var (
	// ErrTokenMalformed: not a JWT of this server's form (three base64url
	// parts, one spelling per token).
	ErrTokenMalformed = errors.New("httpstate: token malformed")
	// ErrTokenSignature: the signature does not match the token's content
	// under this server's secret: the token was changed after it was
	// signed, or signed with another key.
	ErrTokenSignature = errors.New("httpstate: token signature invalid")
	// ErrTokenExpired: the token's exp has passed.
	ErrTokenExpired = errors.New("httpstate: token expired")
	// ErrTokenTooLarge: the token is over MaxTokenBytes.
	ErrTokenTooLarge = errors.New("httpstate: token too large")
	// ErrTokenTransplanted: a valid token of another session, sent with
	// this client's session id.
	ErrTokenTransplanted = errors.New("httpstate: token of another session")
	// ErrTokenRevoked: the token's session logged out and the server keeps
	// a denylist.
	ErrTokenRevoked = errors.New("httpstate: token revoked")
	// ErrTokenSecret: a --token-secret that is not hex or too short.
	ErrTokenSecret = errors.New("httpstate: token secret")
)

// MaxTokenBytes caps the token the server accepts and issues: 4096 bytes,
// what a browser keeps of one cookie. A longer token is refused
// (ErrTokenTooLarge) before it is decoded; the server keeps its own
// tokens under it by dropping the oldest history entries.
const MaxTokenBytes = 4096

// MinTokenSecret is the shortest secret accepted: 32 bytes, HMAC-SHA256's
// block of security.
const MinTokenSecret = 32

// tokenIssuer is the iss claim of every token, checked on the way back.
const tokenIssuer = "statelab-calculator"

// tokenAlg is the one signing method accepted: a token naming another
// (none, RS256 with the secret as a public key) is refused.
const tokenAlg = "HS256"

// tokenClaims is the token's payload: the registered claims (jti is the
// session id, iat and exp the token's life) and the session's state.
type tokenClaims struct {
	jwt.RegisteredClaims
	State SessionState `json:"st"`
}

// TokenSession is what a verified token carries.
type TokenSession struct {
	SID     string // the session id, jti
	State   SessionState
	Issued  time.Time
	Expires time.Time
}

// TokenCodec signs and verifies session tokens under one secret.
type TokenCodec struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
	parser   *jwt.Parser
}

// NewTokenCodec returns a codec for secret (at least MinTokenSecret bytes)
// whose tokens live lifetime (a token is reissued, with a fresh exp, by
// every request that changes the state). now is the clock, nil for
// time.Now.
func NewTokenCodec(secret []byte, lifetime time.Duration, now func() time.Time) (*TokenCodec, error) {
	if len(secret) < MinTokenSecret {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrTokenSecret, len(secret), MinTokenSecret)
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("httpstate: token lifetime %s: want more than 0", lifetime)
	}
	if now == nil {
		now = time.Now
	}
	c := &TokenCodec{key: append([]byte(nil), secret...), lifetime: lifetime, now: now}
	c.parser = jwt.NewParser(jwt.WithValidMethods([]string{tokenAlg}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithIssuer(tokenIssuer), jwt.WithStrictDecoding(), jwt.WithTimeFunc(now))
	return c, nil
}

// Lifetime is how long a token the codec issues is good for.
func (c *TokenCodec) Lifetime() time.Duration { return c.lifetime }

// NewSID returns a new session id: 16 random bytes, base64url.
func NewSID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Issue signs st as session sid's token, good for the codec's lifetime.
// When the token would be over MaxTokenBytes, the oldest history entries
// are left out until it fits.
func (c *TokenCodec) Issue(sid string, st SessionState) (string, error) {
	now := c.now().Truncate(time.Second)
	for {
		claims := tokenClaims{RegisteredClaims: jwt.RegisteredClaims{Issuer: tokenIssuer, ID: sid,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(c.lifetime))}, State: st}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(c.key)
		if err != nil {
			return "", fmt.Errorf("httpstate: signing a token: %w", err)
		}
		if len(tok) <= MaxTokenBytes {
			return tok, nil
		}
		if len(st.History) == 0 {
			return "", fmt.Errorf("%w: %d bytes with no history", ErrTokenTooLarge, len(tok))
		}
		st.History = st.History[1:]
	}
}

// Verify checks a token and returns what it carries: its size, form,
// signing method, signature, issuer, issue time and expiry. The error wraps
// one of the token errors (ErrTokenTooLarge, ErrTokenMalformed,
// ErrTokenSignature, ErrTokenExpired) with the library's reason.
func (c *TokenCodec) Verify(tok string) (TokenSession, error) {
	if len(tok) > MaxTokenBytes {
		return TokenSession{}, fmt.Errorf("%w: %d bytes, over the %d this server accepts", ErrTokenTooLarge, len(tok), MaxTokenBytes)
	}
	// One spelling per token: base64's decoder skips CR and LF, so a token
	// with one inserted would verify as the token without it.
	for i := 0; i < len(tok); i++ {
		if !tokenChar(tok[i]) {
			return TokenSession{}, fmt.Errorf("%w: byte %d (%q) is not base64url or '.'", ErrTokenMalformed, i, tok[i])
		}
	}
	var claims tokenClaims
	_, err := c.parser.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return c.key, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return TokenSession{}, fmt.Errorf("%w: %v", ErrTokenExpired, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return TokenSession{}, fmt.Errorf("%w: %v", ErrTokenSignature, err)
	default:
		return TokenSession{}, fmt.Errorf("%w: %v", ErrTokenMalformed, err)
	}
	if claims.ID == "" || claims.IssuedAt == nil {
		return TokenSession{}, fmt.Errorf("%w: no session id or issue time", ErrTokenMalformed)
	}
	return TokenSession{SID: claims.ID, State: claims.State, Issued: claims.IssuedAt.Time, Expires: claims.ExpiresAt.Time}, nil
}

// tokenChar reports whether b may appear in a token: base64url and '.'.
func tokenChar(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

// ParseTokenSecret reads a hex secret (--token-secret) of at least
// MinTokenSecret bytes.
func ParseTokenSecret(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex: %v", ErrTokenSecret, err)
	}
	if len(b) < MinTokenSecret {
		return nil, fmt.Errorf("%w: %d bytes (%d hex digits), want at least %d bytes (%d hex digits)", ErrTokenSecret, len(b), len(s), MinTokenSecret, 2*MinTokenSecret)
	}
	return b, nil
}

// NewTokenSecret returns a random secret of MinTokenSecret bytes, as hex.
func NewTokenSecret() string {
	b := make([]byte, MinTokenSecret)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
