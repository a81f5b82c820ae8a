package tcpexp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

const transferBytes = 200 << 10

// tcp/transfer: 200 KiB each way at once between the lab and the kernel,
// the lab's ISN just below 2^32 so its sequence numbers wrap mid-transfer;
// the bytes compared on both ends and in the capture, SEQ and ACK checked
// on every segment.
func runTransfer(env *lab.Env) error {
	cfg := expConfig()
	// The lab's ISN: 60-100 KiB below 2^32, so the wrap falls mid-transfer
	// (from the seeded stream, so --seed repeats it).
	iss := tcpstate.Seq(0) - tcpstate.Seq(60<<10+env.Stream("iss").IntN(40<<10))
	cfg.ISS = func() tcpstate.Seq { return iss }
	r, err := newLabRun(env, cfg)
	if err != nil {
		return err
	}
	x := &transfer{labRun: r, iss: iss, up: make([]byte, transferBytes), down: make([]byte, transferBytes)}
	if _, err := io.ReadFull(env.Bytes("up"), x.up); err != nil {
		return err
	}
	if _, err := io.ReadFull(env.Bytes("down"), x.down); err != nil {
		return err
	}
	if err := x.exchange(); err != nil {
		return err
	}
	r.stop()
	x.checkCapture()
	x.checkSequence()
	r.states(tcpstate.SynSent, tcpstate.Established, tcpstate.Closed) // who closes first depends on scheduling
	env.Note("path: %s", path(x.c))
	r.ladderN("the transfer, first and last segments and the wrap", x.c, 10, 8, func(rec *rawtcp.Record) bool {
		return rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq.Add(tcpstate.Size(rec.Seg.Len)) < rec.Seg.Seq
	})
	return nil
}

// transfer is tcp/transfer's connection and data.
type transfer struct {
	*labRun
	iss      tcpstate.Seq
	c        *rawtcp.Conn
	up, down []byte // lab → kernel, kernel → lab
}

type readResult struct {
	b   []byte
	err error
}

// exchange sends up and down at once, each side closing its direction
// when done, and checks each side read the other's bytes.
func (x *transfer) exchange() error {
	env, ctx := x.env, x.env.Ctx
	// The kernel's receive buffer holds the whole transfer several times:
	// with the autotuned default, a kernel reader descheduled on a loaded
	// machine lets the window fill, and Wireshark flags the lab's segment
	// that fills it (window_full), which this experiment does not intend.
	kp, err := listenKernel(ctx, 4*transferBytes)
	if err != nil {
		return err
	}
	defer kp.Close()
	c, k, err := x.connectKernel(ctx, kp, "transfer", nil, 30*time.Second)
	if err != nil {
		return err
	}
	x.c = c
	kread, kwrite := kernelEnd(k, x.down)
	lread := make(chan readResult, 1)
	go func() { lread <- labReadAll(ctx, c) }()
	if _, err := c.WriteContext(ctx, x.up); err != nil {
		return fmt.Errorf("lab write: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	kr, lr := <-kread, <-lread
	if err := <-kwrite; err != nil {
		return fmt.Errorf("kernel write: %w", err)
	}
	if kr.err != nil || lr.err != nil {
		return fmt.Errorf("reads: kernel %v, lab %v", kr.err, lr.err)
	}
	if err := c.WaitState(ctx, tcpstate.Closed); err != nil {
		return err
	}
	env.Check("lab → kernel: the kernel read the lab's bytes (SHA-256)", bytes.Equal(kr.b, x.up),
		"sent %d bytes sha256 %s…, kernel read %d bytes sha256 %s…", len(x.up), sha8(x.up), len(kr.b), sha8(kr.b))
	env.Check("kernel → lab: the lab read the kernel's bytes (SHA-256)", bytes.Equal(lr.b, x.down),
		"sent %d bytes sha256 %s…, lab read %d bytes sha256 %s…", len(x.down), sha8(x.down), len(lr.b), sha8(lr.b))
	return nil
}

// kernelEnd reads k to EOF and writes down to it then closes its
// direction, each in a goroutine.
func kernelEnd(k *net.TCPConn, down []byte) (<-chan readResult, <-chan error) {
	kread := make(chan readResult, 1)
	go func() { b, err := io.ReadAll(k); kread <- readResult{b, err} }()
	kwrite := make(chan error, 1)
	go func() {
		_, err := k.Write(down)
		if err == nil {
			err = k.CloseWrite()
		}
		kwrite <- err
	}()
	return kread, kwrite
}

// labReadAll reads the lab's connection to EOF.
func labReadAll(ctx context.Context, c *rawtcp.Conn) readResult {
	var buf bytes.Buffer
	p := make([]byte, 32<<10)
	for {
		n, err := c.ReadContext(ctx, p)
		buf.Write(p[:n])
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return readResult{buf.Bytes(), err}
		}
	}
}

// sha8 is the first 8 bytes of b's SHA-256, in hex.
func sha8(b []byte) string { h := sha256.Sum256(b); return fmt.Sprintf("%x", h[:8]) }

// checkCapture reassembles both streams from the capture and compares
// them with the bytes sent.
func (x *transfer) checkCapture() {
	var capUp, capDown []byte
	for _, s := range capture.TCPStreams(x.pkts) {
		switch {
		case s.Src == x.c.Local():
			capUp = s.Data
		case s.Dst == x.c.Local():
			capDown = s.Data
		}
	}
	x.env.Check("the capture holds both streams byte for byte", bytes.Equal(capUp, x.up) && bytes.Equal(capDown, x.down),
		"capture: %d bytes up (sha256 %s…), %d bytes down (sha256 %s…)", len(capUp), sha8(capUp), len(capDown), sha8(capDown))
}

// checkSequence checks SEQ and ACK on every segment of the driver's
// records: the wrap, continuity both ways, monotone ACKs.
func (x *transfer) checkSequence() {
	s := seqContinuity(x.st.Records(), x.c.ID())
	x.env.Check("the lab's sequence numbers wrap past 2^32 mid-transfer", s.wraps == 1 && s.wrapAt > 1 && s.wrapAt < s.dataSegs,
		"ISS %d (2^32 - %d); the wrap falls in data segment %d of %d", x.iss, uint32(-x.iss), s.wrapAt, s.dataSegs)
	x.env.Check("every data segment continues the one before in sequence space (both directions)", s.gaps == 0, "%d gaps or repeats%s", s.gaps, listSuffix(s.gapInfo))
	x.env.Check("every kernel ACK is monotone and within the lab's SND.NXT", s.badAcks == 0, "%d ACKs out of order or beyond SND.NXT", s.badAcks)
	x.env.Metric("lab_data_segments_count", float64(s.dataSegs))
	x.env.Metric("lab_iss", float64(x.iss))
}

// seqReport is what a connection's records say of its sequence numbers.
type seqReport struct {
	dataSegs int      // the lab's data segments
	wraps    int      // how many of them cross 2^32
	wrapAt   int      // the one that does (1-based)
	gaps     int      // data segments that do not continue the one before, either way
	gapInfo  []string // what each gap was
	badAcks  int      // kernel ACKs below an earlier one or beyond the lab's SND.NXT
}

// seqContinuity walks connection id's records: each lab data segment must
// start where the one before ended (a retransmission would repeat), each
// kernel data segment likewise, and each kernel ACK must be monotone and
// within the SND.NXT the lab had when it arrived.
func seqContinuity(recs []rawtcp.Record, id int) seqReport {
	var s seqReport
	var nextSeq, lastAck, kernelSeq tcpstate.Seq
	haveSeq, haveAck, haveK := false, false, false
	for _, rec := range recs {
		if rec.Conn != id {
			continue
		}
		switch {
		case rec.Sent && rec.Seg.Len > 0:
			s.dataSegs++
			if haveSeq && rec.Seg.Seq != nextSeq {
				s.gaps++
				s.gapInfo = append(s.gapInfo, fmt.Sprintf("lab seq %d after %d (%s) at %v", rec.Seg.Seq, nextSeq, rec.Note, rec.At))
			}
			end := rec.Seg.Seq.Add(tcpstate.Size(rec.Seg.Len))
			if end < rec.Seg.Seq { // numerically smaller: crossed 2^32
				s.wraps++
				s.wrapAt = s.dataSegs
			}
			nextSeq, haveSeq = end, true
		case !rec.Sent:
			if rec.Seg.Len > 0 {
				if haveK && rec.Seg.Seq != kernelSeq {
					s.gaps++
					s.gapInfo = append(s.gapInfo, fmt.Sprintf("kernel seq %d after %d", rec.Seg.Seq, kernelSeq))
				}
				kernelSeq, haveK = rec.Seg.Seq.Add(tcpstate.Size(rec.Seg.Len)), true
			}
			if rec.Seg.Flags&tcpstate.ACK != 0 {
				if (haveAck && rec.Seg.Ack.LessThan(lastAck)) || rec.TCB.SndNxt.LessThan(rec.Seg.Ack) {
					s.badAcks++
				}
				lastAck, haveAck = rec.Seg.Ack, true
			}
		}
	}
	return s
}
