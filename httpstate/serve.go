package httpstate

import (
	"context"
	"io"
	"net/http"
	"time"
)

// ServeSpec is what ServeMode serves: a mode, an address and, for the
// store-backed mode, a store URL (ParseStoreURL). It is plain data (JSON),
// so a program can hand it to a server in another process.
type ServeSpec struct {
	Mode  Mode   `json:"mode"`
	Addr  string `json:"addr"`
	Store string `json:"store,omitempty"`
	// CleanupInterval, when set, sweeps expired sessions out of a stateful
	// server's memory: for a long-lived server (statelab http serve), not
	// for servers that are killed or closed anyway.
	CleanupInterval time.Duration `json:"cleanup_interval,omitempty"`
	// MaxSessions caps the sessions a stateful or store-backed server
	// keeps (Config.MaxSessions); 0 for no cap.
	MaxSessions int `json:"max_sessions,omitempty"`
	// AccessLog, when set, gets one line per request (AccessLog).
	AccessLog io.Writer `json:"-"`
	// TokenSecret (hex), TokenLifetime and TokenDenylist configure the
	// token mode (TokenConfig); an empty secret is a random one, good for
	// this process only.
	TokenSecret   string        `json:"token_secret,omitempty"`
	TokenLifetime time.Duration `json:"token_lifetime,omitempty"`
	TokenDenylist bool          `json:"token_denylist,omitempty"`
}

// LongLived is the spec of a server that runs until stopped by hand
// (statelab http serve): expired sessions are swept every minute.
func LongLived(mode Mode, addr, store string) ServeSpec {
	return ServeSpec{Mode: mode, Addr: addr, Store: store, CleanupInterval: time.Minute}
}

// ServeMode opens the spec's store, builds the server and listens. cleanup
// stops the server and releases the store.
func ServeMode(ctx context.Context, spec ServeSpec) (*Running, func(), error) {
	if spec.Mode == Token {
		return serveToken(spec)
	}
	cfg := Config{Mode: spec.Mode, CleanupInterval: spec.CleanupInterval, MaxSessions: spec.MaxSessions}
	closeStore := func() error { return nil }
	if spec.Store != "" && spec.Mode != Stateless {
		u, err := ParseStoreURL(spec.Store)
		if err != nil {
			return nil, nil, err
		}
		st, c, err := OpenStore(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		cfg.Store, closeStore = st, c
	}
	srv, err := New(cfg)
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	var h http.Handler = srv
	if spec.AccessLog != nil {
		h = AccessLog(srv, spec.AccessLog)
	}
	run, err := Listen(spec.Addr, h)
	if err != nil {
		srv.Close()
		closeStore()
		return nil, nil, err
	}
	return run, func() { run.Close(); srv.Close(); closeStore() }, nil
}
