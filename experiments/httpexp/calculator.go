package httpexp

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
)

// http/calculator: the seed's ((10 + 5) × 2) − 3 against a stateless, a
// stateful and a store-backed server, measured from the capture.

func runCalculator(env *lab.Env) error {
	rig := setUp(env)
	runs, err := startCalcServers(rig)
	if err != nil {
		return err
	}
	cp, err := rig.capture()
	if err != nil {
		return err
	}
	want, err := playCalc(env, runs)
	if err != nil {
		return err
	}
	pkts, err := stopComplete(env, cp, want)
	if err != nil {
		return err
	}
	checkPacketsDecode(env, pkts)
	streams := capture.TCPStreams(pkts)
	for _, r := range runs {
		r.analyse(env, streams)
	}
	checkCalc(env, runs, streams)
	return nil
}

// step is one request of a calculator workflow.
type step struct {
	path string
	body *httpstate.CalcRequest // nil: no body (session start)
}

// workflowFor returns the seed's ((10 + 5) × 2) − 3 for a server mode. The
// stateless client must send the running value back each time, so its steps
// are computed from the previous result.
func workflowFor(mode httpstate.Mode) []func(prev float64) step {
	calc := func(op httpstate.Op, a, b *float64) *httpstate.CalcRequest {
		return &httpstate.CalcRequest{Op: op, A: a, B: b}
	}
	if mode == httpstate.Stateless {
		return []func(float64) step{
			func(float64) step { return step{"/calculate", calc(httpstate.Add, num(10), num(5))} },
			func(p float64) step { return step{"/calculate", calc(httpstate.Multiply, num(p), num(2))} },
			func(p float64) step { return step{"/calculate", calc(httpstate.Subtract, num(p), num(3))} },
		}
	}
	return []func(float64) step{
		func(float64) step { return step{"/session", nil} },
		func(float64) step { return step{"/calculate", calc(httpstate.Add, num(10), num(5))} },
		func(float64) step { return step{"/use_last", calc(httpstate.Multiply, nil, num(2))} },
		func(float64) step { return step{"/use_last", calc(httpstate.Subtract, nil, num(3))} },
	}
}

// calcRun is what one workflow did, as the client and server saw it, and
// what the capture shows of it.
type calcRun struct {
	mode        httpstate.Mode
	srv         *httpstate.Server
	run         *httpstate.Running
	client      *httpstate.Client
	result      float64
	token       string
	clientState []string // after each step
	serverState []string // after each step
	wire        *calcWire
}

func (c *calcRun) label() string { return string(c.mode) }

// startCalcServers starts one server of each mode, the store-backed one on
// SQLite, each with its client.
func startCalcServers(rig *rig) ([]*calcRun, error) {
	sqlite, err := rig.sqlite()
	if err != nil {
		return nil, err
	}
	runs := []*calcRun{{mode: httpstate.Stateless}, {mode: httpstate.Stateful}, {mode: httpstate.StoreBacked}}
	for _, r := range runs {
		if r.srv, r.run, err = rig.server(r.mode, sqlite); err != nil {
			return nil, err
		}
		r.client = httpstate.NewClient(r.run.URL(), r.mode != httpstate.Stateless)
		rig.env.Cleanup(r.client.Close)
	}
	return runs, nil
}

// playCalc plays every workflow and returns what the servers counted.
func playCalc(env *lab.Env, runs []*calcRun) (*wanted, error) {
	want := newWanted("the servers' request counters")
	for _, r := range runs {
		if err := r.play(env); err != nil {
			return nil, err
		}
		// Close the connection now, so its FIN exchange is in the capture.
		r.client.Close()
		r.run.Close()
		want.add(r.label()+" server", r.run.Addr, r.run.Answered())
	}
	return want, nil
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
		if err := r.noteStates(env, prev); err != nil {
			return err
		}
	}
	return nil
}

// noteStates records what each side keeps after a step: the client its
// running value or cookie, the server its session as it reports it.
func (r *calcRun) noteStates(env *lab.Env, prev float64) error {
	if r.mode == httpstate.Stateless {
		r.clientState = append(r.clientState, fmt.Sprintf("keeps %g", prev))
		r.serverState = append(r.serverState, "keeps nothing (stateless)")
		return nil
	}
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
	return nil
}

// checkPacketsDecode checks that the capture holds only packets the lab
// can read.
func checkPacketsDecode(env *lab.Env, pkts []*capture.Packet) {
	bad := 0
	for _, p := range pkts {
		if _, ok := p.Decode(); !ok {
			bad++
		}
	}
	env.Check("every captured packet decodes", bad == 0 && len(pkts) > 0, "%d packets, %d undecodable", len(pkts), bad)
}

// calcWire is a workflow read back from its server's exchanges in the
// capture.
type calcWire struct {
	exs                              []*Exchange
	numbers                          []string // the numbers the request bodies carried
	reqBytes, respBytes, cookieBytes int
	// token is the session token the server last set, "" for none;
	// cookieEveryRequest, that every request after it carried it back.
	token              string
	cookieEveryRequest bool
	requests, replies  []string // each exchange worded; reply "" when none was captured
	wireBytes, frames  int      // of every TCP segment to or from the server
}

// readWorkflow reads a workflow's exchanges at server out of the
// capture's streams.
func readWorkflow(streams []*capture.Stream, server netip.AddrPort) (*calcWire, error) {
	exs, err := exchangesIn(streams, server)
	if err != nil {
		return nil, err
	}
	w := &calcWire{exs: exs, cookieEveryRequest: true}
	for _, ex := range exs {
		ns := Numbers(ex.Request.Header.Get("Content-Type"), ex.ReqBody)
		w.numbers = append(w.numbers, ns...)
		w.reqBytes += ex.ReqBytes
		w.respBytes += ex.RespBytes
		if ck := ex.Request.Header.Get("Cookie"); ck != "" {
			w.cookieBytes += len("Cookie: ") + len(ck) + 2
		}
		label := ex.Request.Method + " " + ex.Request.URL.Path
		if op := opOf(ex.ReqBody); op != "" {
			label += fmt.Sprintf(" %s(%s)", op, strings.Join(ns, ", "))
		}
		if ck, err := ex.Request.Cookie(httpstate.SessionCookie); err == nil {
			label += " +cookie"
			w.cookieEveryRequest = w.cookieEveryRequest && ck.Value == w.token
		} else if w.token != "" {
			w.cookieEveryRequest = false
		}
		w.requests = append(w.requests, label)
		w.replies = append(w.replies, w.readReply(ex))
	}
	w.wireBytes, w.frames = wireOf(streams, server)
	return w, nil
}

// readReply words an exchange's response and notes the session cookie it
// sets.
func (w *calcWire) readReply(ex *Exchange) string {
	if ex.Response == nil {
		return ""
	}
	rl := fmt.Sprintf("%d %s", ex.Response.StatusCode, replySummary(ex.RespBody))
	for _, c := range ex.Response.Cookies() {
		if c.Name == httpstate.SessionCookie {
			w.token = c.Value
			rl += " Set-Cookie " + short(c.Value)
		}
	}
	return rl
}

// wireOf counts the bytes and frames of every TCP stream to or from
// server.
func wireOf(streams []*capture.Stream, server netip.AddrPort) (bytes, frames int) {
	for _, s := range streams {
		if s.Src == server || s.Dst == server {
			bytes += s.WireBytes
			frames += s.Frames
		}
	}
	return bytes, frames
}

// analyse reads the workflow back from the capture: it comments the
// packets, draws the ladder, measures, and checks the session on the wire.
func (r *calcRun) analyse(env *lab.Env, streams []*capture.Stream) {
	name := r.label()
	w, err := readWorkflow(streams, r.run.Addr)
	if err != nil {
		env.Check(name+" exchange parsed from the capture", false, "%v", err)
		return
	}
	steps := len(workflowFor(r.mode))
	if !env.Check(name+": every request is in the capture", len(w.exs) == steps, "%d of %d requests", len(w.exs), steps) {
		return
	}
	r.wire = w
	r.annotate(env)
	env.Metric(name+".numbers_sent", float64(len(w.numbers)))
	env.Metric(name+".requests", float64(len(w.exs)))
	env.Metric(name+".request_bytes", float64(w.reqBytes))
	env.Metric(name+".response_bytes", float64(w.respBytes))
	env.Metric(name+".cookie_bytes", float64(w.cookieBytes))
	env.Metric(name+".wire_bytes", float64(w.wireBytes))
	env.Metric(name+".wire_frames", float64(w.frames))
	if r.mode == httpstate.Stateless {
		env.Check("stateless exchange carries no session", w.token == "" && w.cookieBytes == 0,
			"Set-Cookie seen: %t, cookie bytes sent: %d", w.token != "", w.cookieBytes)
		return
	}
	env.Check(name+" session visible in the exchange",
		w.token != "" && w.token == r.token && w.cookieEveryRequest && len(w.token) >= 43,
		"Set-Cookie session=%s (%d chars) in response 1, sent back on every later request: %t",
		short(w.token), len(w.token), w.cookieEveryRequest)
}

// annotate comments the workflow's packets and draws its ladder, each
// side's state as that side reported it.
func (r *calcRun) annotate(env *lab.Env) {
	name := r.label()
	lad := env.Ladder(fmt.Sprintf("%s server (%s), as captured; each side's state after each request as that side reported it", name, r.run.Addr), "client", name+" server")
	for i, ex := range r.wire.exs {
		label, rl := r.wire.requests[i], r.wire.replies[i]
		lad.Send(label, "", "")
		if ex.ReqPacket != nil {
			lad.When(ex.ReqPacket.Time)
			ex.ReqPacket.Comment(annotate.Append(fmt.Sprintf("%s request %d: %s", name, i+1, label),
				annotate.Block{}.Str(annotate.Side, "client").Str(annotate.Kind, "request").Str(annotate.Mode, name).Uint(annotate.Step, uint64(i+1))))
		}
		if ex.Response == nil {
			lad.Reply("(no response captured)", "", "")
			continue
		}
		lad.Reply(rl, r.clientState[i], r.serverState[i])
		if ex.RespPacket != nil {
			lad.When(ex.RespPacket.Time)
			ex.RespPacket.Comment(annotate.Append(fmt.Sprintf("%s response %d: %s; server state after this request, as the server reported: %s", name, i+1, rl, r.serverState[i]),
				annotate.Block{}.Str(annotate.Side, "server").Str(annotate.Kind, "response").Str(annotate.Mode, name).Uint(annotate.Step, uint64(i+1)).Str(annotate.Session, r.serverState[i])))
		}
	}
	calcPlot(env, name, r.wire.exs, r.wire.requests, r.clientState, r.serverState)
}

// checkCalc checks what the workflows computed and carried, fills the
// table's "data sent" row, and checks the capture against the bytes the
// clients wrote.
func checkCalc(env *lab.Env, runs []*calcRun, streams []*capture.Stream) {
	numbers := func(r *calcRun) []string {
		if r.wire == nil {
			return nil
		}
		return r.wire.numbers
	}
	reqBytes := func(r *calcRun) int {
		if r.wire == nil {
			return 0
		}
		return r.wire.reqBytes
	}
	sl, sf, sb := runs[0], runs[1], runs[2]
	env.Check("stateless reaches 27", sl.result == 27, "((10 + 5) × 2) − 3 = %g", sl.result)
	env.Check("stateful reaches 27", sf.result == 27, "((10 + 5) × 2) − 3 = %g", sf.result)
	env.Check("stateless client sends 6 numbers", len(numbers(sl)) == 6,
		"numbers in the captured request bodies: %d (%s)", len(numbers(sl)), strings.Join(numbers(sl), ","))
	env.Check("stateful client sends 4 numbers", len(numbers(sf)) == 4,
		"numbers in the captured request bodies: %d (%s)", len(numbers(sf)), strings.Join(numbers(sf), ","))
	env.Check("store-backed reaches 27", sb.result == 27, "((10 + 5) × 2) − 3 = %g", sb.result)
	env.Check("store-backed client sends 4 numbers", len(numbers(sb)) == 4,
		"numbers in the captured request bodies: %d (%s)", len(numbers(sb)), strings.Join(numbers(sb), ","))
	for _, r := range runs {
		wire, _ := wireOf(streams, r.run.Addr)
		recordEvidence(env, rowData, r.mode, "%d numbers, %d request bytes, %d bytes on the wire", len(numbers(r)), reqBytes(r), wire)
	}
	for _, r := range runs {
		env.Check(r.label()+": capture holds every request byte the client wrote", int64(reqBytes(r)) == r.client.Written(),
			"client wrote %d bytes, the capture's requests hold %d", r.client.Written(), reqBytes(r))
	}
	if d := reqBytes(sf) - reqBytes(sl); d > 0 {
		env.Note("the stateful client sends fewer numbers but %d more request bytes: the cookie rides on every request and the session costs a request of its own", d)
	} else {
		env.Note("the stateful client sends fewer numbers and %d fewer request bytes", -d)
	}
}
