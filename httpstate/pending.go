package httpstate

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"time"

	"github.com/alexedwards/scs/v2"
)

// A form page served without a session carries a pending token: 8 random
// bytes, the time it was issued and an HMAC of both under a key of the
// process's, 43 characters like a session token. Serving the page stores
// nothing — an anonymous GET /form costs the server no memory — and the
// first POST /form that computes stores the session under that token
// (storePending). A pending token is good for IdleTimeout; a made-up or
// older one is refused like an expired session.

const pendingLen = 32 // bytes: 8 random, 8 issue time, 16 MAC

func (s *Server) pendingToken() string {
	b := make([]byte, pendingLen)
	_, _ = rand.Read(b[:8])
	binary.BigEndian.PutUint64(b[8:16], uint64(time.Now().UnixNano()))
	copy(b[16:], s.pendingMAC(b[:16]))
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) pendingMAC(b []byte) []byte {
	m := hmac.New(sha256.New, s.pendingKey)
	m.Write(b)
	return m.Sum(nil)[:16]
}

// validPending reports whether tok is a pending token this process issued
// within IdleTimeout.
func (s *Server) validPending(tok string) bool {
	if len(tok) != base64.RawURLEncoding.EncodedLen(pendingLen) || s.sessions == nil {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok) // one spelling per token
	if err != nil || len(b) != pendingLen || !hmac.Equal(b[16:], s.pendingMAC(b[:16])) {
		return false
	}
	age := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(b[8:16]))))
	return age >= -time.Minute && age < s.sessions.IdleTimeout
}

// storePending stores st as a new session under a pending token, as scs
// would have committed it (the same codec, deadline and expiry).
func (s *Server) storePending(ctx context.Context, token string, st SessionState) error {
	deadline := time.Now().Add(s.sessions.Lifetime)
	b, err := s.sessions.Codec.Encode(deadline, map[string]any{"state": st})
	if err != nil {
		return err
	}
	expiry := deadline
	if idle := time.Now().Add(s.sessions.IdleTimeout); s.sessions.IdleTimeout > 0 && idle.Before(expiry) {
		expiry = idle
	}
	if cs, ok := s.sessions.Store.(scs.CtxStore); ok {
		return cs.CommitCtx(ctx, token, b, expiry)
	}
	return s.sessions.Store.Commit(token, b, expiry)
}

// sessionCookie is the session cookie scs would set for token.
func (s *Server) sessionCookie(token string) *http.Cookie {
	c := s.sessions.Cookie
	return &http.Cookie{Name: c.Name, Value: token, Path: c.Path, Domain: c.Domain,
		Secure: c.Secure, HttpOnly: c.HttpOnly, SameSite: c.SameSite}
}
