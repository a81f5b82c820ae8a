package tcptest

import (
	"errors"
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
)

// Step is one line of a script, for tables: the Peer method of the same
// name, as a value.
type Step func(p *Peer)

// Run runs the steps in order and returns p.
func (p *Peer) Run(steps ...Step) *Peer {
	p.t.Helper()
	for _, s := range steps {
		s(p)
	}
	return p
}

// Send is Peer.Send as a step: the peer sends a segment.
func Send(flags tcpstate.Flags, seq, ack tcpstate.Seq, opts ...Opt) Step {
	return func(p *Peer) { p.t.Helper(); p.Send(flags, seq, ack, opts...) }
}

// Want is Peer.Want as a step: the endpoint's next segment, by fields.
func Want(flags tcpstate.Flags, seq, ack tcpstate.Seq, opts ...Opt) Step {
	return func(p *Peer) { p.t.Helper(); p.Want(flags, seq, ack, opts...) }
}

// WantExact is Peer.WantExact as a step: the endpoint's next segment,
// every field.
func WantExact(seg tcpstate.Segment) Step {
	return func(p *Peer) { p.t.Helper(); p.WantExact(seg) }
}

// WantNone is Peer.WantNone as a step: nothing more was sent.
func WantNone() Step { return func(p *Peer) { p.t.Helper(); p.WantNone() } }

// WantState is Peer.WantState as a step.
func WantState(s tcpstate.State) Step { return func(p *Peer) { p.t.Helper(); p.WantState(s) } }

// WantErr is Peer.WantErr as a step.
func WantErr(err error) Step { return func(p *Peer) { p.t.Helper(); p.WantErr(err) } }

// Advance is Peer.Advance as a step: time passes, timers fire.
func Advance(d time.Duration) Step { return func(p *Peer) { p.t.Helper(); p.Advance(d) } }

// Fire is Peer.Fire as a step: the next timer fires.
func Fire() Step { return func(p *Peer) { p.t.Helper(); p.Fire() } }

// Write is Peer.Write as a step: the user sends text.
func Write(text string) Step { return func(p *Peer) { p.t.Helper(); p.Write(text) } }

// Close is Peer.Close as a step: the user closes.
func Close() Step { return func(p *Peer) { p.t.Helper(); p.Close() } }

// Abort is Peer.Abort as a step: the user aborts.
func Abort() Step { return func(p *Peer) { p.t.Helper(); p.Abort() } }

// WantRead is a step that reads everything readable and checks it is
// text, with errors.Is(err, wantErr) (no error when wantErr is nil).
func WantRead(text string, wantErr error) Step {
	return func(p *Peer) {
		p.t.Helper()
		got, err := p.Read()
		if got != text || (wantErr == nil) != (err == nil) || (wantErr != nil && !errors.Is(err, wantErr)) {
			p.fail("want to read %q, %v\n got  %q, %v", text, wantErr, got, err)
		}
	}
}

// PostRead is Peer.PostRead as a step: a RECEIVE waits, lending n octets.
func PostRead(n int) Step { return func(p *Peer) { p.t.Helper(); p.PostRead(n) } }

// WantPlaced is a step that ends a PostRead's loan and checks that text,
// exactly, was placed in the buffer.
func WantPlaced(text string) Step {
	return func(p *Peer) {
		p.t.Helper()
		if got := p.TakePosted(); got != text {
			p.fail("want %q placed in the posted read's buffer\n got  %q", text, got)
		}
	}
}

// Case is one row of a table: a fresh endpoint is driven into From
// (Peer.Reach) and the steps run.
type Case struct {
	Name  string
	From  tcpstate.State
	Steps []Step
}

// RunCases runs each case as a subtest, on a new endpoint with
// configuration cfg.
func RunCases(t *testing.T, cfg tcpstate.Config, cases []Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) { New(t, cfg).Reach(c.From).Run(c.Steps...) })
	}
}
