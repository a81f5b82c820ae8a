package httpstate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// MaxBody bounds a request body (64 KiB); the calculator's are a few dozen
// bytes. A longer body is refused with 413 and code "body_too_large".
const MaxBody = 64 << 10

const maxBody = MaxBody

// errTooLarge answers a body over MaxBody.
var errTooLarge = &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
	msg: fmt.Sprintf("request body over %d bytes (64 KiB)", MaxBody)}

// CalcRequest is the body of /calculate (A and B) and /use_last (B only).
type CalcRequest struct {
	Op Op       `json:"op"`
	A  *float64 `json:"a,omitempty"`
	B  *float64 `json:"b,omitempty"`
}

// apiError is an error with an HTTP status and a stable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// decodeCalculate reads a /calculate request, which needs both operands.
func decodeCalculate(r *http.Request) (CalcRequest, error) {
	req, err := decodeCalc(r)
	if err == nil && (req.A == nil || req.B == nil) {
		err = badRequest("missing_operand", "/calculate needs both operands a and b")
	}
	return req, err
}

// decodeUseLast reads a /use_last request, which takes b only: the server
// supplies a from last, where its last result is kept.
func decodeUseLast(r *http.Request, last string) (CalcRequest, error) {
	req, err := decodeCalc(r)
	if err == nil && (req.A != nil || req.B == nil) {
		err = badRequest("operands", "/use_last takes only b: the server supplies a from %s", last)
	}
	return req, err
}

// errNoLastResult answers /use_last in a session with no result yet.
var errNoLastResult = &apiError{status: http.StatusConflict, code: "no_last_result", msg: "this session has no last result yet: POST /calculate first"}

// decodeCalc reads a JSON or form-encoded calculator request.
func decodeCalc(r *http.Request) (CalcRequest, error) {
	var req CalcRequest
	if r.Method != http.MethodPost {
		return req, &apiError{status: http.StatusMethodNotAllowed, code: "method", msg: "use POST"}
	}
	if r.ContentLength > maxBody {
		return req, errTooLarge // said before a byte is read
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return req, errTooLarge
			}
			return req, badRequest("malformed", "cannot read the form: %v", err)
		}
		req.Op = Op(r.PostForm.Get("op"))
		for _, f := range []struct {
			name string
			dst  **float64
		}{{"a", &req.A}, {"b", &req.B}} {
			s := r.PostForm.Get(f.name)
			if s == "" {
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return req, badRequest("not_a_number", "%s=%q is not a number", f.name, s)
			}
			*f.dst = &v
		}
	case "application/json", "":
		dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, jsonError(err)
		}
		if dec.More() {
			return req, badRequest("malformed", "one JSON object per request")
		}
	default:
		return req, &apiError{status: http.StatusUnsupportedMediaType, code: "content_type",
			msg: "send application/json or application/x-www-form-urlencoded"}
	}
	if req.Op == "" {
		return req, badRequest("missing_op", "op is required (add, subtract, multiply, divide)")
	}
	return req, nil
}

// example is a well-formed request, for error messages.
const example = `{"op":"add","a":10,"b":5}`

// jsonError says what is wrong with a JSON body in the client's terms: the
// field and what it should be, never a Go type.
func jsonError(err error) *apiError {
	var (
		typ      *json.UnmarshalTypeError
		syn      *json.SyntaxError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return errTooLarge
	case errors.Is(err, io.EOF):
		return badRequest("malformed", "empty body: send %s", example)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed", "the JSON body ends too soon: send %s", example)
	case errors.As(err, &syn):
		return badRequest("malformed", "malformed JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ) && typ.Field == "op":
		return badRequest("bad_op", "op must be a string: add, subtract, multiply or divide (got %s)", typ.Value)
	case errors.As(err, &typ) && (typ.Field == "a" || typ.Field == "b"):
		return badRequest("not_a_number", "operand %s must be a finite number (got %s)", typ.Field, typ.Value)
	case errors.As(err, &typ):
		return badRequest("malformed", "the body must be one JSON object such as %s (got %s)", example, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("malformed", "%s: the fields are op, a and b", strings.TrimPrefix(err.Error(), "json: "))
	}
	return badRequest("malformed", "cannot read the JSON body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError maps calculator and API errors to a 4xx with a JSON body.
func writeError(w http.ResponseWriter, err error) {
	ae := toAPIError(err)
	writeJSON(w, ae.status, map[string]string{"error": ae.msg, "code": ae.code})
}

// toAPIError maps calculator and API errors to a status, code and message.
func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, ErrDivideByZero):
		ae = badRequest("divide_by_zero", "division by zero")
	case errors.Is(err, ErrUnknownOp):
		ae = badRequest("unknown_op", "%s", trimPrefix(err))
	case errors.Is(err, ErrNotFinite):
		ae = badRequest("not_finite", "%s", trimPrefix(err))
	default:
		ae = &apiError{status: http.StatusInternalServerError, code: "internal", msg: err.Error()}
	}
	return ae
}

func trimPrefix(err error) string {
	s := err.Error()
	const p = "httpstate: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// readReplayable reads a request's body (up to one byte more than maxBody,
// enough for the handlers' own limit to refuse it) so that the request can
// run more than once (serveOptimistic); err is the read error, if any,
// that each run's reader reports after the bytes.
func readReplayable(r *http.Request) (body []byte, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err = io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	return body, err
}

// replayBody is one run's view of a body read by readReplayable.
type replayBody struct {
	r   *bytes.Reader
	err error
}

func (b *replayBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		err = b.err
	}
	return n, err
}

func (b *replayBody) Close() error { return nil }
