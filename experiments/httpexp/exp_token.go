package httpexp

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// http/signed-token: the calculator's session kept by the client in a
// signed token (httpstate.TokenServer), served by three backend processes
// behind the round-robin balancer with no store and no stickiness, every
// backend killed with SIGKILL and restarted mid-workflow; bad tokens
// refused; and what it costs, measured: bytes against the cookie-id
// session, the token growing with the history, and logging out.

// tokenLifetime is the backends' token lifetime: long enough that no token
// of the run expires by itself (the expired token is made, not waited for).
const tokenLifetime = 10 * time.Minute

// tokenBackends is how many backend processes serve the token.
const tokenBackends = 3

func runSignedToken(env *lab.Env) error {
	x, err := setUpToken(env)
	if err != nil {
		return err
	}
	defer x.close()
	cp, err := x.rig.capture()
	if err != nil {
		return err
	}
	for _, play := range []func() error{x.playWorkflow, x.playRefusals, x.playLogout, x.playDenylist, x.playCookieID} {
		if err := play(); err != nil {
			return err
		}
	}
	x.close()
	pkts, err := stopComplete(env, cp, x.wanted())
	if err != nil {
		return err
	}
	x.analyse(pkts)
	return nil
}

// tokenExp is the experiment's setup and what it measured.
type tokenExp struct {
	env    *lab.Env
	rig    *rig
	secret string                // hex, shared by every token backend
	key    []byte                // the same, as bytes
	codec  *httpstate.TokenCodec // the lab's copy: reads tokens, makes the expired one
	forger *httpstate.TokenCodec // another key

	backends []*child // b1…b3, replaced by their restarts
	killed   []int    // pids killed with SIGKILL that died of it
	lb       *httpstate.Balancer
	lbRun    *httpstate.Running
	t        *transcript // everything through the balancer
	cl, cl2  *httpstate.Client

	deny    *child // the one backend with a denylist
	dt      *transcript
	dcl     *httpstate.Client
	sfRun   *httpstate.Running // the stateful (cookie-id) server
	sf      *transcript
	sfCl    *httpstate.Client
	sfSteps map[string]int // label → step in sf

	tokSteps  map[string]int // script label → step in x.t
	ops       []tokenOp      // the operations played on the token session
	refusals  []refusal
	crashStep int // the first step after the backends were killed
	logout    logoutResult
	denied    denyResult
}

// tokenOp is one operation of the token session, with the result the lab
// computed for it.
type tokenOp struct {
	step int // in x.t
	op   httpstate.Op
	a, b float64
	want float64
	got  float64
}

// setUpToken starts the backends, the balancer, the denylist backend and
// the stateful server.
func setUpToken(env *lab.Env) (*tokenExp, error) {
	secret := make([]byte, httpstate.MinTokenSecret)
	forgerKey := make([]byte, httpstate.MinTokenSecret)
	if _, err := io.ReadFull(env.Bytes("token-secret"), secret); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(env.Bytes("forger-key"), forgerKey); err != nil {
		return nil, err
	}
	x := &tokenExp{env: env, rig: setUp(env), secret: hex.EncodeToString(secret), key: secret,
		sfSteps: map[string]int{}, tokSteps: map[string]int{}}
	var err error
	if x.codec, err = httpstate.NewTokenCodec(secret, tokenLifetime, nil); err != nil {
		return nil, err
	}
	if x.forger, err = httpstate.NewTokenCodec(forgerKey, tokenLifetime, nil); err != nil {
		return nil, err
	}
	urls := make([]string, tokenBackends)
	for i := range tokenBackends {
		ch, err := x.rig.child(x.spec("127.0.0.1:0", false))
		if err != nil {
			return nil, err
		}
		x.backends = append(x.backends, ch)
		urls[i] = ch.url()
	}
	if x.lb, err = httpstate.NewBalancer(httpstate.RoundRobin, urls...); err != nil {
		return nil, err
	}
	if x.lbRun, err = x.rig.listen(x.lb); err != nil {
		return nil, err
	}
	x.t = &transcript{name: "balancer (round-robin) over 3 token backends", addr: x.lbRun.Addr, says: "as the backends' counters and the token itself showed"}
	if x.deny, err = x.rig.child(x.spec("127.0.0.1:0", true)); err != nil {
		return nil, err
	}
	x.dt = &transcript{name: "token backend with a denylist", addr: x.deny.addr, says: "as its replies and the token showed"}
	_, run, err := x.rig.server(httpstate.Stateful, "")
	if err != nil {
		return nil, err
	}
	x.sfRun = run
	x.sf = &transcript{name: "stateful server (cookie id)", addr: run.Addr, says: "as its replies showed"}
	x.cl = httpstate.NewClient(x.lbRun.URL(), true)
	x.cl2 = httpstate.NewClient(x.lbRun.URL(), true)
	x.dcl = httpstate.NewClient(x.deny.url(), true)
	x.sfCl = httpstate.NewClient(run.URL(), true)
	return x, nil
}

// spec is a token backend's spec: the shared secret, the lifetime.
func (x *tokenExp) spec(addr string, denylist bool) httpstate.ServeSpec {
	return httpstate.ServeSpec{Mode: httpstate.Token, Addr: addr, TokenSecret: x.secret, TokenLifetime: tokenLifetime, TokenDenylist: denylist}
}

// close closes the clients' connections.
func (x *tokenExp) close() {
	for _, c := range []*httpstate.Client{x.cl, x.cl2, x.dcl, x.sfCl} {
		if c != nil {
			c.Close()
		}
	}
}

// wanted is what the capture must hold, counted at the source: the
// balancer's request counter and its per-backend response counters, the
// stateful server's counter, and for the denylist backend (killed once)
// its client's count.
func (x *tokenExp) wanted() *wanted {
	w := newWanted("the balancer's request and per-backend counters, the stateful server's counter, the denylist backend's client")
	w.add(x.t.name, x.lbRun.Addr, x.lbRun.Answered())
	served := x.lb.Served()
	for i, ch := range x.backends {
		name := x.lb.Names()[i]
		w.add("token backend "+name, ch.addr, int(served[name]))
	}
	w.add(x.dt.name, x.dt.addr, x.dt.answered())
	w.add(x.sf.name, x.sfRun.Addr, x.sfRun.Answered())
	return w
}

// cookies reads what a client's jar holds for the balancer: the token and
// the session id.
func cookies(c *httpstate.Client) (token, sid string) {
	token, _ = cookieOf(c, c.Base, httpstate.SessionCookie)
	sid, _ = cookieOf(c, c.Base, httpstate.SIDCookie)
	return token, sid
}

// present puts token and sid in a client's jar, as a client that kept (or
// stole, or made) them would send them.
func present(c *httpstate.Client, token, sid string) {
	u, _ := url.Parse(c.Base)
	c.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: httpstate.SessionCookie, Value: token, Path: "/"}, {Name: httpstate.SIDCookie, Value: sid, Path: "/"}})
}

// describe says what a token carries, read with the lab's copy of the
// secret: its size, last result and history.
func (x *tokenExp) describe(token string) string {
	if token == "" {
		return "no token"
	}
	ts, err := x.codec.Verify(token)
	if err != nil {
		return fmt.Sprintf("a %d-byte token the lab cannot verify (%v)", len(token), err)
	}
	last := "no last result"
	if ts.State.HasLast {
		last = fmt.Sprintf("last_result=%g", ts.State.LastResult)
	}
	return fmt.Sprintf("token of %d bytes: %s, history of %d, session %s", len(token), last, len(ts.State.History), short(ts.SID))
}

// sessionLabel words a session cookie's value for a comment: a signed
// token by its size and its last characters (every one starts alike,
// "eyJhbGci…"), a cookie id by its first eight.
func sessionLabel(v string) string {
	if strings.Count(v, ".") == 2 && len(v) > 64 {
		return fmt.Sprintf("token(%d bytes, …%s)", len(v), v[len(v)-6:])
	}
	return short(v)
}
