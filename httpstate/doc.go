// Package httpstate builds the stateless and stateful servers of the source
// documents and measures the difference: one calculator, and three ways to
// keep its state — none (every request carries its operands), in the
// process's memory (a session keeps last_result), or in an external store
// (the process is stateless, the system is not).
//
// The HTTP API, for curl or a browser:
//
//	POST /calculate  {"op":"add","a":10,"b":5}  → {"result":15}
//	POST /session                               → Set-Cookie: session=…  (stateful only)
//	POST /use_last   {"op":"multiply","b":2}    → {"result":30}          (stateful only)
//	GET  /state                                 → the session's state    (stateful only)
//	GET  /history                               → {"history":[…]}        (stateful only)
//	POST /undo                                  → back to the previous result; 409 empty_history
//	GET  /stats                                 → operations, most_used_op, op_counts (stateful only)
//	GET  /form, POST /form                      → an HTML calculator; its session rides in a hidden field
//
// A stateful or store-backed session's token travels in the session cookie,
// or, for clients without cookies, in the URL (?session=TOKEN; POST
// /session?via=url returns the rewritten links) or in the form's hidden
// field. The store-backed mode keeps sessions in SQLite (modernc.org/sqlite,
// no cgo) or Redis through scs's stores (see ParseStoreURL).
//
// Concurrent requests of one session lose no update, across processes
// too. In one process they take turns (a lock per session). Across
// processes on SQLite they take a lock row; on Redis they need no lock:
// each write is a compare-and-set against the bytes the request read, and a
// request whose session another process changed meanwhile runs again on
// the current one (optimistic.go). A process remembers what it last saw of
// each session, so a request on a session it served last costs one Redis
// round trip, the write.
//
// Bodies may also be form-encoded (op=add&a=10&b=5). Every error the API
// sends is JSON, {"error": "...", "code": "..."}, worded in the client's
// terms (the field and what it should be, never a Go type), and leaves the
// session as it was: 400 for a malformed body, 404 not_found for an
// unknown path (GET / lists the API and the form), 405 method with Allow,
// 413 body_too_large for a body over MaxBody (64 KiB), 415 content_type
// for anything but application/json (or no Content-Type) and
// form-encoding, 503 with Retry-After when the store or a session is busy
// or full. The form page reports its errors on the page, with the same
// status and code.
//
// A session is stored only by a request that stores something: POST
// /session, or the first POST /form that computes. An anonymous GET /form
// stores nothing; its page carries a signed pending token (pending.go)
// under which that first POST stores the session. Config.MaxSessions caps
// the live sessions (statelab http serve: --max-sessions, default 10000)
// by refusing: a request that would start one more gets 503
// session_limit, no session is evicted, and room comes back as sessions
// expire; the store is listed at most once a second (sessioncap.go). An
// SQLite store's file is created mode 0600 (its -wal and -shm
// follow it), since it holds live tokens; StoreFileWarnings names those
// other users can read. AccessLog writes one line per request.
//
// A fourth mode, Token (TokenServer), keeps nothing on the server: the
// session (last result, history, counts) rides in an HMAC-signed JWT the
// client carries in the session cookie, bound to a session id in the sid
// cookie, checked on every request and reissued by each one that changes
// it. Any process with the same secret serves any request; a token that
// was changed, signed with another key, expired, is another session's, or
// was logged out while a Denylist is kept gets 401 and changes nothing.
//
// The package is a library: it imports nothing of the lab, and its tests
// need no namespace. The lab's http/ experiments, their capture analysis
// and `statelab bench http` are in experiments/httpexp.
//
//	calc.go        the calculator: Op, Apply
//	request.go     decoding a request (JSON or form), JSON errors, MaxBody
//	pending.go     the form page's pending token: no session until one is stored
//	accesslog.go   AccessLog: one line per request
//	server.go      Server in its three modes (Config, New), Session, RawSession
//	sessioncap.go  the MaxSessions cap, counted without a listing per request
//	features.go    history, undo and stats of a session
//	mechanisms.go  the token in the URL and in the form's hidden field; the
//	               form page (FormToken, FormResult)
//	codec.go       the session codec
//	token.go       the token mode's codec: the session signed into a JWT
//	               (HS256), verified, capped at MaxTokenBytes
//	token_server.go TokenServer: the API with the session in the client's
//	               token, bound to its sid cookie; 401 for every bad token
//	token_denylist.go Denylist: logged-out sessions, per-client state again
//	token_serve.go ServeMode for the token mode
//	store.go       --store URLs (ParseStoreURL) and OpenStore: memory,
//	               SQLite, Redis, Redis behind Sentinel
//	sentinel.go    redis-sentinel:// URLs, the start-up check of the
//	               Sentinels, go-redis's failover client as the store
//	sentinel_confirm.go replica-confirmed writes: compare-and-set and WAIT
//	               in one round trip (ErrUnconfirmed)
//	sentinel_proc.go StartRedisProc: a server, replica or Sentinel on an
//	               address of the caller's
//	lock.go        one request per session at a time: in-process stripes,
//	               SQLite's lock row
//	optimistic.go  Redis without a lock: compare-and-set writes and reruns
//	stats.go       StoreStats: what a server asked of its store
//	listen.go      Listen: a server on a real socket, Running.Answered
//	serve.go       ServeSpec and ServeMode: store, server and socket in one
//	               (statelab http serve, a server process)
//	client.go      Client: the API over one keep-alive connection, bytes
//	               written counted
//	balancer.go    Balancer: round-robin and sticky over backends
//	               (httputil.ReverseProxy)
//	haproxy.go     StartHAProxy: the same policies in haproxy
//	redis.go       StartRedis: a throwaway redis-server
//	redislog.go    QuietRedisLog: go-redis's own log kept out of stderr
package httpstate
