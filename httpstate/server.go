package httpstate

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
)

// Mode is how a calculator server keeps the client's state.
type Mode string

// The three ways to keep state.
const (
	// Stateless keeps nothing: the client carries the running value.
	Stateless Mode = "stateless"
	// Stateful keeps each session in the process's memory.
	Stateful Mode = "stateful"
	// StoreBacked keeps each session in an external store: the process is
	// stateless, the system is not.
	StoreBacked Mode = "store"
)

// SessionCookie is the session cookie's name.
const SessionCookie = "session"

// ErrNoSession means a stateful request came without a live session.
var ErrNoSession = errors.New("httpstate: no session")

// SessionState is what a stateful server remembers about one client.
type SessionState struct {
	HasLast    bool    `json:"has_last"`
	LastResult float64 `json:"last_result"`
	Operations int     `json:"operations"`
	// History, Undos and OpCounts are the stateful features (features.go).
	History  []HistoryEntry `json:"history,omitempty"`
	Undos    int            `json:"undos,omitempty"`
	OpCounts map[Op]int     `json:"op_counts,omitempty"`
}

// Config configures a calculator server.
type Config struct {
	Mode Mode
	// Store holds sessions for Stateful (default: in memory) and
	// StoreBacked (required). The server counts what it asks of a store
	// given here (StoreStats).
	Store scs.Store
	// IdleTimeout and Lifetime bound a session; defaults 30 min and 12 h.
	IdleTimeout, Lifetime time.Duration
	// CleanupInterval, when set, sweeps expired sessions out of the
	// in-memory store for the life of the process.
	CleanupInterval time.Duration
	// Locker serialises the requests of one session. Default: the lock
	// that goes with the store (a lock row in SQLite, shared by every
	// process on the file), else in-process stripes. On Redis the stripes
	// serialise a process's own requests and compare-and-set writes keep
	// processes from losing each other's updates (optimistic.go).
	Locker SessionLocker
	// LockWait bounds how long a request waits for its session's lock when
	// its context has no earlier deadline (default 5 s); then it is a 503.
	LockWait time.Duration
	// MaxSessions caps the live sessions the store holds; 0 for no cap.
	// The policy is to refuse: while the store holds MaxSessions live
	// sessions, a request that would start one more (POST /session, a
	// first POST /form) gets 503 with code "session_limit" and
	// Retry-After, and the sessions already there are untouched (none is
	// evicted: a client's work is never dropped to make room for a
	// stranger's). Room comes back as sessions expire (IdleTimeout). The
	// store is listed at most once a second (a listing reads every
	// session), and this process's own starts are counted in between, so
	// a flood at the cap is refused from memory; sessions other processes
	// on a shared store start, or that expire, are seen at the next
	// listing (sessioncap.go). A GET of the form page takes no room. A
	// store that cannot list its sessions is not capped.
	MaxSessions int
}

// Server is the calculator over HTTP in one of the three modes.
type Server struct {
	mode     Mode
	sessions *scs.SessionManager
	mux      *http.ServeMux
	allowed  map[string][]string // path → methods, for 405's Allow

	locker   SessionLocker // one request per session at a time
	lockWait time.Duration
	occ      *redisSessions // the store when it is written by compare-and-set
	sweep    time.Duration  // the memory store's cleanup interval, 0 for none
	counted  *countingStore // the store given in Config, counted (StoreStats)
	sessCap  *sessionCap    // Config.MaxSessions, nil for no cap
	// pendingKey signs the tokens of form pages served without a
	// session (pending.go).
	pendingKey []byte
}

// New builds a calculator server.
func New(cfg Config) (*Server, error) {
	s := &Server{mode: cfg.Mode, mux: http.NewServeMux(), pendingKey: make([]byte, 32)}
	if cfg.MaxSessions > 0 {
		s.sessCap = &sessionCap{max: cfg.MaxSessions, every: capRecount, now: time.Now, count: s.SessionCount}
	}
	_, _ = rand.Read(s.pendingKey)
	switch cfg.Mode {
	case Stateless:
	case Stateful, StoreBacked:
		store := cfg.Store
		if store == nil {
			if cfg.Mode == StoreBacked {
				return nil, errors.New("httpstate: store mode needs a store")
			}
			// memstore's cleanup goroutine races with its own StopCleanup
			// (scs v2.9.0: the goroutine writes the stop channel that
			// StopCleanup reads), so a server that will be closed runs
			// without it: Find still refuses expired sessions; only their
			// memory waits for the process to end. Long-lived servers
			// (statelab http serve) ask for the cleanup and never stop it.
			store = memstore.NewWithCleanupInterval(cfg.CleanupInterval)
			s.sweep = cfg.CleanupInterval
		} else {
			s.counted = &countingStore{Store: store}
			store = s.counted
		}
		sm := scs.New()
		sm.Store = store
		sm.Codec = sessionCodec{}
		sm.IdleTimeout = or(cfg.IdleTimeout, 30*time.Minute)
		sm.Lifetime = or(cfg.Lifetime, 12*time.Hour)
		sm.Cookie.Name = SessionCookie
		sm.Cookie.HttpOnly = true
		sm.Cookie.SameSite = http.SameSiteLaxMode
		sm.Cookie.Persist = false
		sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			// scs lets the handler go on writing after an error; serveOnce
			// sends one clean error instead of both.
			if f, ok := r.Context().Value(storeFailureKey{}).(*storeFailure); ok {
				if f.err == nil {
					f.err = err
				}
				return
			}
			writeStoreError(w, err)
		}
		s.sessions = sm
		if o, ok := store.(optimisticStore); ok {
			s.occ = o.optimistic()
		}
		s.locker, s.lockWait = cfg.Locker, or(cfg.LockWait, 5*time.Second)
		if s.locker == nil {
			if ls, ok := store.(lockerStore); ok {
				s.locker = ls.sessionLocker()
			} else {
				s.locker = newStripedLocker()
			}
		}
	default:
		return nil, fmt.Errorf("httpstate: unknown mode %q (want stateless, stateful or store)", cfg.Mode)
	}
	s.routes()
	return s, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Mode reports how the server keeps state.
func (s *Server) Mode() Mode { return s.mode }

// Close releases the server. It holds nothing to release today — a memory
// store's cleanup cannot be stopped safely (see New) and external stores
// are closed by whoever opened them — but callers close every server alike,
// so a server that gains background work keeps one place to stop it.
func (s *Server) Close() {}

func (s *Server) routes() {
	s.allowed = map[string][]string{}
	s.handle("POST", "/calculate", s.calculate)
	s.handle("GET", "/form", s.form)
	s.handle("POST", "/form", s.form)
	if s.sessions == nil {
		stateless := func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"error": "this server is stateless: it keeps no session and no last result; send both operands to /calculate",
				"code":  "stateless"})
		}
		for _, p := range []string{"/session", "/use_last", "/state", "/history", "/undo", "/stats"} {
			s.mux.HandleFunc(p, stateless)
		}
	} else {
		s.handle("POST", "/session", s.startSession)
		s.handle("POST", "/use_last", s.useLast)
		s.handle("GET", "/state", s.state)
		s.handle("GET", "/history", s.history)
		s.handle("POST", "/undo", s.undoLast)
		s.handle("GET", "/stats", s.stats)
	}
	// Everything else: the index at /, a JSON 405 on a known path, a JSON
	// 404 elsewhere (the mux's own are plain text).
	s.mux.HandleFunc("/", s.fallback)
}

// handle routes method and path to h and remembers the method for 405s.
func (s *Server) handle(method, path string, h http.HandlerFunc) {
	s.mux.HandleFunc(method+" "+path, h)
	s.allowed[path] = append(s.allowed[path], method)
}

// fallback answers what no route takes, in JSON.
func (s *Server) fallback(w http.ResponseWriter, r *http.Request) {
	if methods, ok := s.allowed[r.URL.Path]; ok {
		allow := strings.Join(methods, ", ")
		if slices.Contains(methods, "GET") {
			allow += ", HEAD"
		}
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
		writeJSON(w, http.StatusOK, map[string]any{
			"calculator": string(s.mode), "form": "/form", "api": paths,
			"example": "curl --json '" + example + "' " + "http://" + r.Host + "/calculate"})
		return
	}
	writeJSON(w, http.StatusNotFound, map[string]string{
		"error": "no such path: " + r.URL.Path + " (GET / lists the API; the form is at /form)", "code": "not_found"})
}

// ServeHTTP serves the calculator API. On a stateful server requests of one
// session take effect one after the other, across processes too when the
// store is shared (a lock row in SQLite; on Redis, compare-and-set writes
// and reruns make concurrent requests end as if they had taken turns), so
// concurrent requests lose no update and bad input leaves the session as
// it was.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.sessions == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	token, via := tokenOf(r)
	var body []byte
	var bodyErr error
	if s.occ != nil {
		// Read before the lock, so that a slow client holds no lock.
		body, bodyErr = readReplayable(r)
	}
	// One deadline for the lock wait and, on Redis, the reruns.
	deadline := time.Now().Add(s.lockWait)
	if token != "" {
		unlock, ok := s.lockSession(w, r, token, deadline)
		if !ok {
			return
		}
		defer unlock()
	}
	if s.occ != nil {
		s.serveOptimistic(w, r, token, via, body, bodyErr, deadline)
		return
	}
	buf, err := s.serveOnce(r, token, via)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	buf.copyTo(w)
}

// storeFailure records the store error that stopped a request (scs's
// ErrorFunc), carried by the request's context (storeFailureKey).
type storeFailure struct{ err error }

type storeFailureKey struct{}

// writeStoreError answers a request the session store failed.
func writeStoreError(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "session store: " + err.Error(), "code": "store"})
}

// serveOnce runs the request through scs into a buffer: its session is
// loaded, the handler runs, and the session is written back. It returns the
// response, or the store error that spoilt it: scs reports the error and
// lets the handler go on writing, so the caller sends one clean error
// instead.
func (s *Server) serveOnce(r *http.Request, token string, via tokenVia) (*bufferedWriter, error) {
	f := &storeFailure{}
	r = r.WithContext(context.WithValue(r.Context(), storeFailureKey{}, f))
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	if via == viaURL || via == viaForm {
		s.serveCookieless(buf, r, token, via)
	} else {
		s.sessions.LoadAndSave(s.mux).ServeHTTP(buf, r)
	}
	return buf, f.err
}

// serveOptimistic runs a request on the Redis store: into a buffer, then
// again on the current session for as long as its write-back (or the final
// check of what it read) finds the session changed by another process, up
// to optimisticAttempts or the lock wait (which bounds every run's store
// calls too); only the last run's response is sent. body is the request's
// body, read once (readReplayable).
// The handlers are pure functions of the session and the request, so
// running one again has no other effect.
func (s *Server) serveOptimistic(w http.ResponseWriter, r *http.Request, token string, via tokenVia, body []byte, bodyErr error, deadline time.Time) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	a := &attempt{store: s.occ, token: token}
	wait := retryWait{next: time.Millisecond, max: 16 * time.Millisecond}
	for n := 1; ; n++ {
		rr := r.WithContext(context.WithValue(ctx, attemptKey{}, a))
		rr.Body = &replayBody{r: bytes.NewReader(body), err: bodyErr}
		buf, err := s.serveOnce(rr, token, via)
		s.occ.finish(ctx, a)
		switch {
		case a.err != nil:
			writeStoreError(w, a.err)
			return
		case a.conflict && (n == optimisticAttempts || ctx.Err() != nil):
			writeSessionChanged(w, n)
			return
		case a.conflict:
			// A first conflict is this process's cache being behind (the
			// session was last written elsewhere): run again at once. More
			// mean other processes are writing the session right now: wait
			// a jittered, growing moment so that one of the writers gets
			// through (as the lock's retries do) rather than all
			// invalidating each other until their attempts run out.
			if n > 1 && !wait.wait(ctx) {
				writeSessionChanged(w, n)
				return
			}
			a = a.rerun()
		case err != nil:
			writeStoreError(w, err)
			return
		default:
			buf.copyTo(w)
			return
		}
	}
}

// writeSessionChanged answers a request whose session changed under each
// of its n runs.
func writeSessionChanged(w http.ResponseWriter, n int) {
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{
		"error": fmt.Sprintf("session changed under this request %d times in a row (other requests of this session in progress); retry", n),
		"code":  "session_busy"})
}

// lockSession takes the session's lock for the whole request (load,
// handler, write-back), waiting until the request's deadline or LockWait;
// when it cannot, it answers 503 and reports false.
func (s *Server) lockSession(w http.ResponseWriter, r *http.Request, token string, deadline time.Time) (func(), bool) {
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	unlock, err := s.locker.Lock(ctx, token)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": "session lock: " + err.Error() + " (another request of this session is in progress; retry)", "code": "session_busy"})
		return nil, false
	}
	return unlock, true
}

func (s *Server) calculate(w http.ResponseWriter, r *http.Request) {
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
	if s.sessions != nil && s.sessions.Exists(r.Context(), "state") {
		st := s.sessions.Get(r.Context(), "state").(SessionState)
		st.record(req.Op, *req.A, *req.B, res)
		s.sessions.Put(r.Context(), "state", st)
	}
	writeJSON(w, http.StatusOK, map[string]float64{"result": res})
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request) {
	if err := s.roomForSession(r); err != nil {
		writeError(w, err)
		return
	}
	// A new token whenever a session starts, against session fixation.
	if err := s.sessions.RenewToken(r.Context()); err != nil {
		s.sessions.ErrorFunc(w, r, err) // the store failed: one 503 (serveOnce)
		return
	}
	s.sessions.Put(r.Context(), "state", SessionState{})
	reply := map[string]string{"session": "started"}
	for k, v := range s.links(r) {
		reply[k] = v
	}
	writeJSON(w, http.StatusCreated, reply)
}

// errSessionLimit answers a new session when the store is full.
var errSessionLimit = &apiError{status: http.StatusServiceUnavailable, code: "session_limit",
	msg: "the server holds as many sessions as it may (--max-sessions); retry later, when some have expired"}

// roomForSession refuses a new session (errSessionLimit) when the request
// has none and the store already holds MaxSessions live sessions.
func (s *Server) roomForSession(r *http.Request) error {
	if s.sessCap == nil || s.sessions.Exists(r.Context(), "state") {
		return nil
	}
	if !s.sessCap.admit() {
		return errSessionLimit
	}
	return nil
}

func (s *Server) current(r *http.Request) (SessionState, error) {
	if !s.sessions.Exists(r.Context(), "state") {
		return SessionState{}, &apiError{status: http.StatusUnauthorized, code: "no_session",
			msg: "no live session: POST /session first (it may have expired, or the server restarted)"}
	}
	return s.sessions.Get(r.Context(), "state").(SessionState), nil
}

func (s *Server) useLast(w http.ResponseWriter, r *http.Request) {
	req, err := decodeUseLast(r, "last_result")
	if err != nil {
		writeError(w, err)
		return
	}
	st, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !st.HasLast {
		writeError(w, errNoLastResult)
		return
	}
	res, err := Apply(req.Op, st.LastResult, *req.B)
	if err != nil {
		writeError(w, err)
		return
	}
	st.record(req.Op, st.LastResult, *req.B, res)
	s.sessions.Put(r.Context(), "state", st)
	writeJSON(w, http.StatusOK, map[string]float64{"result": res})
}

func (s *Server) state(w http.ResponseWriter, r *http.Request) {
	st, err := s.current(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Session returns the state a stateful server holds for a session token, as
// the store has it: the experiments' window into the server.
func (s *Server) Session(ctx context.Context, token string) (SessionState, bool, error) {
	if s.sessions == nil {
		return SessionState{}, false, nil
	}
	b, found, err := findSession(ctx, s.sessions.Store, token)
	if err != nil || !found {
		return SessionState{}, false, err
	}
	_, values, err := s.sessions.Codec.Decode(b)
	if err != nil {
		return SessionState{}, false, err
	}
	st, ok := values["state"].(SessionState)
	return st, ok, nil
}

// RawSession returns a session as the store holds it, encoded: what a
// token stands for on the server.
func (s *Server) RawSession(ctx context.Context, token string) ([]byte, bool, error) {
	if s.sessions == nil {
		return nil, false, nil
	}
	return findSession(ctx, s.sessions.Store, token)
}

// SessionCount returns how many live sessions the store holds, or -1 when the
// store cannot list them.
func (s *Server) SessionCount() int {
	if s.sessions == nil {
		return 0
	}
	var all map[string][]byte
	var err error
	store := s.sessions.Store
	if s.counted != nil {
		store = s.counted.Store // the wrapper lists nothing of its own
	}
	switch it := store.(type) {
	case scs.IterableCtxStore:
		all, err = it.AllCtx(context.Background())
	case scs.IterableStore:
		all, err = it.All()
	default:
		return -1
	}
	if err != nil {
		return -1
	}
	return len(all)
}

// findSession reads a session through the store's context-aware method
// when it has one (the go-redis store has only that: its Find panics).
func findSession(ctx context.Context, st scs.Store, token string) ([]byte, bool, error) {
	if cs, ok := st.(scs.CtxStore); ok {
		return cs.FindCtx(ctx, token)
	}
	return st.Find(token)
}
