package quicconn

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/statelab/statelab/internal/capture"
	"github.com/statelab/statelab/internal/lab"
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
}

func newLab(env *lab.Env) (*labSetup, error) {
	short := strings.TrimPrefix(env.Name(), "quic/")
	l := &labSetup{env: env, short: short, keylog: &lockedBuffer{}}
	l.tracer = &Tracer{Dir: filepath.Dir(env.CapturePath(short)), Prefix: short}
	srv, err := NewServer(ServerConfig{Tracer: l.tracer, IdleTimeout: StepTimeout})
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
	return mb, nil
}

// data is the seed's upload.
func (l *labSetup) data() []byte {
	b := make([]byte, TransferSize)
	for i := 0; i < len(b); i += 8 {
		v := l.env.Rand.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// dial connects a client through to (the server or a middlebox).
func (l *labSetup) dial(ctx context.Context, to netip.AddrPort, local string) (*Client, error) {
	cl, err := Dial(ctx, ClientConfig{Server: to, Local: local, Trust: l.srv.Cert, KeyLog: l.keylog, Tracer: l.tracer, IdleTimeout: StepTimeout})
	if err != nil {
		return nil, err
	}
	l.env.Cleanup(func() { cl.Close() })
	return cl, nil
}

// finish closes the client, waits until both endpoints' qlogs are
// complete, embeds the key log in the capture and checks the qlog files.
func (l *labSetup) finish(ctx context.Context, cl *Client, cap *capture.Capture) ([]*capture.Packet, error) {
	cl.Conn.CloseWithError(0, "done")
	for _, c := range l.tracer.Conns() {
		select {
		case <-c.Done():
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for the %s to close: %w", ErrTransfer, c.Role, context.Cause(ctx))
		}
	}
	pkts, err := cap.Stop()
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	cap.AddSecrets(l.keylog.Bytes())
	var files []string
	bad := 0
	for _, c := range l.tracer.Conns() {
		b, err := os.ReadFile(c.File)
		if err != nil || !bytes.Contains(b, []byte("transport:packet_sent")) {
			bad++
		}
		files = append(files, filepath.Base(c.File))
	}
	l.env.Check("a qlog file per connection endpoint beside the capture", bad == 0 && len(files) > 0,
		"%d files, %d incomplete: %s", len(files), bad, strings.Join(files, ", "))
	secrets := bytes.Count(l.keylog.Bytes(), []byte("TRAFFIC_SECRET_0"))
	l.env.Check("TLS secrets embedded in the capture", secrets >= 2, "%d traffic secrets in the decryption-secrets block", secrets)
	return pkts, nil
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
func captureOptions(port uint16) capture.Options { return capture.Options{Keep: udpPort(port)} }
