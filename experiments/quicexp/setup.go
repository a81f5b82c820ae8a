package quicexp

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/quicconn/nat"
)

// labSetup is what every QUIC experiment sets up, here and nowhere else: a
// traced server with its key log (qlogs beside the capture), the NAT in
// front of it when the experiment wants one, the capture of the server's
// port, the experiment's deadline, and one client connected.
type labSetup struct {
	env    *lab.Env
	short  string
	keylog *lockedBuffer
	tracer *quicconn.Tracer
	srv    *quicconn.Server
	mb     *nat.UDP // the NAT in front of the server, if any
	cap    *capture.Capture
	ctx    context.Context // the experiment's deadline (stepTimeout)
	cl     *quicconn.Client
}

// setupOptions say what an experiment's setup adds to the server.
type setupOptions struct {
	// nat puts a NAT in front of the server; the client dials the NAT.
	nat bool
	// alsoKeep keeps more captured packets than the server's datagrams
	// (quic/tcp-contrast's TCP).
	alsoKeep func(capture.Meta) bool
}

// setUp makes the experiment's lab, closed when the experiment ends.
func setUp(env *lab.Env, o setupOptions) (*labSetup, error) {
	l, err := newLab(env)
	if err != nil {
		return nil, err
	}
	to := l.srv.Addr
	if o.nat {
		mb, err := nat.NewUDP("127.0.0.1:0", l.srv.Addr, loopback1)
		if err != nil {
			return nil, err
		}
		env.Cleanup(func() { mb.Close() })
		l.mb, to = mb, mb.Front
	}
	if l.cap, err = env.Capture(captureOptions(l.srv.Addr.Port(), o.alsoKeep)); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(env.Ctx, stepTimeout)
	env.Cleanup(cancel)
	l.ctx = ctx
	if l.cl, err = l.dial(to); err != nil {
		return nil, err
	}
	return l, nil
}

// newLab starts the traced server, its qlogs replacing an earlier run's.
func newLab(env *lab.Env) (*labSetup, error) {
	short := strings.TrimPrefix(env.Name(), "quic/")
	l := &labSetup{env: env, short: short, keylog: &lockedBuffer{}}
	dir := filepath.Dir(env.CapturePath(short))
	// The qlogs are named by connection ID: without this a second run
	// would add its files beside the first run's.
	if n, err := quicconn.RemoveQlogs(dir, short); err != nil {
		return nil, &lab.EnvError{What: "removing an earlier run's qlog files", Err: err, Remedy: "check the permissions of " + dir}
	} else if n > 0 {
		env.Logf("removed %d qlog file(s) of an earlier run", n)
	}
	l.tracer = &quicconn.Tracer{Dir: dir, Prefix: short}
	// Registered first, so it runs last, once every endpoint is closed:
	// the qlog files end on a whole record even when the run was stopped.
	env.Cleanup(func() {
		if cut := l.tracer.Finish(qlogFinishWait); cut > 0 {
			env.Note("%d qlog file(s) were completed before quic-go closed their connection (the run stopped early): each ends on its last whole record", cut)
		}
	})
	srv, err := quicconn.NewServer(quicconn.ServerConfig{Tracer: l.tracer, IdleTimeout: stepTimeout,
		Rand: env.Bytes("server connection IDs"), RecordWrites: true})
	if err != nil {
		return nil, err
	}
	env.Cleanup(func() { srv.Close() })
	l.srv = srv
	return l, nil
}

// dial connects a client through to (the server or the NAT).
func (l *labSetup) dial(to netip.AddrPort) (*quicconn.Client, error) {
	cl, err := quicconn.Dial(l.ctx, quicconn.ClientConfig{Server: to, Local: "127.0.0.1:0", Trust: l.srv.Cert, KeyLog: l.keylog,
		Tracer: l.tracer, IdleTimeout: stepTimeout, Rand: l.env.Bytes("client connection IDs"), RecordWrites: true})
	if err != nil {
		return nil, err
	}
	l.env.Cleanup(func() { cl.Close() })
	return cl, nil
}

// data is the seed's upload, from a stream of its own.
func (l *labSetup) data() []byte {
	r := l.env.Stream("upload")
	b := make([]byte, transferSize)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// upload sends the seed's data, calling at with the bytes written after
// every chunk.
func (l *labSetup) upload(at func(n int64)) (quicconn.UploadResult, error) {
	return l.cl.Upload(l.ctx, l.data(), uploadChunk, at)
}

// uploadRebinding uploads the seed's data through the NAT, arming a
// rebinding to addr once a third is written; rb is zero if none happened.
func (l *labSetup) uploadRebinding(to netip.Addr) (quicconn.UploadResult, nat.Rebinding, error) {
	var rebound <-chan nat.Rebinding
	res, err := l.upload(func(n int64) {
		if rebound == nil && n >= transferSize/3 {
			rebound = l.mb.Rebind(to, largeDatagram)
			l.env.Logf("NAT rebinding armed after %d bytes", n)
		}
	})
	var rb nat.Rebinding
	select {
	case rb = <-rebound:
	default:
	}
	return res, rb, err
}

// evidence is a finished QUIC experiment's record: the capture, its
// datagrams correlated with both endpoints' qlogs, every one commented.
type evidence struct {
	pkts []*capture.Packet
	// complete: the capture holds every packet the sources counted. When
	// false, no check may rest on it and no ladder may be drawn.
	complete bool
	ds       []*Datagram
	cli, srv *quicconn.ConnTrace
	logs     Logs
	corr     Correlation
}

// finish ends the experiment's traffic and makes its evidence: it closes
// every endpoint once both qlogs are complete, stops the capture once it
// holds every datagram the sockets and the NAT counted (and what extra
// expects) and says so in the check "capture complete", checks the qlog
// files and the key log, and correlates and comments every datagram.
func (l *labSetup) finish(extra ...expect) (*evidence, error) {
	ev, err := l.closeEndpoints()
	if err != nil {
		return nil, err
	}
	if err := l.stopCapture(ev, extra); err != nil {
		return nil, err
	}
	l.checkFiles()
	l.correlate(ev)
	return ev, nil
}

// closeEndpoints closes the client, waits until both endpoints' qlogs
// are complete, and closes every endpoint: nothing writes after this, so
// the counts are final.
func (l *labSetup) closeEndpoints() (*evidence, error) {
	l.cl.Conn.CloseWithError(0, "done")
	for _, c := range l.tracer.Conns() {
		select {
		case <-c.Done():
		case <-l.ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the %s to close: %w", quicconn.ErrTransfer, c.Role, context.Cause(l.ctx))
		}
	}
	l.cl.Close()
	if l.mb != nil {
		l.mb.Close()
	}
	l.srv.Close()
	ev := &evidence{cli: l.tracer.Role("client"), srv: l.tracer.Role("server")}
	if ev.cli == nil || ev.srv == nil {
		return nil, fmt.Errorf("%w: no qlog trace for the client or the server", quicconn.ErrTransfer)
	}
	ev.logs = LogsOf(ev.cli, ev.srv)
	ev.logs.ClientWrites, ev.logs.ServerWrites = l.cl.Writes(), l.srv.Writes()
	return ev, nil
}

// stopCapture stops the capture once it holds what the sources counted
// and records that as the check "capture complete".
func (l *labSetup) stopCapture(ev *evidence, extra []expect) error {
	q := l.quicExpect(ev.logs)
	q.want += testUncounted
	var err error
	ev.pkts, ev.complete, err = stopComplete(l.env, l.cap, append([]expect{q}, extra...)...)
	return err
}

// checkFiles embeds the key log in the capture and checks it and the
// qlog files.
func (l *labSetup) checkFiles() {
	l.cap.AddSecrets(l.keylog.Bytes())
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
}

// correlate joins every captured datagram with the qlogs and comments it,
// even in a short capture: the join is packet by packet.
func (l *labSetup) correlate(ev *evidence) {
	ev.ds = Datagrams(ev.pkts, l.srv.Addr, 8)
	var forged func(netip.AddrPort) bool
	if l.mb != nil {
		forged = l.mb.IsForged
	}
	ev.corr = Correlate(ev.ds, l.srv.Addr, ev.logs, forged)
	if !ev.complete {
		l.env.Note("No ladder is drawn: the capture is incomplete (see \"capture complete\"), and a ladder presented as the exchange holds only captured packets.")
	}
	CommentDatagrams(ev.ds, l.srv.Addr)
	plots(l.env, ev.ds, l.srv.Addr)
}

// quicExpect is what the capture of the server's port must hold: every
// datagram the server's socket wrote, and every one written to it — by
// the NAT (forwarded or forged), or by the client's sockets when it talks
// to the server directly.
func (l *labSetup) quicExpect(logs Logs) expect {
	e := expect{what: "QUIC datagrams", units: udpTo(l.srv.Addr.Port())}
	qlogs := fmt.Sprintf("the qlogs log %d datagrams sent by the server, %d by the client", DatagramsSent(logs.Server), DatagramsSent(logs.Client))
	if l.mb != nil {
		st := l.mb.Stats()
		e.want = l.srv.Written() + st.ToServer + st.Forged
		e.source = fmt.Sprintf("the server's socket: %d written; the NAT: %d forwarded to the server of the client's %d", l.srv.Written(), st.ToServer, l.cl.Written())
		if st.Forged > 0 {
			e.source += fmt.Sprintf(", %d forged copies", st.Forged)
		}
	} else {
		e.want = l.srv.Written() + l.cl.Written()
		e.source = fmt.Sprintf("the server's socket: %d written; the client's sockets: %d written", l.srv.Written(), l.cl.Written())
	}
	e.source += "; " + qlogs
	return e
}

// captureOptions records the datagrams to or from the server's port (what
// the server's side of the network carries), and what also keeps.
func captureOptions(port uint16, also func(capture.Meta) bool) capture.Options {
	return capture.Options{Keep: func(p *capture.Packet) bool {
		m, ok := p.Decode()
		return ok && (m.Proto == capture.ProtoUDP && m.Involves(port) || also != nil && also(m))
	}, MaxDrain: captureDrain}
}

// lockedBuffer is a key log many connections may write to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
