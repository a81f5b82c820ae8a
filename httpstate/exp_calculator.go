package httpstate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "http/calculator",
		Summary: "((10 + 5) × 2) − 3 against a stateless, a stateful and a store-backed server: numbers and bytes on the wire",
		Shows: "The same calculation costs the stateless client 6 numbers (it carries the running value) and the " +
			"stateful and store-backed clients 4 (the server remembers last_result behind a session cookie, in memory or " +
			"in SQLite), measured from the capture.",
		Run: runCalculator,
	})
}

// step is one request of a calculator workflow.
type step struct {
	path string
	body *CalcRequest // nil: no body (session start)
}

func num(v float64) *float64 { return &v }

// workflowFor returns the seed's ((10 + 5) × 2) − 3 for a server mode. The
// stateless client must send the running value back each time, so its steps
// are computed from the previous result.
func workflowFor(mode Mode) []func(prev float64) step {
	if mode == Stateless {
		return []func(float64) step{
			func(float64) step { return step{"/calculate", &CalcRequest{Op: Add, A: num(10), B: num(5)}} },
			func(p float64) step { return step{"/calculate", &CalcRequest{Op: Multiply, A: num(p), B: num(2)}} },
			func(p float64) step { return step{"/calculate", &CalcRequest{Op: Subtract, A: num(p), B: num(3)}} },
		}
	}
	return []func(float64) step{
		func(float64) step { return step{"/session", nil} },
		func(float64) step { return step{"/calculate", &CalcRequest{Op: Add, A: num(10), B: num(5)}} },
		func(float64) step { return step{"/use_last", &CalcRequest{Op: Multiply, B: num(2)}} },
		func(float64) step { return step{"/use_last", &CalcRequest{Op: Subtract, B: num(3)}} },
	}
}

// calcRun is what one workflow did, as the client and server saw it.
type calcRun struct {
	mode        Mode
	srv         *Server
	run         *Running
	client      *Client
	result      float64
	token       string
	clientState []string // after each step
	serverState []string // after each step
}

func (c *calcRun) label() string { return string(c.mode) }

func runCalculator(env *lab.Env) error {
	startEvidence(env)
	runs := []*calcRun{{mode: Stateless}, {mode: Stateful}, {mode: StoreBacked}}
	ports := map[uint16]bool{}
	dir, err := os.MkdirTemp("", "statelab-calc-")
	if err != nil {
		return err
	}
	env.Cleanup(func() { os.RemoveAll(dir) })
	for _, r := range runs {
		srv, run, _, err := labServer(env, r.mode, "sqlite://"+filepath.Join(dir, "sessions.db"))
		if err != nil {
			return err
		}
		r.srv, r.run = srv, run
		r.client = NewClient(run.URL(), r.mode != Stateless)
		ports[run.Addr.Port()] = true
		env.Cleanup(r.client.Close)
	}
	cap, err := env.Capture(capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && (ports[m.Src.Port()] || ports[m.Dst.Port()])
	}})
	if err != nil {
		return err
	}
	started("capture", 0)

	want := newWanted("the servers' request counters")
	for _, r := range runs {
		if err := r.play(env); err != nil {
			return err
		}
		// Close the connection now, so its FIN exchange is in the capture.
		r.client.Close()
		r.run.Close()
		want.add(r.label()+" server", r.run.Addr, r.run.Answered())
	}
	pkts, err := stopComplete(env, cap, want)
	if err != nil {
		return err
	}

	bad := 0
	for _, p := range pkts {
		if _, ok := p.Decode(); !ok {
			bad++
		}
	}
	env.Check("every captured packet decodes", bad == 0 && len(pkts) > 0, "%d packets, %d undecodable", len(pkts), bad)

	numbers := map[Mode][]string{}
	reqBytes := map[Mode]int{}
	for _, r := range runs {
		exs, err := Exchanges(pkts, r.run.Addr)
		if err != nil {
			env.Check(r.label()+" exchange parsed from the capture", false, "%v", err)
			continue
		}
		numbers[r.mode], reqBytes[r.mode] = r.analyse(env, pkts, exs)
	}

	env.Check("stateless reaches 27", runs[0].result == 27, "((10 + 5) × 2) − 3 = %g", runs[0].result)
	env.Check("stateful reaches 27", runs[1].result == 27, "((10 + 5) × 2) − 3 = %g", runs[1].result)
	env.Check("stateless client sends 6 numbers", len(numbers[Stateless]) == 6,
		"numbers in the captured request bodies: %d (%s)", len(numbers[Stateless]), strings.Join(numbers[Stateless], ","))
	env.Check("stateful client sends 4 numbers", len(numbers[Stateful]) == 4,
		"numbers in the captured request bodies: %d (%s)", len(numbers[Stateful]), strings.Join(numbers[Stateful], ","))
	env.Check("store-backed reaches 27", runs[2].result == 27, "((10 + 5) × 2) − 3 = %g", runs[2].result)
	env.Check("store-backed client sends 4 numbers", len(numbers[StoreBacked]) == 4,
		"numbers in the captured request bodies: %d (%s)", len(numbers[StoreBacked]), strings.Join(numbers[StoreBacked], ","))
	for _, r := range runs {
		wire := 0
		for _, s := range capture.TCPStreams(pkts) {
			if s.Src == r.run.Addr || s.Dst == r.run.Addr {
				wire += s.WireBytes
			}
		}
		recordEvidence(env, rowData, r.mode, "%d numbers, %d request bytes, %d bytes on the wire", len(numbers[r.mode]), reqBytes[r.mode], wire)
	}
	for _, r := range runs {
		env.Check(r.label()+": capture holds every request byte the client wrote", int64(reqBytes[r.mode]) == r.client.Written(),
			"client wrote %d bytes, the capture's requests hold %d", r.client.Written(), reqBytes[r.mode])
	}
	if d := reqBytes[Stateful] - reqBytes[Stateless]; d > 0 {
		env.Note("the stateful client sends fewer numbers but %d more request bytes: the cookie rides on every request and the session costs a request of its own", d)
	} else {
		env.Note("the stateful client sends fewer numbers and %d fewer request bytes", -d)
	}
	return nil
}

// play runs the workflow, recording each side's state after every step.
func (r *calcRun) play(env *lab.Env) error {
	prev := 0.0
	for i, next := range workflowFor(r.mode) {
		st := next(prev)
		var body any
		if st.body != nil {
			body = st.body
		}
		rep, err := r.client.Post(env.Ctx, st.path, body)
		if err != nil {
			return err
		}
		if rep.Status >= 300 {
			return fmt.Errorf("%s step %d %s: %d %s", r.mode, i+1, st.path, rep.Status, rep.Error)
		}
		if rep.Cookie != "" {
			r.token = rep.Cookie
		}
		if st.body != nil {
			prev, r.result = rep.Result, rep.Result
		}
		switch r.mode {
		case Stateless:
			r.clientState = append(r.clientState, fmt.Sprintf("keeps %g", prev))
			r.serverState = append(r.serverState, "keeps nothing (stateless)")
		default:
			r.clientState = append(r.clientState, "keeps cookie "+short(r.token))
			ss, ok, err := r.srv.Session(env.Ctx, r.token)
			switch {
			case err != nil:
				return err
			case !ok:
				r.serverState = append(r.serverState, "no session")
			case !ss.HasLast:
				r.serverState = append(r.serverState, fmt.Sprintf("session %s: empty", short(r.token)))
			default:
				r.serverState = append(r.serverState, fmt.Sprintf("last_result=%g", ss.LastResult))
			}
		}
	}
	return nil
}

// analyse reads the workflow back from the capture: it comments the packets,
// draws the ladder, and returns the numbers the requests carried and their
// bytes.
func (r *calcRun) analyse(env *lab.Env, pkts []*capture.Packet, exs []*Exchange) (numbers []string, reqBytes int) {
	name := r.label()
	steps := len(workflowFor(r.mode))
	if !env.Check(name+": every request is in the capture", len(exs) == steps, "%d of %d requests", len(exs), steps) {
		return nil, 0
	}
	lad := env.Ladder(fmt.Sprintf("%s server (%s), as captured; each side's state after each request as that side reported it", name, r.run.Addr), "client", name+" server")
	var respBytes, cookieBytes int
	var tokenOnWire string
	cookieEveryRequest := true
	for i, ex := range exs {
		ct := ex.Request.Header.Get("Content-Type")
		ns := Numbers(ct, ex.ReqBody)
		numbers = append(numbers, ns...)
		reqBytes += ex.ReqBytes
		respBytes += ex.RespBytes
		if ck := ex.Request.Header.Get("Cookie"); ck != "" {
			cookieBytes += len("Cookie: ") + len(ck) + 2
		}
		label := ex.Request.Method + " " + ex.Request.URL.Path
		if op := opOf(ex.ReqBody); op != "" {
			label += fmt.Sprintf(" %s(%s)", op, strings.Join(ns, ", "))
		}
		if ck, err := ex.Request.Cookie(SessionCookie); err == nil {
			label += " +cookie"
			if ck.Value != tokenOnWire {
				cookieEveryRequest = false
			}
		} else if tokenOnWire != "" {
			cookieEveryRequest = false
		}
		lad.Send(label, "", "")
		comment := fmt.Sprintf("%s request %d: %s", name, i+1, label)
		if ex.ReqPacket != nil {
			ex.ReqPacket.Comment(comment)
		}
		if ex.Response == nil {
			lad.Reply("(no response captured)", "", "")
			continue
		}
		rl := fmt.Sprintf("%d %s", ex.Response.StatusCode, replySummary(ex.RespBody))
		for _, c := range ex.Response.Cookies() {
			if c.Name == SessionCookie {
				tokenOnWire = c.Value
				rl += " Set-Cookie " + short(c.Value)
			}
		}
		lad.Reply(rl, r.clientState[i], r.serverState[i])
		if ex.RespPacket != nil {
			ex.RespPacket.Comment(fmt.Sprintf("%s response %d: %s; server state after this request, as the server reported: %s", name, i+1, rl, r.serverState[i]))
		}
	}
	env.Metric(name+".numbers_sent", float64(len(numbers)))
	env.Metric(name+".requests", float64(len(exs)))
	env.Metric(name+".request_bytes", float64(reqBytes))
	env.Metric(name+".response_bytes", float64(respBytes))
	env.Metric(name+".cookie_bytes", float64(cookieBytes))
	wire, frames := 0, 0
	for _, s := range capture.TCPStreams(pkts) {
		if s.Src == r.run.Addr || s.Dst == r.run.Addr {
			wire += s.WireBytes
			frames += s.Frames
		}
	}
	env.Metric(name+".wire_bytes", float64(wire))
	env.Metric(name+".wire_frames", float64(frames))
	if r.mode == Stateless {
		env.Check("stateless exchange carries no session", tokenOnWire == "" && cookieBytes == 0,
			"Set-Cookie seen: %t, cookie bytes sent: %d", tokenOnWire != "", cookieBytes)
	} else {
		env.Check(name+" session visible in the exchange",
			tokenOnWire != "" && tokenOnWire == r.token && cookieEveryRequest && len(tokenOnWire) >= 43,
			"Set-Cookie session=%s (%d chars) in response 1, sent back on every later request: %t",
			short(tokenOnWire), len(tokenOnWire), cookieEveryRequest)
	}
	return numbers, reqBytes
}

func short(token string) string {
	if len(token) <= 8 {
		return token
	}
	return token[:8] + "…"
}

// opOf returns the op field of a JSON calculator request, if any.
func opOf(body []byte) string {
	var v struct{ Op string }
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Op
}

// replySummary shortens a JSON reply to key=value pairs: result=15.
func replySummary(body []byte) string {
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return strings.TrimSpace(string(body))
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v[k]))
	}
	return strings.Join(parts, " ")
}
