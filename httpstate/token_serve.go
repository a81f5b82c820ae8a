package httpstate

import "net/http"

// serveToken is ServeMode for the token mode: no store, one secret.
func serveToken(spec ServeSpec) (*Running, func(), error) {
	secret := spec.TokenSecret
	if secret == "" {
		secret = NewTokenSecret()
	}
	key, err := ParseTokenSecret(secret)
	if err != nil {
		return nil, nil, err
	}
	cfg := TokenConfig{Secret: key, Lifetime: spec.TokenLifetime}
	if spec.TokenDenylist {
		cfg.Denylist = NewDenylist(nil)
	}
	srv, err := NewTokenServer(cfg)
	if err != nil {
		return nil, nil, err
	}
	var h http.Handler = srv
	if spec.AccessLog != nil {
		h = AccessLog(srv, spec.AccessLog)
	}
	run, err := Listen(spec.Addr, h)
	if err != nil {
		return nil, nil, err
	}
	return run, func() { run.Close() }, nil
}
