package httpexp

import (
	"fmt"
	"time"

	"github.com/statelab/statelab/lab"
)

// plot adds the transcript's picture: each request on the lane of the
// backend that served it (by the backends' own counters; the server
// itself when no balancer stands in front), at the time its request
// crossed the capture, and a lane of what the server side held after each
// request, as the transcript learned it. A step with no captured
// exchange (the server was dead) is drawn at the previous request's time,
// marked lost. exs are the captured exchanges of the answered steps, in
// order.
func (t *transcript) plot(env *lab.Env, exs []*Exchange) {
	if len(t.steps) == 0 {
		return
	}
	var t0 time.Time
	for _, ex := range exs {
		if ex.ReqPacket != nil {
			t0 = ex.ReqPacket.Time
			break
		}
	}
	p := env.Plot(fmt.Sprintf("%s: requests per backend over time, and the server's state after each request (%s)", t.name, t.source()),
		lab.PlotTimeline, "time (ms, from the first request in the capture)", "")
	lanes := map[string]*lab.Series{}
	var order []*lab.Series
	lane := func(name string) *lab.Series {
		if s, ok := lanes[name]; ok {
			return s
		}
		s := &lab.Series{Name: name, Kind: lab.SeriesEvents}
		lanes[name] = s
		order = append(order, s)
		return s
	}
	state := &lab.Series{Name: "server's state after the request", Kind: lab.SeriesSpans}
	at, i := 0.0, 0
	for n, pt := range t.steps {
		who := pt.Backend
		if who == "" {
			who = t.name
		}
		label := fmt.Sprintf("%d. %s %s", n+1, pt.Method, pt.Path)
		point := lab.Point{Label: label}
		if pt.Err != nil || i >= len(exs) {
			point.Fate, point.Detail = lab.FateLost, "no exchange in the capture"
			if pt.Err != nil {
				point.Detail = "no reply: " + lab.ErrText(pt.Err)
			}
		} else {
			ex := exs[i]
			i++
			if ex.ReqPacket != nil && !t0.IsZero() {
				at = max(at, lab.MS(ex.ReqPacket.Time.Sub(t0)))
			}
			point.Label = fmt.Sprintf("%d. %s", n+1, requestLabel(ex))
			if ex.Response != nil {
				point.Detail = "reply: " + replyLabel(ex)
				if ex.Response.StatusCode >= 400 {
					point.Fate = lab.FateRejected
				}
			}
		}
		point.X = at
		lane(who).Put(point)
		if last := state.Last(); last != nil {
			last.X2 = at
		}
		if pt.Server != "" {
			state.Span(at, at, pt.Server)
		}
	}
	if last := state.Last(); last != nil && last.X2 <= last.X {
		last.X2 = last.X + max(at*0.03, 1) // the last state, drawn a little wide
	}
	p.Series = order
	if len(state.Points) > 0 {
		p.Series = append(p.Series, state)
	}
}

// calcPlot adds a calculator workflow's picture: each request at the
// time it crossed the capture, and what the client and the server held
// after it, each as that side reported it, so the lanes show who holds
// the running value.
func calcPlot(env *lab.Env, name string, exs []*Exchange, requests, clientState, serverState []string) {
	if len(exs) == 0 {
		return
	}
	var t0 time.Time
	if exs[0].ReqPacket != nil {
		t0 = exs[0].ReqPacket.Time
	}
	p := env.Plot(fmt.Sprintf("%s server: requests over time, and what each side held after each (as that side reported it)", name),
		lab.PlotTimeline, "time (ms, from the first request in the capture)", "")
	reqs := p.Add("requests", lab.SeriesEvents)
	cs := p.Add("client holds", lab.SeriesSpans)
	ss := p.Add("server holds", lab.SeriesSpans)
	at := 0.0
	for i, ex := range exs {
		if ex.ReqPacket != nil && !t0.IsZero() {
			at = max(at, lab.MS(ex.ReqPacket.Time.Sub(t0)))
		}
		pt := lab.Point{X: at, Label: fmt.Sprintf("%d. %s", i+1, pick(requests, i))}
		if ex.Response == nil {
			pt.Fate, pt.Detail = lab.FateLost, "no response captured"
		} else {
			pt.Detail = "reply: " + replyLabel(ex)
		}
		reqs.Put(pt)
		for _, lane := range []struct {
			s     *lab.Series
			state string
		}{{cs, pick(clientState, i)}, {ss, pick(serverState, i)}} {
			if last := lane.s.Last(); last != nil {
				last.X2 = at
			}
			if lane.state != "" {
				lane.s.Span(at, at, lane.state)
			} else {
				lane.s.Span(at, at, "nothing")
			}
		}
	}
	for _, s := range []*lab.Series{cs, ss} {
		if last := s.Last(); last != nil {
			last.X2 = at + max(at*0.05, 1) // the state after the last request, drawn a little wide
		}
	}
}

// pick is s[i], "" past its end.
func pick(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}
