package tcpstate

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
)

func init() {
	register(lab.Experiment{
		Name:    "tcp/transfer",
		Summary: "200 KiB each way between the engine and the kernel, the lab's sequence numbers wrapping past 2^32",
		Shows: "Data flows both ways between the lab's engine and the kernel with SEQ and ACK tracked on every segment; " +
			"the lab's ISN sits just below 2^32 so its sequence numbers wrap mid-transfer, and both sides (and the " +
			"capture) hold the same bytes by SHA-256.",
		Run: runTransfer,
	})
}

const transferBytes = 200 << 10

func runTransfer(env *lab.Env) error {
	cfg := expConfig()
	// The lab's ISN: 60-100 KiB below 2^32, so the wrap falls mid-transfer
	// (from the seeded stream, so --seed repeats it).
	iss := Seq(0) - Seq(60<<10+env.Stream("iss").IntN(40<<10))
	cfg.ISS = func() Seq { return iss }
	r, err := newLabRun(env, cfg)
	if err != nil {
		return err
	}
	ctx := env.Ctx
	// The kernel's receive buffer holds the whole transfer several times:
	// with the autotuned default, a kernel reader descheduled on a loaded
	// machine lets the window fill, and Wireshark flags the lab's segment
	// that fills it (window_full), which this experiment does not intend.
	kp, err := listenKernel(ctx, 4*transferBytes)
	if err != nil {
		return err
	}
	defer kp.Close()

	up := make([]byte, transferBytes)   // lab → kernel
	down := make([]byte, transferBytes) // kernel → lab
	if _, err := io.ReadFull(env.Bytes("up"), up); err != nil {
		return err
	}
	if _, err := io.ReadFull(env.Bytes("down"), down); err != nil {
		return err
	}
	c, k, err := r.connectKernel(ctx, kp, "transfer", nil, 30*time.Second)
	if err != nil {
		return err
	}

	type result struct {
		b   []byte
		err error
	}
	kread := make(chan result, 1)
	go func() { b, err := io.ReadAll(k); kread <- result{b, err} }()
	kwrite := make(chan error, 1)
	go func() {
		_, err := k.Write(down)
		if err == nil {
			err = k.CloseWrite()
		}
		kwrite <- err
	}()
	lread := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		p := make([]byte, 32<<10)
		for {
			n, err := c.ReadContext(ctx, p)
			buf.Write(p[:n])
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				lread <- result{buf.Bytes(), err}
				return
			}
		}
	}()
	if _, err := c.WriteContext(ctx, up); err != nil {
		return fmt.Errorf("lab write: %w", err)
	}
	if err := c.Close(); err != nil {
		return err
	}
	kr, lr := <-kread, <-lread
	if err := <-kwrite; err != nil {
		return fmt.Errorf("kernel write: %w", err)
	}
	if kr.err != nil || lr.err != nil {
		return fmt.Errorf("reads: kernel %v, lab %v", kr.err, lr.err)
	}
	if err := c.WaitState(ctx, Closed); err != nil {
		return err
	}
	hex := func(b []byte) string { h := sha256.Sum256(b); return fmt.Sprintf("%x", h[:8]) }
	env.Check("lab → kernel: the kernel read the lab's bytes (SHA-256)", bytes.Equal(kr.b, up),
		"sent %d bytes sha256 %s…, kernel read %d bytes sha256 %s…", len(up), hex(up), len(kr.b), hex(kr.b))
	env.Check("kernel → lab: the lab read the kernel's bytes (SHA-256)", bytes.Equal(lr.b, down),
		"sent %d bytes sha256 %s…, lab read %d bytes sha256 %s…", len(down), hex(down), len(lr.b), hex(lr.b))

	r.stop()
	// The same bytes, reassembled from the capture.
	var capUp, capDown []byte
	for _, s := range capture.TCPStreams(r.pkts) {
		switch {
		case s.Src == c.Local():
			capUp = s.Data
		case s.Dst == c.Local():
			capDown = s.Data
		}
	}
	env.Check("the capture holds both streams byte for byte", bytes.Equal(capUp, up) && bytes.Equal(capDown, down),
		"capture: %d bytes up (sha256 %s…), %d bytes down (sha256 %s…)", len(capUp), hex(capUp), len(capDown), hex(capDown))

	// SEQ/ACK per segment, from the driver's records.
	var wrapAt int
	var gapInfo []string
	var dataSegs, gaps, badAcks, wraps int
	var nextSeq Seq
	var lastAck Seq
	haveSeq, haveAck := false, false
	var kernelSeq Seq
	haveK := false
	for _, rec := range r.st.Records() {
		if rec.Conn != c.ID() {
			continue
		}
		switch {
		case rec.Sent && rec.Seg.Len > 0:
			dataSegs++
			if haveSeq && rec.Seg.Seq != nextSeq {
				gaps++
				gapInfo = append(gapInfo, fmt.Sprintf("lab seq %d after %d (%s) at %v", rec.Seg.Seq, nextSeq, rec.Note, rec.At))
			}
			end := rec.Seg.Seq.Add(Size(rec.Seg.Len))
			if end < rec.Seg.Seq { // numerically smaller: crossed 2^32
				wraps++
				wrapAt = dataSegs
			}
			nextSeq, haveSeq = end, true
		case !rec.Sent:
			if rec.Seg.Len > 0 {
				if haveK && rec.Seg.Seq != kernelSeq {
					gaps++
					gapInfo = append(gapInfo, fmt.Sprintf("kernel seq %d after %d", rec.Seg.Seq, kernelSeq))
				}
				kernelSeq, haveK = rec.Seg.Seq.Add(Size(rec.Seg.Len)), true
			}
			if rec.Seg.Flags&ACK != 0 {
				if (haveAck && rec.Seg.Ack.LessThan(lastAck)) || rec.TCB.SndNxt.LessThan(rec.Seg.Ack) {
					badAcks++
				}
				lastAck, haveAck = rec.Seg.Ack, true
			}
		}
	}
	env.Check("the lab's sequence numbers wrap past 2^32 mid-transfer", wraps == 1 && wrapAt > 1 && wrapAt < dataSegs,
		"ISS %d (2^32 - %d); the wrap falls in data segment %d of %d", iss, uint32(-iss), wrapAt, dataSegs)
	env.Check("every data segment continues the one before in sequence space (both directions)", gaps == 0, "%d gaps or repeats%s", gaps, listSuffix(gapInfo))
	env.Check("every kernel ACK is monotone and within the lab's SND.NXT", badAcks == 0, "%d ACKs out of order or beyond SND.NXT", badAcks)
	env.Metric("lab_data_segments_count", float64(dataSegs))
	env.Metric("lab_iss", float64(iss))
	r.states(SynSent, Established, Closed) // who closes first depends on scheduling
	env.Note("path: %s", path(c))
	r.ladderN("the transfer, first and last segments and the wrap", c, 10, 8, func(rec *Record) bool {
		return rec.Sent && rec.Seg.Len > 0 && rec.Seg.Seq.Add(Size(rec.Seg.Len)) < rec.Seg.Seq
	})
	return nil
}
