package tcpexp

import (
	"strings"
	"testing"
)

// Segments of one connection for inferKernel: the lab's ISS is 1000, the
// kernel's 5000.
func labSeg(flags uint8, seq, ack uint32, n int) wseg {
	return wseg{fromLab: true, flags: flags, seq: seq, ack: ack, n: n}
}

func kernelSeg(flags uint8, seq, ack uint32, n int) wseg {
	return wseg{flags: flags, seq: seq, ack: ack, n: n}
}

// activeOpenSegs is the lab's active open of a kernel listener.
var activeOpenSegs = []struct {
	s    wseg
	want string
}{
	{labSeg(wSYN, 1000, 0, 0), kSynReceived},
	{kernelSeg(wSYN|wACK, 5000, 1001, 0), kSynReceived},
	{labSeg(wACK, 1001, 5001, 0), kEstablished},
}

// kstep is one segment of an inferKernel case and the kernel's state (and
// a substring of the note, when one is expected) beside it.
type kstep struct {
	s    wseg
	want string
	note string
}

// afterOpen is the active open, then rest.
func afterOpen(rest ...kstep) []kstep {
	var out []kstep
	for _, h := range activeOpenSegs {
		out = append(out, kstep{h.s, h.want, ""})
	}
	return append(out, rest...)
}

// inferKernelCases are captures of one connection, segment by segment.
var inferKernelCases = []struct {
	name  string
	steps []kstep
}{
	{"the kernel's ACK of data sent before the lab's FIN is ESTABLISHED, not LAST-ACK (tcp/handshake frame 8)", afterOpen(
		kstep{labSeg(wACK, 1001, 5001, 1), kEstablished, ""},
		kstep{kernelSeg(wACK, 5001, 1002, 0), kEstablished, ""},
		kstep{labSeg(wFIN|wACK, 1002, 5001, 0), kCloseWait, ""},
		kstep{kernelSeg(wFIN|wACK, 5001, 1003, 0), kLastAck, "FIN"},
		kstep{labSeg(wACK, 1003, 5002, 0), kClosed, "gone"},
	)},
	{"the kernel closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT", afterOpen(
		kstep{kernelSeg(wFIN|wACK, 5001, 1001, 0), kFinWait1, "FIN"},
		kstep{labSeg(wACK, 1001, 5002, 0), kFinWait2, ""},
		kstep{labSeg(wFIN|wACK, 1001, 5002, 0), kTimeWait, ""},
		kstep{kernelSeg(wACK, 5002, 1002, 0), kTimeWait, ""},
	)},
	{"the kernel's data before its FIN is ESTABLISHED, however close its close() (tcp/transfer)", afterOpen(
		kstep{kernelSeg(wACK, 5001, 1001, 100), kEstablished, ""},
		kstep{kernelSeg(wACK, 5101, 1001, 100), kEstablished, ""},
		kstep{kernelSeg(wFIN|wACK, 5201, 1001, 50), kFinWait1, "FIN"},
		kstep{labSeg(wACK, 1001, 5252, 0), kFinWait2, ""},
		kstep{labSeg(wACK, 1001, 5252, 10), kFinWait2, ""},
		kstep{labSeg(wFIN|wACK, 1011, 5252, 0), kTimeWait, ""},
	)},
	{"simultaneous open and close: SYN-SENT, SYN-RECEIVED, CLOSING", []kstep{
		{kernelSeg(wSYN, 5000, 0, 0), kSynSent, ""},
		{labSeg(wSYN, 1000, 0, 0), kSynReceived, ""},
		{kernelSeg(wSYN|wACK, 5000, 1001, 0), kSynReceived, ""},
		{labSeg(wSYN|wACK, 1000, 5001, 0), kEstablished, ""},
		{kernelSeg(wACK, 5001, 1001, 0), kEstablished, ""},
		{kernelSeg(wFIN|wACK, 5001, 1001, 0), kFinWait1, "FIN"},
		{labSeg(wFIN|wACK, 1001, 5001, 0), kClosing, ""},
		{kernelSeg(wACK, 5002, 1002, 0), kClosing, ""},
		{labSeg(wACK, 1002, 5002, 0), kTimeWait, ""},
	}},
	{"a SYN to a port without listener: CLOSED, answered by RST", []kstep{
		{labSeg(wSYN, 1000, 0, 0), kClosed, "no listener"},
		{kernelSeg(wRST|wACK, 0, 1001, 0), kClosed, "no socket"},
	}},
	{"RSTs: in the window a challenge ACK, outside ignored, at RCV.NXT an abort", afterOpen(
		kstep{labSeg(wRST, 2001, 0, 0), kEstablished, "challenge"},
		kstep{kernelSeg(wACK, 5001, 1001, 0), kEstablished, "challenge ACK"},
		kstep{labSeg(wRST, 1001+1<<30, 0, 0), kEstablished, "outside"},
		kstep{kernelSeg(wACK, 5001, 1001, 5), kEstablished, ""},
		kstep{labSeg(wRST, 1001, 0, 0), kClosed, "aborts"},
		kstep{labSeg(wACK, 1001, 5006, 4), kClosed, "no socket"},
		kstep{kernelSeg(wRST, 5006, 0, 0), kClosed, "no socket"},
	)},
	{"the kernel's abort: its RST|ACK closes it", afterOpen(
		kstep{kernelSeg(wRST|wACK, 5001, 1001, 0), kClosed, "resets"},
	)},
	{"a kernel ACK captured after the lab's FIN that does not cover it was sent before the kernel took the FIN", afterOpen(
		kstep{labSeg(wACK, 1001, 5001, 1), kEstablished, ""},
		kstep{labSeg(wFIN|wACK, 1002, 5001, 0), kCloseWait, ""},
		kstep{kernelSeg(wACK, 5001, 1002, 0), kEstablished, "before the kernel processed the lab's FIN"},
		kstep{kernelSeg(wACK, 5001, 1003, 0), kCloseWait, ""},
	)},
	{"a kernel segment captured after the lab's RST was sent before the kernel took the RST", afterOpen(
		kstep{labSeg(wRST, 1001, 0, 0), kClosed, "aborts"},
		kstep{kernelSeg(wACK, 5001, 1001, 0), kEstablished, "before the kernel processed the lab's RST"},
	)},
	{"the lab's FIN out of order takes effect when the gap fills", afterOpen(
		kstep{labSeg(wACK, 1101, 5001, 100), kEstablished, ""},
		kstep{labSeg(wFIN|wACK, 1201, 5001, 0), kEstablished, ""},
		kstep{labSeg(wACK, 1001, 5001, 100), kCloseWait, ""},
	)},
	{"a capture that starts mid-connection assumes ESTABLISHED and says so", []kstep{
		{labSeg(wACK, 1001, 5001, 0), kEstablished, "assumed"},
		{kernelSeg(wACK, 5001, 1001, 10), kEstablished, ""},
	}},
}

func TestInferKernelStateAtEachSegment(t *testing.T) {
	for _, tt := range inferKernelCases {
		t.Run(tt.name, func(t *testing.T) {
			segs := make([]wseg, len(tt.steps))
			for i, s := range tt.steps {
				segs[i] = s.s
			}
			got := inferKernel(segs)
			for i, s := range tt.steps {
				if got[i].state != s.want || (s.note != "" && !strings.Contains(got[i].note, s.note)) {
					t.Errorf("segment %d (lab %v flags %#x seq %d ack %d len %d): kernel %s (%q), want %s (note with %q)",
						i+1, s.s.fromLab, s.s.flags, s.s.seq, s.s.ack, s.s.n, got[i].state, got[i].note, s.want, s.note)
				}
			}
		})
	}
}
