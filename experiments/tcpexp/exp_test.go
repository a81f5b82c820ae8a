package tcpexp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/tcpstate"
)

// TestExperiments runs every tcp/ experiment against the kernel and checks
// its capture with tshark when tshark is available.
func TestExperiments(t *testing.T) {
	for _, e := range Experiments() {
		if e.Group() != "tcp" {
			continue
		}
		t.Run(strings.ReplaceAll(e.Name, "/", "_"), func(t *testing.T) {
			out := t.TempDir()
			r := lab.RunOne(context.Background(), e, lab.Options{OutDir: out, Seed: 1})
			if !r.Passed {
				var b strings.Builder
				_ = r.WriteText(&b)
				t.Fatalf("%s failed: %s %v\n%s", e.Name, r.Error, r.Failed(), b.String())
			}
			if testing.Verbose() {
				var b strings.Builder
				_ = r.WriteText(&b)
				t.Log(b.String())
			}
			for _, c := range r.Captures {
				checkComments(t, e.Short(), c)
				checkCapture(t, e.Short(), c)
				checkFields(t, e.Short(), c)
			}
		})
	}
}

// intendedFlags lists the tcp.analysis flags each experiment sets out to
// produce; any other flag in its capture fails the test.
var intendedFlags = map[string][]string{
	"retransmit": {"retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order", "lost_segment", "ack_lost_segment"},
	"window":     {"zero_window", "zero_window_probe", "zero_window_probe_ack", "window_full"},
	// tcp/sack loses segments of bursts both ways: duplicate ACKs and
	// retransmissions, the NewReno legs' resending data the receiver held.
	// tcp/timestamps sends an old duplicate each way: the receiver's
	// duplicate ACK, and the replayed kernel segment is a retransmission of
	// bytes at a sequence number the kernel then sends again.
	"timestamps": {"retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order", "lost_segment", "ack_lost_segment"},
	"sack":       {"retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack", "out_of_order", "lost_segment", "ack_lost_segment"},
	// tcp/syn-cookies waits for the request sockets to retransmit their
	// SYN-ACKs, sends new SYNs from one port (each draws a cookie of its
	// own) and an ACK one past the cookie.
	"syn-cookies": {"retransmission", "reused_ports", "ack_lost_segment"},
	// tcp/keepalive's probes both ways, and their answers; its user-timeout
	// leg retransmits data the kernel has (its ACKs dropped by the link),
	// and the kernel answers each copy with a duplicate ACK.
	"keepalive": {"keep_alive", "keep_alive_ack", "retransmission", "spurious_retransmission", "duplicate_ack"},
}

var analysisFlags = []string{"retransmission", "fast_retransmission", "spurious_retransmission", "duplicate_ack",
	"out_of_order", "lost_segment", "ack_lost_segment", "zero_window", "zero_window_probe", "zero_window_probe_ack",
	"window_full", "keep_alive", "keep_alive_ack", "reused_ports"}

func checkCapture(t *testing.T, short, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if st.Size() > 1<<20 {
		t.Errorf("capture %s is %d bytes, want < 1 MiB", filepath.Base(path), st.Size())
	}
	if labtest.LookTool(t, "tshark") == "" {
		return // the experiment's own checks stand; the capture is not opened
	}
	allowed := map[string]bool{}
	for _, f := range intendedFlags[short] {
		allowed[f] = true
	}
	// Outside tcp/retransmit and tcp/window no flag is intended, with one
	// exception: in a simultaneous open each side sends SYN, then SYN,ACK
	// with the same sequence number, and Wireshark calls the SYN,ACK a
	// retransmission. Those frames, and only those, may carry that flag,
	// and the experiment comments them with why.
	exempt := short == "simultaneous"
	var filter []string
	for _, f := range analysisFlags {
		if !allowed[f] && !(exempt && f == "retransmission") {
			filter = append(filter, "tcp.analysis."+f)
		}
	}
	filter = append(filter, "_ws.malformed", "_ws.expert.severity == error")
	if s := unexplained(t, path, tsharkFields(t, path, strings.Join(filter, " || ")), filter); len(s) > 0 {
		out := labtest.Tshark(t, path, "-Y", strings.Join(filter, " || "), "-T", "fields",
			"-e", "frame.number", "-e", "frame.time_relative", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.str",
			"-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "tcp.analysis.flags", "-e", "_ws.expert.message", "-e", "frame.comment")
		t.Errorf("capture %s has unintended analysis flags or malformed packets (frames %v):\n%s", filepath.Base(path), s, out)
	}
	if exempt {
		flagged := tsharkFields(t, path, "tcp.analysis.retransmission")
		synacks := tsharkFields(t, path, "tcp.flags.syn == 1 && tcp.flags.ack == 1")
		explained := tsharkFields(t, path, "tcp.analysis.retransmission && frame.comment contains \"Wireshark\"")
		isSynAck := map[string]bool{}
		for _, f := range synacks {
			isSynAck[f] = true
		}
		for _, f := range flagged {
			if !isSynAck[f] {
				t.Errorf("capture %s: frame %s is flagged a retransmission and is not a simultaneous-open SYN,ACK", filepath.Base(path), f)
			}
		}
		if strings.Join(flagged, ",") != strings.Join(synacks, ",") {
			t.Errorf("capture %s: retransmission-flagged frames %v, want exactly the SYN,ACK frames %v", filepath.Base(path), flagged, synacks)
		}
		if len(explained) != len(flagged) {
			t.Errorf("capture %s: flagged SYN,ACK frames %v, of which %v carry the comment explaining the flag", filepath.Base(path), flagged, explained)
		}
		t.Logf("retransmission-flagged frames %v; SYN,ACK frames %v", flagged, synacks)
	}
	if labtest.TsharkCount(t, path, "frame.comment contains \"lab \"") == 0 {
		t.Errorf("capture %s: no packet carries a lab comment", filepath.Base(path))
	}
	for _, p := range relativeSeqProblems(t, path) {
		t.Errorf("capture %s: %s", filepath.Base(path), p)
	}
}

// checkComments checks a tcp capture's comments as read back from the
// file.
func checkComments(t *testing.T, short, path string) {
	t.Helper()
	f, err := capture.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	for _, p := range commentProblems(f.Packets) {
		t.Errorf("capture %s: %s", filepath.Base(path), p)
	}
	if short == "retransmit" {
		var third bool
		for _, p := range f.Packets {
			for _, c := range p.Comments {
				third = third || (strings.HasPrefix(c, "3rd transmission of seq 1–100 by the lab") && strings.Contains(c, "dropped by the lab's simulated loss"))
			}
		}
		if !third {
			t.Errorf("capture %s: no comment names the 3rd transmission of seq 1–100 and the two copies the simulated loss dropped", filepath.Base(path))
		}
	}
}

// labPort: the lab's ports (LinkConfig's default range).
func labPort(ap netip.AddrPort) bool { return ap.Port() >= 61000 && ap.Port() <= 61999 }

// commentProblems lists what is wrong with the comments of a tcp capture:
// a packet without one; a kernel segment sent before the kernel's FIN
// commented with a state that only sending the FIN enters; a lab ISS that
// is not the sequence number of the lab's SYN it is written on.
func commentProblems(pkts []*capture.Packet) []string {
	var out []string
	type tuple struct{ lab, kernel netip.AddrPort }
	kernelFIN := map[tuple]bool{}
	for i, p := range pkts {
		frame := i + 1
		if len(p.Comments) == 0 {
			out = append(out, fmt.Sprintf("frame %d has no comment", frame))
			continue
		}
		m, ok := p.Decode()
		if !ok || m.Proto != capture.ProtoTCP {
			continue
		}
		fromLab := labPort(m.Src)
		tu := tuple{m.Src, m.Dst}
		if !fromLab {
			tu = tuple{m.Dst, m.Src}
		}
		if m.Flags&(capture.FlagSYN|capture.FlagACK) == capture.FlagSYN {
			kernelFIN[tu] = false // a new connection
		}
		for _, c := range p.Comments {
			if !fromLab && !kernelFIN[tu] && m.Flags&capture.FlagFIN == 0 {
				for _, st := range []string{"kernel FIN-WAIT-1", "kernel CLOSING", "kernel LAST-ACK"} {
					if strings.HasPrefix(c, st) {
						out = append(out, fmt.Sprintf("frame %d, a kernel segment sent before the kernel's FIN, says %q", frame, c))
					}
				}
			}
			var iss uint32
			if _, err := fmt.Sscanf(c, "lab ISS %d", &iss); err == nil && (!fromLab || m.Flags&capture.FlagSYN == 0 || iss != m.Seq) {
				out = append(out, fmt.Sprintf("frame %d (seq %d): %q", frame, m.Seq, c))
			}
		}
		if !fromLab && m.Flags&capture.FlagFIN != 0 {
			kernelFIN[tu] = true
		}
	}
	return out
}

// relativeSeqProblems compares the relative sequence numbers the comments
// use (conversations' bases) with the ones tshark shows.
func relativeSeqProblems(t *testing.T, path string) []string {
	t.Helper()
	f, err := capture.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	convs, of := conversations(f.Packets, func(m capture.Meta) bool { return labPort(m.Src) })
	out := labtest.Tshark(t, path, "-T", "fields", "-e", "frame.number", "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.flags.ack")
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var frame int
		var seq, ack, hasAck string
		fields := strings.Split(line, "\t")
		if len(fields) < 4 {
			continue
		}
		if _, err := fmt.Sscan(fields[0], &frame); err != nil || frame < 1 || frame > len(f.Packets) {
			continue
		}
		seq, ack, hasAck = fields[1], fields[2], fields[3]
		i := frame - 1
		if of[i] < 0 {
			problems = append(problems, fmt.Sprintf("frame %d is in no connection", frame))
			continue
		}
		c := convs[of[i]]
		m, _ := f.Packets[i].Decode()
		sb, ab := c.peerBase, c.labBase
		if labPort(m.Src) {
			sb, ab = c.labBase, c.peerBase
		}
		if got := sb.rel(m.Seq); got != seq {
			problems = append(problems, fmt.Sprintf("frame %d: relative seq %s, tshark %s", frame, got, seq))
		}
		if hasAck == "1" || hasAck == "True" {
			if got := ab.rel(m.Ack); got != ack {
				problems = append(problems, fmt.Sprintf("frame %d: relative ack %s, tshark %s", frame, got, ack))
			}
		}
	}
	return problems
}

// tsharkFields returns the numbers of the frames of path matching filter.
func tsharkFields(t *testing.T, path, filter string) []string {
	t.Helper()
	return strings.Fields(labtest.Tshark(t, path, "-Y", filter, "-T", "fields", "-e", "frame.number"))
}

// TestSeedRepeatsTheLabsChoices runs tcp/handshake twice with one seed and
// once with another: the lab's ISSs and ports (its choices) repeat with
// the seed; the kernel's may differ.
func TestSeedRepeatsTheLabsChoices(t *testing.T) {
	e, ok := experiment("tcp/handshake")
	if !ok {
		t.Fatal("tcp/handshake not registered")
	}
	choices := func(seed uint64) string {
		r := lab.RunOne(context.Background(), e, lab.Options{OutDir: t.TempDir(), Seed: seed})
		if !r.Passed || len(r.Captures) != 1 {
			t.Fatalf("seed %d: passed %v, captures %v: %s", seed, r.Passed, r.Captures, r.Error)
		}
		f, err := capture.ReadFile(r.Captures[0])
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, p := range f.Packets {
			m, _ := p.Decode()
			if labPort(m.Src) {
				fmt.Fprintf(&b, "port %d; ", m.Src.Port())
			}
			for _, c := range p.Comments {
				if strings.HasPrefix(c, "lab ISS") {
					b.WriteString(c + "; ")
				}
			}
		}
		return b.String()
	}
	a, b, c := choices(7), choices(7), choices(8)
	if a != b {
		t.Errorf("seed 7 twice:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 7 and 8 made the same choices: %s", a)
	}
}

// unexplained returns the flagged frames a starved reader does not
// explain. On a busy machine a retransmission timer can fire before the
// ACK is read, and the capture shows the evidence: the lab's resend that
// Wireshark flags spurious (the kernel's ACK of it was on the wire before
// it: the lab had not read it yet), or the kernel's resend of data the lab
// acknowledges later on the wire (the lab was late, not silent), each once
// per sequence range, and the duplicate ACK that answers one of those —
// one answer per excused resend, from the other side, whenever a starved
// receiver gets to it (it may send it after later segments of the
// resender's). They are logged. Any other flag, or one of those on a frame that also
// carries another, stays unexplained.
func unexplained(t *testing.T, path string, flagged, filter []string) []string {
	t.Helper()
	if len(flagged) == 0 {
		return nil
	}
	set := func(f string) map[string]bool {
		m := map[string]bool{}
		for _, n := range tsharkFields(t, path, f) {
			m[n] = true
		}
		return m
	}
	var others []string
	for _, f := range filter {
		if f != "tcp.analysis.retransmission" && f != "tcp.analysis.spurious_retransmission" && f != "tcp.analysis.duplicate_ack" {
			others = append(others, f)
		}
	}
	other := set(strings.Join(others, " || "))
	retx := set("tcp.analysis.retransmission || tcp.analysis.spurious_retransmission")
	spurious := set("tcp.analysis.spurious_retransmission")
	dup := set("tcp.analysis.duplicate_ack")
	type frame struct {
		n, stream, src   string
		seq, ack, length uint64
		kernel           bool
	}
	var frames []frame
	for _, line := range strings.Split(labtest.Tshark(t, path, "-T", "fields", "-e", "frame.number", "-e", "tcp.stream",
		"-e", "tcp.srcport", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "frame.comment"), "\n") {
		f := strings.SplitN(line, "\t", 7)
		if len(f) < 6 {
			continue
		}
		seq, _ := strconv.ParseUint(f[3], 10, 32)
		ack, _ := strconv.ParseUint(f[4], 10, 32)
		n, _ := strconv.ParseUint(f[5], 10, 32)
		frames = append(frames, frame{f[0], f[1], f[2], seq, ack, n, len(f) == 7 && strings.Contains(f[6], "side=kernel")})
	}
	// ackedLater: a frame of the other side after index i in i's stream
	// acknowledges all of i's data (sequence numbers compared mod 2^32).
	ackedLater := func(i int) bool {
		end := tcpstate.Seq(frames[i].seq).Add(tcpstate.Size(frames[i].length))
		for _, g := range frames[i+1:] {
			if g.stream == frames[i].stream && g.src != frames[i].src && end.LessThanEq(tcpstate.Seq(g.ack)) {
				return true
			}
		}
		return false
	}
	excused := map[string]bool{}
	once := map[string]bool{} // stream/src/seq of a resend already excused
	// unanswered counts, by stream and resender, the excused resends the
	// other side has not yet answered with a duplicate ACK.
	unanswered := map[string]map[string]int{}
	for i, f := range frames {
		key := f.stream + "/" + f.src + "/" + strconv.FormatUint(f.seq, 10)
		switch {
		case other[f.n]:
		case retx[f.n] && !dup[f.n] && !once[key] && (f.kernel && ackedLater(i) || !f.kernel && spurious[f.n]):
			excused[f.n], once[key] = true, true
			if unanswered[f.stream] == nil {
				unanswered[f.stream] = map[string]int{}
			}
			unanswered[f.stream][f.src]++
		case dup[f.n] && !retx[f.n]:
			for src, n := range unanswered[f.stream] {
				if src != f.src && n > 0 {
					excused[f.n] = true
					unanswered[f.stream][src]--
					break
				}
			}
		}
	}
	var out, ok []string
	for _, n := range flagged {
		if excused[n] {
			ok = append(ok, n)
		} else {
			out = append(out, n)
		}
	}
	if len(ok) > 0 {
		t.Logf("capture %s: frames %v are resends a timer sent before a starved reader read the ACK (or their duplicate ACKs)", filepath.Base(path), ok)
	}
	return out
}

// unexplained excuses a resend a starved reader explains and the one
// duplicate ACK that answers it, even when the starved side sends that
// answer after later segments of the resender's (race soak with two hogs:
// tcp/nagle-delayed-ack's lab answered the kernel's resend after the
// kernel's next segment), but no duplicate ACK that answers nothing.
func TestUnexplainedExcusesTheAnswerToAnExcusedResend(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	const k, l = false, true
	W := func(flags uint8, seq, a uint32, n int, fromLab bool) *capture.Packet {
		p := tcpFrame(testKernel, testLab, flags, seq, a, n)
		side := "kernel"
		if fromLab {
			p, side = tcpFrame(testLab, testKernel, flags, seq, a, n), "lab"
		}
		binary.BigEndian.PutUint16(p.Data[14+20+14:], 65535) // a window: a zero one is a flag of its own
		p.Comment("[statelab side=" + side + "]")
		return p
	}
	handshake := []*capture.Packet{W(wSYN, 1000, 0, 0, l), W(wSYN|wACK, 5000, 1001, 0, k), W(wACK, 1001, 5001, 0, l)}
	tests := []struct {
		name string
		pkts []*capture.Packet
		want int // frames left unexplained
	}{
		{"the answer after the resender's next segment", []*capture.Packet{
			W(0x18, 5001, 1001, 8, k), W(0x18, 5001, 1001, 8, k), W(0x18, 5009, 1001, 8, k),
			W(wACK, 1001, 5001, 0, l), W(wACK, 1001, 5017, 0, l)}, 0},
		{"the answer right after the resend", []*capture.Packet{
			W(0x18, 5001, 1001, 8, k), W(0x18, 5001, 1001, 8, k),
			W(wACK, 1001, 5001, 0, l), W(wACK, 1001, 5009, 0, l)}, 0},
		{"two duplicate ACKs for one resend: the second answers nothing", []*capture.Packet{
			W(0x18, 5001, 1001, 8, k), W(0x18, 5001, 1001, 8, k),
			W(wACK, 1001, 5001, 0, l), W(wACK, 1001, 5001, 0, l), W(wACK, 1001, 5009, 0, l)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := time.Unix(1000, 0)
			pkts := append(append([]*capture.Packet{}, handshake...), tt.pkts...)
			for i, p := range pkts {
				p.Time = base.Add(time.Duration(i) * time.Millisecond)
			}
			path := filepath.Join(t.TempDir(), "c.pcapng")
			if err := capture.WriteFile(path, capture.File{Experiment: "t", Packets: pkts}); err != nil {
				t.Fatal(err)
			}
			var filter []string // every flag, as checkCapture asks for those an experiment does not intend
			for _, f := range analysisFlags {
				filter = append(filter, "tcp.analysis."+f)
			}
			flagged := tsharkFields(t, path, strings.Join(filter, " || "))
			if left := unexplained(t, path, flagged, filter); len(left) != tt.want || len(flagged) == 0 {
				t.Errorf("flagged %v, unexplained %v; want %d unexplained\n%s", flagged, left, tt.want,
					labtest.Tshark(t, path, "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "tcp.window_size_value", "-e", "tcp.analysis.flags", "-e", "frame.comment"))
			}
		})
	}
}
