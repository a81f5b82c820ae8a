package udpdns

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch with errors.Is.
var (
	// ErrTimeout: no matching reply arrived within the attempts allowed.
	ErrTimeout = errors.New("udpdns: timeout")
	// ErrClosed: the client (or server) was closed.
	ErrClosed = errors.New("udpdns: closed")
	// ErrIDsExhausted: every one of the 65,536 query IDs is in flight or
	// resting in quarantine, and Config.FailWhenFull asked not to wait.
	ErrIDsExhausted = errors.New("udpdns: all 65536 query IDs in use")
	// ErrBadQuery: the message cannot be sent as a query (it must carry
	// exactly one question and not be a response).
	ErrBadQuery = errors.New("udpdns: not a sendable query")
	// ErrShort: fewer bytes than a DNS header.
	ErrShort = errors.New("udpdns: message shorter than a DNS header")
	// ErrMalformed: the header, question or records cannot be parsed (from
	// Call.Reply: a matched reply whose RDATA miekg/dns cannot decode).
	ErrMalformed = errors.New("udpdns: malformed message")
)

// QueryError says which query failed and after how many attempts; it wraps
// the cause (ErrTimeout, ErrClosed, a context error, a socket error).
type QueryError struct {
	Name     string
	Type     string
	Attempts int
	Err      error
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("udpdns: %s %s: %d attempt(s): %v", e.Name, e.Type, e.Attempts, e.Err)
}

func (e *QueryError) Unwrap() error { return e.Err }
