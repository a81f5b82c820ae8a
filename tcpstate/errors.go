package tcpstate

import "errors"

// Sentinel errors. Callers test them with errors.Is; the engine wraps them
// with %w to add context (state, offending value).
var (
	// ErrConnectionRefused: the peer answered our SYN with a RST.
	ErrConnectionRefused = errors.New("tcpstate: connection refused")
	// ErrConnectionReset: an acceptable RST arrived on a synchronized
	// connection.
	ErrConnectionReset = errors.New("tcpstate: connection reset")
	// ErrConnectionAborted: the local user called Abort.
	ErrConnectionAborted = errors.New("tcpstate: connection aborted")
	// ErrClosing: the user already closed its sending side.
	ErrClosing = errors.New("tcpstate: connection closing")
	// ErrTimeout: retransmissions were exhausted, the user timeout passed
	// (Config.UserTimeout) or keep-alive probes went unanswered.
	ErrTimeout = errors.New("tcpstate: connection timed out")
	// ErrNotConnected: the call needs a connection and there is none
	// (RFC 9293: "connection does not exist").
	ErrNotConnected = errors.New("tcpstate: connection does not exist")
	// ErrConnectionExists: Open on an endpoint that is not CLOSED.
	ErrConnectionExists = errors.New("tcpstate: connection already exists")

	// ErrTruncated: the buffer is shorter than the header claims.
	ErrTruncated = errors.New("tcpstate: segment truncated")
	// ErrBadDataOffset: the data offset field is below 5 words.
	ErrBadDataOffset = errors.New("tcpstate: bad data offset")
	// ErrBadOption: a TCP option is malformed.
	ErrBadOption = errors.New("tcpstate: malformed option")
	// ErrOptionsTooLong: options do not fit in the 40 bytes a header allows.
	ErrOptionsTooLong = errors.New("tcpstate: options too long")
)
