package tcpstate

import "unsafe"

// What the engine's external tests (package tcpstate_test, which drives
// the engine through tcptest) look at inside an Endpoint.

// MaxWindow is the largest congestion window (ssthresh's start).
const MaxWindow = maxWindow

// RecvFree is the free space of e's receive buffer.
func RecvFree(e *Endpoint) int { return e.rcv.free() }

// Recovery reports e's loss recovery: in fast recovery, duplicate ACKs
// counted, consecutive retransmission timeouts.
func Recovery(e *Endpoint) (inRecovery bool, dupAcks, retries int) {
	return e.inRecovery, e.dupAcks, e.retries
}

// SetSsthresh sets e's slow start threshold.
func SetSsthresh(e *Endpoint, v uint32) { e.tcb.Ssthresh = v }

// WithDefaults is cfg with its defaults filled in.
func WithDefaults(cfg Config) Config { return cfg.withDefaults() }

// NumStates is the number of states.
const NumStates = numStates

// SendBufferHolds reports whether p starts inside e's send buffer: a
// borrowed payload (Output.BorrowPayloads) does, a copy does not.
func SendBufferHolds(e *Endpoint, p []byte) bool {
	b := e.snd.buf
	if len(p) == 0 || len(b) == 0 {
		return false
	}
	start, at := uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&p[0]))
	return at >= start && at < start+uintptr(len(b))
}
