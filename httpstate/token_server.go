package httpstate

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// TokenServer is the calculator whose session the client carries: the
// stateful API (session, use_last, state, history, undo, stats, and
// logout), with the whole state in a signed token (token.go) in the
// session cookie and the session id in the sid cookie. It keeps nothing
// per client — unless given a Denylist, which is per-client state again —
// so any process with the same secret serves any request, before or after
// a restart.
//
// A request with a token the server cannot accept is refused with 401 and
// a code saying why, and changes nothing (no cookie is set): token_too_large
// (over MaxTokenBytes), token_malformed, token_signature (changed after it
// was signed, or signed with another key), token_expired,
// token_transplanted (the token of another session than the sid cookie
// names, or no sid cookie), token_revoked (logged out, with a denylist).
type TokenServer struct {
	codec   *TokenCodec
	deny    *Denylist // nil: logging out revokes nothing
	mux     *http.ServeMux
	allowed map[string][]string
}

// SIDCookie is the cookie that names the token's session: a token is good
// only with the session id it was issued to.
const SIDCookie = "sid"

// Token is the mode of a TokenServer (ServeSpec, statelab http serve).
const Token Mode = "token"

// TokenConfig configures a TokenServer.
type TokenConfig struct {
	// Secret signs and verifies the tokens; every backend of one service
	// needs the same. At least MinTokenSecret bytes.
	Secret []byte
	// Lifetime is how long a token is good for (default 30 min); each
	// request that changes the state gets a new token with a fresh expiry.
	Lifetime time.Duration
	// Denylist, when set, makes POST /logout revoke the session's tokens.
	Denylist *Denylist
	// Now is the clock; nil for time.Now.
	Now func() time.Time
}

// NewTokenServer builds a token-carrying calculator.
func NewTokenServer(cfg TokenConfig) (*TokenServer, error) {
	codec, err := NewTokenCodec(cfg.Secret, or(cfg.Lifetime, 30*time.Minute), cfg.Now)
	if err != nil {
		return nil, err
	}
	s := &TokenServer{codec: codec, deny: cfg.Denylist, mux: http.NewServeMux(), allowed: map[string][]string{}}
	s.handle("POST", "/calculate", s.calculate)
	s.handle("POST", "/session", s.startSession)
	s.handle("POST", "/use_last", s.withSession(s.useLast))
	s.handle("POST", "/undo", s.withSession(s.undo))
	s.handle("POST", "/logout", s.withSession(s.logout))
	for _, p := range []string{"/state", "/history", "/stats"} {
		s.handle("GET", p, s.withSession(s.read))
	}
	s.mux.HandleFunc("/", s.fallback)
	return s, nil
}

// Codec is the server's token codec.
func (s *TokenServer) Codec() *TokenCodec { return s.codec }

func (s *TokenServer) handle(method, path string, h http.HandlerFunc) {
	s.mux.HandleFunc(method+" "+path, h)
	s.allowed[path] = append(s.allowed[path], method)
}

// ServeHTTP serves the calculator API.
func (s *TokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *TokenServer) fallback(w http.ResponseWriter, r *http.Request) {
	if methods, ok := s.allowed[r.URL.Path]; ok {
		allow := strings.Join(methods, ", ")
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": fmt.Sprintf("%s takes %s, not %s", r.URL.Path, allow, r.Method), "code": "method"})
		return
	}
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		paths := make([]string, 0, len(s.allowed))
		for p, methods := range s.allowed {
			paths = append(paths, strings.Join(methods, ",")+" "+p)
		}
		slices.Sort(paths)
		writeJSON(w, http.StatusOK, map[string]any{"calculator": string(Token), "api": paths,
			"session":  "POST /session sets the session cookie (a signed token holding the whole state) and the sid cookie",
			"denylist": s.deny != nil, "token_lifetime": s.codec.lifetime.String(), "max_token_bytes": MaxTokenBytes})
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{
		"error": "no such path: " + r.URL.Path + " (GET / lists the API; a token server has no form page)", "code": "not_found"})
}

// tokenRefusal maps a token error to its 401.
func tokenRefusal(err error) *apiError {
	code := "token_malformed"
	for _, c := range []struct {
		err  error
		code string
	}{{ErrTokenTooLarge, "token_too_large"}, {ErrTokenSignature, "token_signature"}, {ErrTokenExpired, "token_expired"},
		{ErrTokenTransplanted, "token_transplanted"}, {ErrTokenRevoked, "token_revoked"}} {
		if errors.Is(err, c.err) {
			code = c.code
		}
	}
	return &apiError{status: http.StatusUnauthorized, code: code, msg: trimPrefix(err) + "; nothing changed"}
}

// errNoTokenSession answers a request that needs a session and carries no
// token.
var errNoTokenSession = &apiError{status: http.StatusUnauthorized, code: "no_session",
	msg: "no session token: POST /session first (the session cookie carries the whole session)"}

// session reads and checks the request's token: present reports whether
// it carried one at all.
func (s *TokenServer) session(r *http.Request) (ts TokenSession, present bool, err error) {
	ck, cerr := r.Cookie(SessionCookie)
	if cerr != nil || ck.Value == "" {
		return TokenSession{}, false, nil
	}
	ts, err = s.codec.Verify(ck.Value)
	if err != nil {
		return TokenSession{}, true, err
	}
	sid, serr := r.Cookie(SIDCookie)
	switch {
	case serr != nil || sid.Value == "":
		return TokenSession{}, true, fmt.Errorf("%w: no sid cookie (a token is good only with the session id it was issued to)", ErrTokenTransplanted)
	case sid.Value != ts.SID:
		return TokenSession{}, true, fmt.Errorf("%w: the token is session %s's, the sid cookie names %s", ErrTokenTransplanted, short8(ts.SID), short8(sid.Value))
	case s.deny != nil && s.deny.Denied(ts.SID):
		return TokenSession{}, true, fmt.Errorf("%w: session %s logged out", ErrTokenRevoked, short8(ts.SID))
	}
	return ts, true, nil
}

func short8(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

// withSession runs h on the request's verified session, or refuses it.
func (s *TokenServer) withSession(h func(http.ResponseWriter, *http.Request, TokenSession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ts, present, err := s.session(r)
		switch {
		case err != nil:
			writeError(w, tokenRefusal(err))
		case !present:
			writeError(w, errNoTokenSession)
		default:
			h(w, r, ts)
		}
	}
}

// reissue signs the session's new state into the session cookie.
func (s *TokenServer) reissue(w http.ResponseWriter, sid string, st SessionState) error {
	tok, err := s.codec.Issue(sid, st)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

func (s *TokenServer) startSession(w http.ResponseWriter, r *http.Request) {
	sid := NewSID()
	if err := s.reissue(w, sid, SessionState{}); err != nil {
		writeError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SIDCookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	writeJSON(w, http.StatusCreated, map[string]string{"session": "started", "session_id": sid})
}

// calculate computes a op b; on a session it records the result in a new
// token, without one it is the stateless calculator.
func (s *TokenServer) calculate(w http.ResponseWriter, r *http.Request) {
	ts, present, err := s.session(r)
	if err != nil {
		writeError(w, tokenRefusal(err))
		return
	}
	req, err := decodeCalculate(r)
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := Apply(req.Op, *req.A, *req.B)
	if err != nil {
		writeError(w, err)
		return
	}
	if present {
		ts.State.record(req.Op, *req.A, *req.B, res)
		if err := s.reissue(w, ts.SID, ts.State); err != nil {
			writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]float64{"result": res})
}

func (s *TokenServer) useLast(w http.ResponseWriter, r *http.Request, ts TokenSession) {
	req, err := decodeUseLast(r, "the token's last_result")
	if err != nil {
		writeError(w, err)
		return
	}
	if !ts.State.HasLast {
		writeError(w, errNoLastResult)
		return
	}
	res, err := Apply(req.Op, ts.State.LastResult, *req.B)
	if err != nil {
		writeError(w, err)
		return
	}
	ts.State.record(req.Op, ts.State.LastResult, *req.B, res)
	if err := s.reissue(w, ts.SID, ts.State); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]float64{"result": res})
}

func (s *TokenServer) undo(w http.ResponseWriter, r *http.Request, ts TokenSession) {
	e, ok := ts.State.undo()
	if !ok {
		writeError(w, &apiError{status: http.StatusConflict, code: "empty_history", msg: "nothing to undo: this session's history is empty"})
		return
	}
	if err := s.reissue(w, ts.SID, ts.State); err != nil {
		writeError(w, err)
		return
	}
	reply := map[string]any{"undone": e, "has_last": ts.State.HasLast}
	if ts.State.HasLast {
		reply["result"] = ts.State.LastResult
	}
	writeJSON(w, http.StatusOK, reply)
}

// read answers GET /state, /history and /stats from the token.
func (s *TokenServer) read(w http.ResponseWriter, r *http.Request, ts TokenSession) {
	switch r.URL.Path {
	case "/history":
		h := ts.State.History
		if h == nil {
			h = []HistoryEntry{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"history": h})
	case "/stats":
		writeJSON(w, http.StatusOK, ts.State.Stats())
	default:
		writeJSON(w, http.StatusOK, ts.State)
	}
}

// logout clears the client's cookies. Without a denylist that is all it
// can do: the token itself stays valid until it expires, for whoever
// still holds a copy. With one, the session id is denied until the last
// token it could have expires.
func (s *TokenServer) logout(w http.ResponseWriter, r *http.Request, ts TokenSession) {
	revoked := false
	if s.deny != nil {
		if !s.deny.Add(ts.SID, s.codec.now().Add(s.codec.lifetime)) {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": fmt.Sprintf("the denylist holds %d logged-out sessions, as many as it may; retry later", MaxDenylist), "code": "denylist_full"})
			return
		}
		revoked = true
	}
	for _, name := range []string{SessionCookie, SIDCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	reply := map[string]any{"logged_out": true, "revoked": revoked}
	if !revoked {
		reply["note"] = "no denylist: this session's tokens stay valid until they expire (" + ts.Expires.UTC().Format(time.RFC3339) + " for this one)"
	}
	writeJSON(w, http.StatusOK, reply)
}
