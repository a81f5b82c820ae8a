package tcpexp

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
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

// checkSequence checks SEQ and ACK on every captured segment of the
// connection, in the order the kernel stamped them on the loopback: the
// wrap, continuity both ways, monotone ACKs. The order in which the lab's
// raw socket received them is not used: on two CPUs two kernel segments
// can reach it in the other order, which is the path's doing, not the
// kernel's.
func (x *transfer) checkSequence() {
	s := seqContinuity(wireSegments(x.pkts, x.c.Local(), x.c.Remote()))
	x.env.Check("the lab's sequence numbers wrap past 2^32 mid-transfer", s.wraps == 1 && s.wrapAt > 1 && s.wrapAt < s.dataSegs,
		"ISS %d (2^32 - %d); the wrap falls in data segment %d of %d", x.iss, uint32(-x.iss), s.wrapAt, s.dataSegs)
	x.env.Check("no data segment skips sequence space (both directions); retransmissions are counted apart", s.gaps == 0,
		"%d gaps%s; %d retransmissions of octets already on the wire%s", s.gaps, listSuffix(s.gapInfo), s.resent, listSuffix(s.resentAt))
	x.env.Metric("retransmitted_segments_count", float64(s.resent))
	x.env.Check("every kernel ACK is monotone, in the order the kernel made its segments, and acknowledges only what the lab had put on the wire", s.badAcks == 0,
		"%d ACKs below an earlier one or beyond the lab's last byte captured before them%s; %d segments the kernel made before the one with a newer ACK (their sequence numbers end at or before its) reached the wire after it, with the older ACK of their making%s",
		s.badAcks, listSuffix(s.ackInfo), s.staleAcks, listSuffix(s.staleInfo))
	x.env.Metric("lab_data_segments_count", float64(s.dataSegs))
	x.env.Metric("lab_iss", float64(x.iss))
}

// wireSeg is one captured segment of a connection, as checkSequence reads it.
type wireSeg struct {
	fromLab  bool
	seq, ack tcpstate.Seq
	len      int
	flags    uint8 // capture.Flag* bits
}

// wireSegments picks the connection's segments (lab at local, kernel at
// remote) out of the capture, ordered by the kernel's timestamps.
func wireSegments(pkts []*capture.Packet, local, remote netip.AddrPort) []wireSeg {
	sorted := slices.Clone(pkts)
	slices.SortStableFunc(sorted, func(a, b *capture.Packet) int { return a.Time.Compare(b.Time) })
	var out []wireSeg
	for _, p := range sorted {
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		switch {
		case m.Src == local && m.Dst == remote:
			out = append(out, wireSeg{true, tcpstate.Seq(m.Seq), tcpstate.Seq(m.Ack), len(m.Payload), m.Flags})
		case m.Src == remote && m.Dst == local:
			out = append(out, wireSeg{false, tcpstate.Seq(m.Seq), tcpstate.Seq(m.Ack), len(m.Payload), m.Flags})
		}
	}
	return out
}

// seqReport is what a connection's segments say of its sequence numbers.
type seqReport struct {
	dataSegs int      // the lab's data segments
	wraps    int      // how many of them cross 2^32
	wrapAt   int      // the one that does (1-based)
	gaps     int      // data segments that start beyond where the stream had reached, either way
	gapInfo  []string // what each gap was
	resent   int      // data segments that repeat octets already on the wire (retransmissions), either way
	resentAt []string // what each was
	badAcks  int      // kernel ACKs below an earlier one or beyond what the lab had sent
	ackInfo  []string // what each bad ACK was
	// staleAcks are kernel segments that carried an older ACK number than
	// one already captured, but were made before the segment that carried
	// it: they end at or before its sequence number, which the kernel's
	// send sequence orders by making, and reached the wire after it.
	staleAcks int
	staleInfo []string
}

// follow judges one data segment [seq, end) of who's against next, where
// who's stream had reached: starting beyond it is a gap; starting before it
// is a retransmission (octets already on the wire, sent again when a timer
// fired before the ACK came: a starved receiver's doing, not a break in
// sequence space). next advances to the furthest end.
func (s *seqReport) follow(seq, end tcpstate.Seq, next *tcpstate.Seq, who string) {
	switch {
	case next.LessThan(seq):
		s.gaps++
		s.gapInfo = append(s.gapInfo, fmt.Sprintf("%s seq %d after %d", who, seq, *next))
	case seq.LessThan(*next):
		s.resent++
		s.resentAt = append(s.resentAt, fmt.Sprintf("%s seq %d again (the stream had reached %d)", who, seq, *next))
	}
	if next.LessThan(end) {
		*next = end
	}
}

// seqContinuity walks a connection's segments in wire order: each lab
// data segment must not start beyond where the lab's stream had reached
// (a repeat is a retransmission, counted apart), each kernel data segment
// likewise, and each kernel ACK must not pass the end of what the lab had
// sent before it (SYN and FIN count one each) and must not go back, except
// on a first transmission of kernel data that ends at or before the
// sequence number of the segment with the newer ACK: the kernel made it
// first, and it reached the wire second (staleAcks).
func seqContinuity(segs []wireSeg) seqReport {
	var s seqReport
	var nextSeq, lastAck, lastAckSeq, labEnd tcpstate.Seq
	var kernel coverage
	haveSeq, haveAck, haveLab := false, false, false
	for _, g := range segs {
		if g.fromLab {
			end := g.seq.Add(tcpstate.Size(g.len))
			if g.flags&(capture.FlagSYN|capture.FlagFIN) != 0 {
				end = end.Add(1)
			}
			if !haveLab || labEnd.LessThan(end) {
				labEnd, haveLab = end, true
			}
		}
		switch {
		case g.fromLab && g.len > 0:
			s.dataSegs++
			end := g.seq.Add(tcpstate.Size(g.len))
			advances := !haveSeq || nextSeq.LessThan(end)
			if haveSeq {
				s.follow(g.seq, end, &nextSeq, "lab")
			} else {
				nextSeq = end
			}
			if advances && end < g.seq { // numerically smaller: crossed 2^32 (a resend of that segment counts once)
				s.wraps++
				s.wrapAt = s.dataSegs
			}
			haveSeq = true
		case !g.fromLab:
			// The kernel's data is judged by what it covers, not by the
			// order it was captured in: two kernel segments can reach
			// the capture in the other order than the kernel made them
			// (a soak with no hogs caught one 16 µs ahead of the
			// segment before it). fresh: none of its octets were on the
			// wire before (a retransmission is made later than what it
			// repeats).
			fresh := false
			if g.len > 0 {
				end := g.seq.Add(tcpstate.Size(g.len))
				if kernel.add(g.seq, end) {
					s.resent++
					s.resentAt = append(s.resentAt, fmt.Sprintf("kernel seq %d again", g.seq))
				} else {
					fresh = true
				}
			}
			if g.flags&capture.FlagACK != 0 {
				end := g.seq.Add(tcpstate.Size(g.len))
				older := haveAck && g.ack.LessThan(lastAck)
				madeBefore := older && fresh && g.seq.LessThan(lastAckSeq) && !lastAckSeq.LessThan(end)
				switch {
				case !haveLab || labEnd.LessThan(g.ack) || (older && !madeBefore):
					s.badAcks++
					s.ackInfo = append(s.ackInfo, fmt.Sprintf("ack %d after %d, the lab's end %d", g.ack, lastAck, labEnd))
				case madeBefore:
					s.staleAcks++
					s.staleInfo = append(s.staleInfo, fmt.Sprintf("seq %d–%d ack %d, made before seq %d ack %d", g.seq, end, g.ack, lastAckSeq, lastAck))
					continue // the newer ACK stays the one to compare with
				}
				lastAck, lastAckSeq, haveAck = g.ack, g.seq, true
			}
		}
	}
	for _, h := range kernel.holes() {
		s.gaps++
		s.gapInfo = append(s.gapInfo, fmt.Sprintf("kernel octets %d–%d never on the wire", h[0], h[1]))
	}
	return s
}

// coverage is what one side's data segments covered of its sequence
// space: offsets from the first segment's sequence number (sequence
// arithmetic, so a stream may cross 2^32), merged into sorted intervals.
type coverage struct {
	base tcpstate.Seq
	have bool
	iv   [][2]int64
}

func (c *coverage) off(q tcpstate.Seq) int64 { return int64(int32(uint32(q) - uint32(c.base))) }

// add records [seq, end) and reports whether any of it was covered
// already (a retransmission).
func (c *coverage) add(seq, end tcpstate.Seq) (repeat bool) {
	if !c.have {
		c.base, c.have = seq, true
	}
	a, b := c.off(seq), c.off(end)
	out := c.iv[:0:0]
	for _, x := range c.iv {
		if x[1] > a && x[0] < b {
			repeat = true
		}
		if x[1] < a || x[0] > b { // apart, not even touching
			out = append(out, x)
			continue
		}
		a, b = min(a, x[0]), max(b, x[1])
	}
	out = append(out, [2]int64{a, b})
	slices.SortFunc(out, func(x, y [2]int64) int { return cmp.Compare(x[0], y[0]) })
	c.iv = out
	return repeat
}

// holes are the stretches between the covered intervals, as sequence
// numbers: octets never seen though octets after them were.
func (c *coverage) holes() [][2]tcpstate.Seq {
	var h [][2]tcpstate.Seq
	for i := 1; i < len(c.iv); i++ {
		h = append(h, [2]tcpstate.Seq{c.base.Add(tcpstate.Size(c.iv[i-1][1])), c.base.Add(tcpstate.Size(c.iv[i][0]))})
	}
	return h
}
