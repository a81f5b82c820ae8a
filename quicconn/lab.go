package quicconn

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

// Lab tunables: short, so each experiment takes well under a few seconds.
var (
	// TransferSize is what the rebinding experiments upload: enough to
	// rebind mid-transfer, small enough for a capture well under 1 MiB.
	TransferSize = 300 << 10
	// StepTimeout bounds each wait of an experiment.
	StepTimeout = 8 * time.Second
	// LargeDatagram is the least size of the client datagram that creates
	// a new NAT binding (see Middlebox.Rebind).
	LargeDatagram = 1000
)

var (
	loopback1 = netip.MustParseAddr("127.0.0.1")
	loopback2 = netip.MustParseAddr("127.0.0.2")
	loopback3 = netip.MustParseAddr("127.0.0.3")
	loopback4 = netip.MustParseAddr("127.0.0.4")
)

// udpPort keeps the captured UDP datagrams to or from port.
func udpPort(port uint16) func(*capture.Packet) bool {
	return func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && m.Proto == capture.ProtoUDP && m.Involves(port)
	}
}

// labSetup is what the QUIC experiments share: a traced server with its
// key log, and the directory the capture and qlogs go to.
type labSetup struct {
	env    *lab.Env
	short  string
	keylog *lockedBuffer
	tracer *Tracer
	srv    *Server
	mb     *Middlebox // the NAT in front of the server, if any
}

// QlogFinishWait bounds how long an experiment's end waits for quic-go to
// close the connections' qlogs before it completes them itself.
var QlogFinishWait = 2 * time.Second

func newLab(env *lab.Env) (*labSetup, error) {
	short := strings.TrimPrefix(env.Name(), "quic/")
	l := &labSetup{env: env, short: short, keylog: &lockedBuffer{}}
	dir := filepath.Dir(env.CapturePath(short))
	// The qlogs are named by connection ID: without this a second run
	// would add its files beside the first run's.
	if n, err := RemoveQlogs(dir, short); err != nil {
		return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
	} else if n > 0 {
		env.Logf("removed %d qlog file(s) of an earlier run", n)
	}
	l.tracer = &Tracer{Dir: dir, Prefix: short}
	// Registered first, so it runs last, once every endpoint is closed:
	// the qlog files end on a whole record even when the run was stopped.
	env.Cleanup(func() {
		if cut := l.tracer.Finish(QlogFinishWait); cut > 0 {
			env.Note("%d qlog file(s) were completed before quic-go closed their connection (the run stopped early): each ends on its last whole record", cut)
		}
	})
	srv, err := NewServer(ServerConfig{Tracer: l.tracer, IdleTimeout: StepTimeout, Rand: env.Bytes("server connection IDs"), RecordWrites: true})
	if err != nil {
		return nil, err
	}
	env.Cleanup(func() { srv.Close() })
	l.srv = srv
	return l, nil
}

// natInFront puts a NAT (Middlebox) in front of the lab's server, closed
// when the experiment ends.
func (l *labSetup) natInFront() (*Middlebox, error) {
	mb, err := NewMiddlebox("127.0.0.1:0", l.srv.Addr, loopback1)
	if err != nil {
		return nil, err
	}
	l.env.Cleanup(func() { mb.Close() })
	l.mb = mb
	return mb, nil
}

// data is the seed's upload, from a stream of its own.
func (l *labSetup) data() []byte {
	r := l.env.Stream("upload")
	b := make([]byte, TransferSize)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// dial connects a client through to (the server or a middlebox).
func (l *labSetup) dial(ctx context.Context, to netip.AddrPort, local string) (*Client, error) {
	cl, err := Dial(ctx, ClientConfig{Server: to, Local: local, Trust: l.srv.Cert, KeyLog: l.keylog, Tracer: l.tracer,
		IdleTimeout: StepTimeout, Rand: l.env.Bytes("client connection IDs"), RecordWrites: true})
	if err != nil {
		return nil, err
	}
	l.env.Cleanup(func() { cl.Close() })
	return cl, nil
}

// evidence is a finished QUIC experiment's record: the capture, its
// datagrams correlated with both endpoints' qlogs, every one commented.
type evidence struct {
	pkts []*capture.Packet
	// complete: the capture holds every packet the sources counted. When
	// false, no check may rest on it and no ladder may be drawn.
	complete bool
	ds       []*Datagram
	cli, srv *ConnTrace
	logs     Logs
	corr     Correlation
}

// finish closes the client and waits until both endpoints' qlogs are
// complete, closes every endpoint (so their counts are final), stops the
// capture once it holds every datagram the sockets and the NAT counted
// (and what extra expects), and records that as the check "capture
// complete". Then it embeds the key log in the capture, checks the qlog
// files, correlates the datagrams with the qlogs and comments every one.
func (l *labSetup) finish(ctx context.Context, cl *Client, cap *capture.Capture, extra ...expect) (*evidence, error) {
	cl.Conn.CloseWithError(0, "done")
	for _, c := range l.tracer.Conns() {
		select {
		case <-c.Done():
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the %s to close: %w", ErrTransfer, c.Role, context.Cause(ctx))
		}
	}
	// Nothing writes after this: the counts are final.
	cl.Close()
	if l.mb != nil {
		l.mb.Close()
	}
	l.srv.Close()
	ev := &evidence{cli: l.tracer.Role("client"), srv: l.tracer.Role("server")}
	if ev.cli == nil || ev.srv == nil {
		return nil, fmt.Errorf("%w: no qlog trace for the client or the server", ErrTransfer)
	}
	ev.logs = LogsOf(ev.cli, ev.srv)
	ev.logs.ClientWrites, ev.logs.ServerWrites = cl.Writes(), l.srv.Writes()
	q := l.quicExpect(cl, ev.logs)
	q.want += testUncounted
	comp := newCompleteness(append([]expect{q}, extra...)...)
	pkts, err := cap.StopWhen(comp.add)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	comp.add(pkts)
	got, want, unit, source := comp.totals()
	ev.pkts = pkts
	ev.complete = l.env.CaptureComplete(cap, got, want, unit, source)

	cap.AddSecrets(l.keylog.Bytes())
	var files []string
	bad := 0
	for _, c := range l.tracer.Conns() {
		b, err := os.ReadFile(c.File)
		if err != nil || !bytes.Contains(b, []byte("transport:packet_sent")) || !bytes.HasSuffix(b, []byte("\n")) {
			bad++
		}
		files = append(files, filepath.Base(c.File))
	}
	l.env.Check("a qlog file per connection endpoint beside the capture", bad == 0 && len(files) > 0,
		"%d files, %d incomplete: %s", len(files), bad, strings.Join(files, ", "))
	secrets := bytes.Count(l.keylog.Bytes(), []byte("TRAFFIC_SECRET_0"))
	l.env.Check("TLS secrets embedded in the capture", secrets >= 2, "%d traffic secrets in the decryption-secrets block", secrets)
	// Every captured datagram is commented from the qlogs, even in a short
	// capture: the join is packet by packet.
	ev.ds = Datagrams(pkts, l.srv.Addr, 8)
	var forged func(netip.AddrPort) bool
	if l.mb != nil {
		forged = l.mb.IsForged
	}
	ev.corr = Correlate(ev.ds, l.srv.Addr, ev.logs, forged)
	if !ev.complete {
		l.env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\"), and a ladder presented as the exchange holds only captured packets.")
	}
	CommentDatagrams(ev.ds, l.srv.Addr)
	return ev, nil
}

// quicExpect is what the capture of the server's port must hold: every
// datagram the server's socket wrote, and every one written to it — by
// the NAT (forwarded or forged), or by the client's sockets when it talks
// to the server directly.
func (l *labSetup) quicExpect(cl *Client, logs Logs) expect {
	e := expect{what: "QUIC datagrams", units: udpTo(l.srv.Addr.Port())}
	qlogs := fmt.Sprintf("the qlogs log %d datagrams sent by the server, %d by the client", DatagramsSent(logs.Server), DatagramsSent(logs.Client))
	if l.mb != nil {
		st := l.mb.Stats()
		e.want = l.srv.Written() + st.ToServer + st.Forged
		e.source = fmt.Sprintf("the server's socket: %d written; the NAT: %d forwarded to the server of the client's %d", l.srv.Written(), st.ToServer, cl.Written())
		if st.Forged > 0 {
			e.source += fmt.Sprintf(", %d forged copies", st.Forged)
		}
	} else {
		e.want = l.srv.Written() + cl.Written()
		e.source = fmt.Sprintf("the server's socket: %d written; the client's sockets: %d written", l.srv.Written(), cl.Written())
	}
	e.source += "; " + qlogs
	return e
}

// cidShort abbreviates a connection ID for diagrams.
func cidShort(s string) string {
	if len(s) > 8 {
		return s[:8] + "…"
	}
	return s
}

// captureOptions records the datagrams to or from the server's port: what
// the server's side of the network carries.
func captureOptions(port uint16) capture.Options {
	return capture.Options{Keep: udpPort(port), MaxDrain: captureDrain}
}

// captureDrain bounds how long a capture waits to hold what its sources
// counted (0: the capture's default); tests shorten it.
var captureDrain time.Duration

// testUncounted, set by tests, is added to what the sources counted: the
// capture is then found short.
var testUncounted int

// rows collects a ladder's rows and draws them in capture order: a
// message row at its packet's index in the capture, a state row at the
// index it comes before (-1: first).
type rows struct {
	at []float64
	r  []lab.Rung
}

func (r *rows) add(at float64, g lab.Rung) {
	r.at = append(r.at, at)
	r.r = append(r.r, g)
}

// send adds a captured packet from the ladder's left side.
func (r *rows) send(index int, label, left, right string) {
	r.add(float64(index), lab.Rung{Label: fmt.Sprintf("#%d %s", index+1, label), ToRight: true, LeftState: left, RightState: right})
}

// reply adds a captured packet from the ladder's right side.
func (r *rows) reply(index int, label, left, right string) {
	r.add(float64(index), lab.Rung{Label: fmt.Sprintf("#%d %s", index+1, label), LeftState: left, RightState: right})
}

// state adds a change of state just before the packet at index.
func (r *rows) state(before int, left, right string) {
	r.add(float64(before)-0.5, lab.Rung{LeftState: left, RightState: right})
}

// draw appends the rows to l in capture order.
func (r *rows) draw(l *lab.Ladder) {
	idx := make([]int, len(r.at))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(r.at[a], r.at[b]) })
	for _, i := range idx {
		l.Rows = append(l.Rows, r.r[i])
	}
}
