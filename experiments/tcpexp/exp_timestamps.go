package tcpexp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// tcp/timestamps: the lab and the kernel exchange timestamps (RFC 7323)
// over a few request/response rounds; the lab takes an RTT sample from the
// TSecr of every ACK of new data; then an old duplicate each way — a
// segment carrying a TSval older than the receiver's TS.Recent at the
// sequence number it expects next, as a segment from an earlier wrap of
// the sequence space would arrive — is refused by PAWS: by the kernel
// (its duplicate ACK, TcpExt PAWSEstab), and by the lab (its ACK, its
// PAWSRejected count). The bytes after each show neither side took it.

// tsRounds request/response rounds of tsRoundBytes each way.
const (
	tsRounds     = 5
	tsRoundBytes = 100
	tsWait       = 5 * time.Second
)

func runTimestamps(env *lab.Env) error {
	cfg := labConfig(env)
	r, kp, err := newKernelRun(env, cfg, 0)
	if err != nil {
		return err
	}
	x := &tsRun{labRun: r, kp: kp, spoofRec: -1}
	err = x.run()
	if x.c != nil {
		_ = x.c.Abort()
	}
	if err != nil {
		return err
	}
	r.stop()
	x.commentOldDuplicates()
	x.judge()
	x.tsTable()
	r.ladder("timestamps with the kernel, then an old duplicate each way refused by PAWS", x.c)
	r.states(tcpstate.Established, tcpstate.Closed)
	r.feature(featureTimestamps, featurePAWS)
	return nil
}

// tsRun is tcp/timestamps' connection and what it measured.
type tsRun struct {
	*labRun
	kp *kernelPeer
	c  *rawtcp.Conn
	k  *net.TCPConn

	mu          sync.Mutex
	firstKernel *tcpstate.Segment // the kernel's first data segment, as received

	roundsOK bool

	// The old duplicate to the kernel.
	injectedSeq   tcpstate.Seq
	injectedTS    uint32
	pawsEstab     [2]uint64 // TcpExt PAWSEstab before and after
	kernelReplied bool      // the kernel answered with an ACK of SND.NXT
	kernelErr     error
	kernelClean   bool // the kernel then read exactly the lab's next bytes

	// The old duplicate to the lab.
	spoofRec     int // its record, -1 for none
	spoofSeq     tcpstate.Seq
	spoofTS      uint32
	labPAWS      [2]uint32 // TCB.PAWSRejected before and after
	labReplied   bool      // the lab answered with an ACK of RCV.NXT
	labErr       error
	labClean     bool // the lab then read exactly the kernel's next bytes
	labRcvNxtOld tcpstate.Seq
}

func (x *tsRun) run() error {
	ctx := x.env.Ctx
	hook := func(s *tcpstate.Segment, _ *tcpstate.TCB) rawtcp.Verdict {
		x.mu.Lock()
		if x.firstKernel == nil && len(s.Payload) > 0 {
			cp := *s
			cp.Payload = bytes.Clone(s.Payload)
			x.firstKernel = &cp
		}
		x.mu.Unlock()
		return rawtcp.Pass
	}
	c, k, err := x.connectKernel(ctx, x.kp, "timestamps", &rawtcp.ConnOptions{RecvHook: hook}, 20*time.Second)
	if err != nil {
		return err
	}
	x.c, x.k = c, k
	ok := true
	for i := range tsRounds {
		good, err := x.round(fmt.Sprintf("round %d", i+1), true)
		if err != nil {
			return err
		}
		ok = ok && good
	}
	x.roundsOK = ok
	x.kernelErr = x.oldDuplicateToKernel()
	x.labErr = x.oldDuplicateToLab()
	return nil
}

// round sends tsRoundBytes one way (lab → kernel when labFirst) and as
// many back, and reports whether each side read exactly what the other
// wrote.
func (x *tsRun) round(name string, labFirst bool) (bool, error) {
	ctx := x.env.Ctx
	req, resp := make([]byte, tsRoundBytes), make([]byte, tsRoundBytes)
	if _, err := io.ReadFull(x.env.Bytes(name+" request"), req); err != nil {
		return false, err
	}
	if _, err := io.ReadFull(x.env.Bytes(name+" response"), resp); err != nil {
		return false, err
	}
	labToKernel := func(b []byte) (bool, error) {
		if _, err := x.c.WriteContext(ctx, b); err != nil {
			return false, fmt.Errorf("%s: lab write: %w", name, err)
		}
		got := make([]byte, len(b))
		if _, err := io.ReadFull(x.k, got); err != nil {
			return false, fmt.Errorf("%s: kernel read: %w", name, err)
		}
		return bytes.Equal(got, b), nil
	}
	kernelToLab := func(b []byte) (bool, error) {
		if _, err := x.k.Write(b); err != nil {
			return false, fmt.Errorf("%s: kernel write: %w", name, err)
		}
		got, err := labRead(ctx, x.c, len(b))
		if err != nil {
			return false, fmt.Errorf("%s: lab read: %w", name, err)
		}
		return bytes.Equal(got, b), nil
	}
	first, second := labToKernel, kernelToLab
	if !labFirst {
		first, second = kernelToLab, labToKernel
	}
	a, err := first(req)
	if err != nil {
		return false, err
	}
	b, err := second(resp)
	if err != nil {
		return false, err
	}
	// Quiet before the next step: everything the lab sent is acknowledged.
	err = x.c.WaitTCB(ctx, func(t *tcpstate.TCB) bool { return t.SndUna == t.SndNxt })
	return a && b, err
}

// labRead reads exactly n bytes from the lab's connection.
func labRead(ctx context.Context, c *rawtcp.Conn, n int) ([]byte, error) {
	got := make([]byte, n)
	for i := 0; i < n; {
		m, err := c.ReadContext(ctx, got[i:])
		if err != nil {
			return got[:i], err
		}
		i += m
	}
	return got, nil
}

// labSYNTSval is the TSval of the lab's SYN on connection id.
func labSYNTSval(recs []rawtcp.Record, id int) uint32 {
	for _, r := range recs {
		if r.Conn == id && r.Sent && r.Seg.Flags&tcpstate.SYN != 0 {
			return r.Seg.TSVal
		}
	}
	return 0
}

// oldDuplicateToKernel injects, from the lab's port, data at the kernel's
// RCV.NXT with a TSval from before the connection began: the kernel
// refuses it by PAWS and answers with a duplicate ACK.
func (x *tsRun) oldDuplicateToKernel() error {
	ctx, cancel := context.WithTimeout(x.env.Ctx, tsWait)
	defer cancel()
	before, err := readTcpExt("PAWSEstab")
	if err != nil {
		return err
	}
	t := x.c.TCB()
	x.injectedSeq = t.SndNxt
	x.injectedTS = labSYNTSval(x.st.Records(), x.c.ID()) - 1000
	mark := len(x.st.Records())
	seg := tcpstate.Segment{Flags: tcpstate.PSH | tcpstate.ACK, Seq: t.SndNxt, Ack: t.RcvNxt, Window: 512,
		Payload: []byte("an old duplicate, TSval from before the connection began"),
		Options: tcpstate.Options{HasTimestamps: true, TSVal: x.injectedTS, TSEcr: t.TSRecent}}
	if err := x.c.Faults().Inject(seg); err != nil {
		return err
	}
	id := x.c.ID()
	err = x.st.WaitRecords(ctx, func(recs []rawtcp.Record) bool {
		for _, r := range recs[min(mark, len(recs)):] {
			if r.Conn == id && !r.Sent && r.Seg.Len == 0 && r.Seg.Flags&tcpstate.ACK != 0 && r.Seg.Ack == t.SndNxt {
				return true
			}
		}
		return false
	})
	x.kernelReplied = err == nil
	// TcpExt counters are updated before the reply leaves.
	after, rerr := readTcpExt("PAWSEstab")
	if rerr != nil {
		return rerr
	}
	x.pawsEstab = [2]uint64{before, after}
	x.kernelClean, err = x.round("after the old duplicate to the kernel", true)
	return err
}

// oldDuplicateToLab replays the kernel's first data segment — its old
// TSval and TSecr, its bytes — from the kernel's address and port, at the
// lab's RCV.NXT: the lab refuses it by PAWS and answers with an ACK.
func (x *tsRun) oldDuplicateToLab() error {
	ctx, cancel := context.WithTimeout(x.env.Ctx, tsWait)
	defer cancel()
	x.mu.Lock()
	first := x.firstKernel
	x.mu.Unlock()
	if first == nil {
		return fmt.Errorf("no kernel data segment to replay")
	}
	t := x.c.TCB()
	seg := *first
	seg.Seq, seg.Ack = t.RcvNxt, t.SndNxt
	if int32(seg.Options.TSVal-t.TSRecent) >= 0 {
		// The rounds took less than a tick of the kernel's clock: the
		// first TSval is not yet old. One a second older stands in.
		seg.Options.TSVal = t.TSRecent - 1000
	}
	x.spoofSeq, x.spoofTS, x.labRcvNxtOld = seg.Seq, seg.Options.TSVal, t.RcvNxt
	x.labPAWS[0] = t.PAWSRejected
	mark := len(x.st.Records())
	if err := sendAs(kernelLocal(x.k), x.c.Local(), seg); err != nil {
		return err
	}
	id := x.c.ID()
	err := x.st.WaitRecords(ctx, func(recs []rawtcp.Record) bool {
		got := false
		for _, r := range recs[min(mark, len(recs)):] {
			if r.Conn != id {
				continue
			}
			if !r.Sent && r.Seg.Seq == seg.Seq && r.Seg.TSVal == seg.Options.TSVal && r.Seg.Len == len(seg.Payload) {
				got = true
			}
			if got && r.Sent && r.Seg.Flags == tcpstate.ACK && r.Seg.Ack == t.RcvNxt {
				return true
			}
		}
		return false
	})
	x.labReplied = err == nil
	x.labPAWS[1] = x.c.TCB().PAWSRejected
	x.labClean, err = x.round("after the old duplicate to the lab", false)
	return err
}

// readTcpExt reads one TcpExt counter of the lab's namespace.
func readTcpExt(name string) (uint64, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errNetstat, err)
	}
	m, err := parseNetstat(b)
	if err != nil {
		return 0, err
	}
	v, ok := m["TcpExt."+name]
	if !ok {
		return 0, fmt.Errorf("%w: no TcpExt counter %s", errNetstat, name)
	}
	return v, nil
}

// tsSample is one RTT sample the lab took from a TSecr.
type tsSample struct {
	at    time.Duration
	tsecr uint32
	rtt   time.Duration
	srtt  time.Duration
	rto   time.Duration
}

// tsSamples lists connection id's RTT samples: a received record whose
// TCB counts one more TSecr sample than the record before. The sample is
// recovered from SRTT as RFC 6298 folded it in (R = SRTT on the first;
// then SRTT' = 7/8 SRTT + 1/8 R, so R = 8 SRTT' − 7 SRTT, to within the
// nanoseconds RFC 6298's integer arithmetic drops; a sample is whole
// ticks of the timestamp clock).
func tsSamples(recs []rawtcp.Record, idx []int) []tsSample {
	var out []tsSample
	var n uint32
	var srtt time.Duration
	for _, i := range idx {
		r := &recs[i]
		if r.TCB.TSRTTSamples == n {
			srtt = r.TCB.SRTT
			continue
		}
		rtt := r.TCB.SRTT
		if n > 0 {
			rtt = 8*r.TCB.SRTT - 7*srtt
		}
		if !r.Sent && r.TCB.TSRTTSamples == n+1 {
			out = append(out, tsSample{at: r.At, tsecr: r.Seg.TSEcr, rtt: rtt, srtt: r.TCB.SRTT, rto: r.TCB.RTO})
		}
		n, srtt = r.TCB.TSRTTSamples, r.TCB.SRTT
	}
	return out
}

// tsEcho checks, in connection id's records, that every segment after the
// SYNs but a RST carries timestamps, that each side's TSecr echoes a TSval
// the other sent before, and that each side's TSvals never go back; the
// old duplicates (skip) are left out.
func tsEcho(recs []rawtcp.Record, idx []int, skip func(int) bool) (missing, badEcho, backwards int, segs int) {
	seen := [2]map[uint32]bool{{}, {}} // TSvals sent: [0] the kernel's, [1] the lab's
	var last [2]uint32
	var started [2]bool
	for _, i := range idx {
		r := &recs[i]
		if r.Seg.SrcPort == 0 && r.Seg.DstPort == 0 || skip(i) {
			continue
		}
		side := 0
		if r.Sent {
			side = 1
		}
		s := &r.Seg
		if s.Flags&tcpstate.RST != 0 {
			continue
		}
		segs++
		if !s.HasTS {
			missing++
			continue
		}
		if s.Flags&tcpstate.ACK != 0 && !seen[1-side][s.TSEcr] {
			badEcho++
		}
		if started[side] && int32(s.TSVal-last[side]) < 0 {
			backwards++
		}
		started[side], last[side] = true, s.TSVal
		seen[side][s.TSVal] = true
	}
	return missing, badEcho, backwards, segs
}

func (x *tsRun) judge() {
	env := x.env
	idx := x.connRecs(x.c.ID())
	t := x.c.TCB()
	var labSYN, kernelSYN bool
	for _, i := range idx {
		r := &x.recs[i]
		if r.Seg.Flags&tcpstate.SYN != 0 {
			if r.Sent {
				labSYN = r.Seg.HasTS
			} else {
				kernelSYN = r.Seg.HasTS
			}
		}
	}
	env.Check("timestamps negotiated: the lab's SYN and the kernel's SYN-ACK carry TSopt", labSYN && kernelSYN && t.TSOK,
		"lab SYN %v, kernel SYN-ACK %v, lab TCB timestamps on: %v", labSYN, kernelSYN, t.TSOK)
	env.Check("the request/response rounds arrive byte for byte", x.roundsOK, "%d rounds of %d bytes each way", tsRounds, tsRoundBytes)
	skip := func(i int) bool {
		r := &x.recs[i]
		return r.Note == "injected" || i == x.spoofRec
	}
	missing, badEcho, back, segs := tsEcho(x.recs, idx, skip)
	env.Check("every segment after the handshake carries timestamps, both ways", missing == 0, "%d of %d segments without TSopt", missing, segs)
	env.Check("each side echoes in TSecr a TSval the other sent, and neither side's TSval goes back", badEcho == 0 && back == 0,
		"%d echoes of a TSval never sent, %d TSvals going back (the two old duplicates left out)", badEcho, back)
	samples := tsSamples(x.recs, idx)
	rows := [][]string{{"at", "TSecr", "RTT sample", "SRTT after", "RTO after"}}
	for _, s := range samples {
		rows = append(rows, []string{s.at.Round(time.Microsecond).String(), strconv.FormatUint(uint64(s.tsecr), 10),
			s.rtt.Round(time.Millisecond).String(), s.srtt.String(), s.rto.String()})
	}
	env.Table("the lab's RTT samples from TSecr (RFC 7323 §4, into RFC 6298; the sample recovered from SRTT)", rows)
	env.Check("the lab takes an RTT sample from the TSecr of the ACKs of its data (at least one per round)", len(samples) >= tsRounds && t.TSRTTSamples >= tsRounds,
		"%d samples (TCB counts %d); SRTT %v, RTTVAR %v, RTO %v (MinRTO %v)", len(samples), t.TSRTTSamples, t.SRTT, t.RTTVar, t.RTO, expConfig().MinRTO)
	env.Metric("rtt_samples_count", float64(len(samples)))
	env.Metric("srtt_us", float64(t.SRTT.Microseconds()))

	d := x.pawsEstab[1] - x.pawsEstab[0]
	env.Check("PAWS on the kernel's side: an old duplicate (TSval older than TS.Recent) at its RCV.NXT is refused — a duplicate ACK, TcpExt PAWSEstab +1, and its bytes never read",
		x.kernelErr == nil && x.kernelReplied && d >= 1 && x.kernelClean,
		"injected %d bytes at the kernel's RCV.NXT (relative %d) with TSval %d; the kernel's reply ACKs SND.NXT: %v; PAWSEstab %d → %d; the kernel then read exactly the lab's next %d bytes: %v%s",
		len("an old duplicate, TSval from before the connection began"), x.injectedSeq-t.ISS, x.injectedTS, x.kernelReplied,
		x.pawsEstab[0], x.pawsEstab[1], tsRoundBytes, x.kernelClean, errSuffix(x.kernelErr))
	env.Table("the kernel's TcpExt PAWSEstab (per namespace, /proc/net/netstat)", [][]string{{"counter", "before", "after", "Δ"},
		{"TcpExt PAWSEstab", strconv.FormatUint(x.pawsEstab[0], 10), strconv.FormatUint(x.pawsEstab[1], 10), "+" + strconv.FormatUint(d, 10)}})
	env.Metric("kernel_paws_estab_delta_count", float64(d))

	dl := x.labPAWS[1] - x.labPAWS[0]
	env.Check("PAWS on the lab's side: the kernel's first data segment replayed at the lab's RCV.NXT with its old TSval is refused — an ACK of RCV.NXT, PAWSRejected +1, and its bytes never read",
		x.labErr == nil && x.labReplied && dl == 1 && x.labClean,
		"replayed %d bytes at the lab's RCV.NXT (relative %d) with TSval %d (TS.Recent %d); the lab's reply ACKs RCV.NXT: %v; PAWSRejected %d → %d; the lab then read exactly the kernel's next %d bytes: %v%s",
		x.spoofLen(), x.spoofSeq-t.IRS, x.spoofTS, t.TSRecent, x.labReplied, x.labPAWS[0], x.labPAWS[1], tsRoundBytes, x.labClean, errSuffix(x.labErr))
	env.Metric("lab_paws_rejected_count", float64(dl))
}

func (x *tsRun) spoofLen() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.firstKernel == nil {
		return 0
	}
	return len(x.firstKernel.Payload)
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return "; " + err.Error()
}

// commentOldDuplicates says on the two old duplicates' packets what they
// are (the injected one's record already says "injected").
func (x *tsRun) commentOldDuplicates() {
	for _, i := range x.connRecs(x.c.ID()) {
		r := &x.recs[i]
		p, ok := x.recPkt[i]
		if !ok {
			continue
		}
		switch {
		case r.Note == "injected" && r.Seg.TSVal == x.injectedTS:
			x.pkts[p].Comment(fmt.Sprintf("an old duplicate injected by the experiment: TSval %d is older than the kernel's TS.Recent; PAWS (RFC 7323 §5) refuses it", r.Seg.TSVal))
		case !r.Sent && r.Seg.Seq == x.spoofSeq && r.Seg.TSVal == x.spoofTS && r.Seg.Len > 0 && x.spoofRec < 0:
			x.spoofRec = i
			r.Note = "old duplicate replayed by the experiment"
			x.pkts[p].Comment(fmt.Sprintf("an old duplicate sent by the experiment from the kernel's address: the kernel's first data segment replayed at the lab's RCV.NXT with its old TSval %d; the lab's PAWS refuses it", r.Seg.TSVal))
		}
	}
}

// tsTable lists every segment's timestamps beside the lab's TS.Recent, the
// values relative to each side's first TSval (its SYN's), in ticks of the
// sender's clock (1 ms for both).
func (x *tsRun) tsTable() {
	idx := x.connRecs(x.c.ID())
	var base [2]uint32 // [0] the kernel's first TSval, [1] the lab's
	var have [2]bool
	rows := [][]string{{"frame", "from", "segment", "TSval (Δ own first)", "TSecr (Δ other's first)", "lab TS.Recent after"}}
	for _, i := range idx {
		r := &x.recs[i]
		if !r.Seg.HasTS {
			continue
		}
		side := 0
		if r.Sent {
			side = 1
		}
		if !have[side] {
			base[side], have[side] = r.Seg.TSVal, true
		}
		rel := func(v, b uint32, ok bool) string {
			if !ok {
				return strconv.FormatUint(uint64(v), 10)
			}
			return fmt.Sprintf("%d (%+d)", v, int32(v-b))
		}
		from := "kernel"
		if r.Sent {
			from = "lab"
		}
		what := r.Seg.Flags.String()
		if r.Seg.Len > 0 {
			what += fmt.Sprintf(" len=%d", r.Seg.Len)
		}
		if r.Note != "" {
			what += " (" + r.Note + ")"
		}
		ecr := "—"
		if r.Seg.Flags&tcpstate.ACK != 0 {
			ecr = rel(r.Seg.TSEcr, base[1-side], have[1-side])
		}
		rows = append(rows, []string{strconv.Itoa(x.frameOfRec(i)), from, what, rel(r.Seg.TSVal, base[side], true), ecr,
			strconv.FormatUint(uint64(r.TCB.TSRecent), 10)})
	}
	x.env.Table("timestamps on the wire (frame 0: not in the capture)", rows)
}
