package httpexp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// scriptStep is one named request of an experiment's script.
type scriptStep struct {
	Label  string // the step's name, for capture comments and the ladder
	Method string
	Path   string
	Body   any
}

// played is a step with what came of it.
type played struct {
	scriptStep
	Rep httpstate.Reply
	Err error // no reply at all (connection refused, reset)
	// Server is what the server side held after the step, as the
	// transcript's says tells: read from the server itself or from its
	// reply, never assumed. For the ladder and the reply's comment.
	Server string
	// Backend names the backend that served the step behind a balancer,
	// by the backends' own request counters; "" when none did.
	Backend string
}

// transcript records a script played against one server address, so the
// capture can be annotated with each request's step afterwards.
type transcript struct {
	name   string
	addr   netip.AddrPort
	steps  []*played
	events map[int]string // before step i: something that happened off the wire
	// says is how the steps' Server notes were learned, for the comments
	// and the ladder's title; default "as the server reported".
	says string
}

func (t *transcript) source() string {
	if t.says == "" {
		return "as the server reported"
	}
	return t.says
}

// answered is how many steps got a reply: the client's count.
func (t *transcript) answered() int {
	n := 0
	for _, p := range t.steps {
		if p.Err == nil {
			n++
		}
	}
	return n
}

// event records something that happened between two steps (a kill -9),
// for the ladder.
func (t *transcript) event(format string, args ...any) {
	if t.events == nil {
		t.events = map[int]string{}
	}
	t.events[len(t.steps)] = fmt.Sprintf(format, args...)
}

// do plays a step and records it.
func (t *transcript) do(ctx context.Context, c *httpstate.Client, label, method, path string, body any) *played {
	p := &played{scriptStep: scriptStep{Label: label, Method: method, Path: path, Body: body}}
	p.Rep, p.Err = c.Do(ctx, method, path, body)
	t.steps = append(t.steps, p)
	return p
}

// note sets what the server holds after the last step.
func (t *transcript) note(format string, args ...any) {
	if len(t.steps) > 0 {
		t.steps[len(t.steps)-1].Server = fmt.Sprintf(format, args...)
	}
}

// annotate finds the script's exchanges in the capture, comments each
// request and response packet with its step, and draws the ladder. Steps
// that got no reply (the server was dead) have no exchange.
func (t *transcript) annotate(env *lab.Env, pkts []*capture.Packet) []*Exchange {
	exs, err := Exchanges(pkts, t.addr)
	detail := fmt.Sprintf("%d HTTP/1.1 exchanges parsed", len(exs))
	if err != nil {
		detail = err.Error()
	}
	if !env.Check(t.name+": exchanges parsed from the capture", err == nil, "%s", detail) {
		return nil
	}
	if answered := t.answered(); !env.Check(t.name+": every answered request is in the capture", len(exs) == answered,
		"%d exchanges captured for %d answered requests", len(exs), answered) {
		return exs
	}
	lad := env.Ladder(fmt.Sprintf("%s (%s), as captured; server state after each step %s", t.name, t.addr, t.source()), "client", t.name)
	i := 0
	for n, p := range t.steps {
		if ev, ok := t.events[n]; ok {
			lad.State("", "** "+ev+" **")
		}
		if p.Err != nil {
			// Not an exchange in the capture: what the client recorded.
			lad.Send(fmt.Sprintf("%d. %s %s", n+1, p.Method, p.Path), "", "")
			lad.Reply("(no reply: "+p.Err.Error()+")", "", p.Server)
			for k := len(lad.Rows) - 2; k < len(lad.Rows); k++ {
				lad.Rows[k].Reported = "the client"
			}
			continue
		}
		t.annotateStep(lad, n, p, exs[i])
		i++
	}
	t.plot(env, exs)
	return exs
}

// annotateStep comments step n's captured exchange and draws it.
func (t *transcript) annotateStep(lad *lab.Ladder, n int, p *played, ex *Exchange) {
	label := requestLabel(ex)
	if ex.ReqPacket != nil {
		ex.ReqPacket.Comment(annotate.Append(fmt.Sprintf("%s step %d (%s): %s", t.name, n+1, p.Label, label),
			annotate.Block{}.Str(annotate.Side, "client").Str(annotate.Kind, "request").Str(annotate.Mode, t.name).Uint(annotate.Step, uint64(n+1))))
	}
	lad.Send(fmt.Sprintf("%d. %s", n+1, label), "", "")
	if ex.ReqPacket != nil {
		lad.When(ex.ReqPacket.Time)
	}
	if ex.Response == nil {
		lad.Reply("(no response captured)", "", p.Server)
		return
	}
	rl := replyLabel(ex)
	if ex.RespPacket != nil {
		c := fmt.Sprintf("%s step %d (%s) reply: %s", t.name, n+1, p.Label, trimString(rl, 200))
		if p.Server != "" {
			c += fmt.Sprintf("; server state after this step, %s: %s", t.source(), p.Server)
		}
		ex.RespPacket.Comment(annotate.Append(c, annotate.Block{}.Str(annotate.Side, "server").Str(annotate.Kind, "response").Str(annotate.Mode, t.name).
			Uint(annotate.Step, uint64(n+1)).Str(annotate.Backend, p.Backend).Str(annotate.Session, p.Server)))
	}
	lad.Reply(rl, "", p.Server) // the ladder wraps; replySummary abbreviates data, never an error
	lad.Explain(rl)
	if ex.RespPacket != nil {
		lad.When(ex.RespPacket.Time)
	}
}

// requestLabel words a captured request: its method and URI, its session
// cookie and its body.
func requestLabel(ex *Exchange) string {
	label := ex.Request.Method + " " + ex.Request.URL.RequestURI()
	if ck, err := ex.Request.Cookie(httpstate.SessionCookie); err == nil {
		label += " cookie=" + sessionLabel(ck.Value)
	}
	if len(ex.ReqBody) > 0 {
		label += " " + string(trimBody(ex.ReqBody))
	}
	return label
}

// replyLabel words a captured response: its status and JSON fields, or for
// the form page its result and hidden session field; and the session
// cookie it sets.
func replyLabel(ex *Exchange) string {
	rl := fmt.Sprintf("%d %s", ex.Response.StatusCode, replySummary(ex.RespBody))
	if strings.HasPrefix(ex.Response.Header.Get("Content-Type"), "text/html") {
		rl = fmt.Sprintf("%d HTML page", ex.Response.StatusCode)
		if v, ok := httpstate.FormResult(ex.RespBody); ok {
			rl += fmt.Sprintf(" result=%g", v)
		}
		if tok := httpstate.FormToken(ex.RespBody); tok != "" {
			rl += " hidden session=" + short(tok)
		}
	}
	for _, c := range ex.Response.Cookies() {
		if c.Name == httpstate.SessionCookie {
			rl += " Set-Cookie " + sessionLabel(c.Value)
		}
	}
	return rl
}
