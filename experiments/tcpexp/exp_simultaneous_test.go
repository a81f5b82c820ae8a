package tcpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

func TestKernelClosingFromTheCapture(t *testing.T) {
	k := func(flags uint8, seq, ack uint32) *capture.Packet {
		return tcpFrame(testKernel, testLab, flags, seq, ack, 0)
	}
	l := func(flags uint8, seq, ack uint32) *capture.Packet {
		return tcpFrame(testLab, testKernel, flags, seq, ack, 0)
	}
	tests := []struct {
		name string
		pkts []*capture.Packet
		ok   bool
		why  string
	}{
		{"the FINs cross: CLOSING", []*capture.Packet{k(wFIN|wACK, 5001, 1001), l(wFIN|wACK, 1001, 5001), k(wACK, 5002, 1002)},
			true, "kernel FIN seq=5001; lab FIN seq=1001 ack=5001; kernel ACK seq=5002 ack=1002"},
		{"the lab's FIN acknowledges the kernel's: no CLOSING", []*capture.Packet{k(wFIN|wACK, 5001, 1001), l(wFIN|wACK, 1001, 5002)},
			false, "the kernel went FIN-WAIT-1 → TIME-WAIT"},
		{"no kernel FIN", []*capture.Packet{l(wFIN|wACK, 1001, 5001)},
			false, "kernel FIN seen false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := kernelClosing(tt.pkts, testKernel, testLab)
			if ok != tt.ok || !strings.Contains(why, tt.why) {
				t.Errorf("got %v (%s), want %v (%s)", ok, why, tt.ok, tt.why)
			}
		})
	}
}
