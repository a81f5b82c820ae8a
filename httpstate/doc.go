// Package httpstate builds the stateless and stateful servers of the source
// documents and measures the difference: one calculator, and three ways to
// keep its state — none (every request carries its operands), in the
// process's memory (a session keeps last_result), or in an external store
// (the process is stateless, the system is not).
//
// The HTTP API, for curl or a browser:
//
//	POST /calculate  {"op":"add","a":10,"b":5}  → {"result":15}
//	POST /session                               → Set-Cookie: session=…  (stateful only)
//	POST /use_last   {"op":"multiply","b":2}    → {"result":30}          (stateful only)
//	GET  /state                                 → the session's state    (stateful only)
//
// Bodies may also be form-encoded (op=add&a=10&b=5). Every error is a 4xx
// with a JSON body {"error": "...", "code": "..."} and leaves the session as
// it was.
package httpstate
