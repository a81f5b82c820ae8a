package httpstate

import (
	"bytes"
	"context"

	"html/template"
	"net/http"
	"net/url"
	"strconv"
)

// How a request's session token travelled: the seed's four ways to add
// state to stateless HTTP are a cookie, URL rewriting (?session=), a hidden
// form field, and server-side session data behind any of them.
type tokenVia int

const (
	viaNone tokenVia = iota
	viaCookie
	viaURL
	viaForm
)

// SessionParam is the query parameter and form field that carry the token
// when the client keeps no cookie.
const SessionParam = "session"

type cookielessKey struct{}

// tokenOf finds the request's session token. A cookie wins; then the query
// (URL rewriting); then a field of a form posted to /form (hidden field).
func tokenOf(r *http.Request) (string, tokenVia) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return c.Value, viaCookie
	}
	if r.URL.Query().Has(SessionParam) || r.URL.Query().Get("via") == "url" {
		return r.URL.Query().Get(SessionParam), viaURL
	}
	if r.URL.Path == "/form" {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
			_ = r.ParseForm() // a malformed form is reported by the handler
			return r.PostForm.Get(SessionParam), viaForm
		}
		return "", viaForm
	}
	return "", viaNone
}

// serveCookieless runs a request whose token travels in the URL or a form
// field: the session is loaded and committed by hand, and no cookie is set.
// ServeHTTP holds the session's lock around it.
func (s *Server) serveCookieless(w http.ResponseWriter, r *http.Request, token string, via tokenVia) {
	ctx, err := s.sessions.Load(r.Context(), token)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	ctx = context.WithValue(ctx, cookielessKey{}, via)
	buf := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	s.mux.ServeHTTP(buf, r.WithContext(ctx))
	if st := s.sessions.Status(ctx); st != 0 { // Modified or Destroyed
		if _, _, err := s.sessions.Commit(ctx); err != nil {
			writeStoreError(w, err)
			return
		}
	}
	buf.copyTo(w)
}

type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (b *bufferedWriter) Header() http.Header { return b.header }
func (b *bufferedWriter) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}
func (b *bufferedWriter) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}

// copyTo sends the buffered response.
func (b *bufferedWriter) copyTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// links is what a reply tells a cookieless client about its session: URL
// rewriting means the server writes the token into every link it gives.
func (s *Server) links(r *http.Request) map[string]string {
	via, _ := r.Context().Value(cookielessKey{}).(tokenVia)
	if via != viaURL {
		return nil
	}
	tok := url.QueryEscape(s.sessions.Token(r.Context()))
	return map[string]string{"token": s.sessions.Token(r.Context()),
		"use_last": "/use_last?session=" + tok, "state": "/state?session=" + tok, "calculate": "/calculate?session=" + tok}
}

var formPage = template.Must(template.New("form").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>statelab calculator ({{.Mode}})</title></head>
<body>
<h1>Calculator — {{.Mode}} server</h1>
{{if .Error}}<p class="error" role="alert" data-code="{{.Code}}">Error: {{.Error}}</p>
{{end}}{{if .Expired}}<p><a href="/form">Start a new session</a></p>
{{else}}{{if .HasResult}}<p>Result: <output id="result">{{.Result}}</output></p>{{end}}
{{if .Stateful}}<p>Last result kept by the server: {{if .HasLast}}{{.Last}}{{else}}none yet{{end}}. Leave <i>a</i> empty to use it.</p>{{end}}
<form method="post" action="/form">
{{if .Token}}<input type="hidden" name="session" value="{{.Token}}">
{{end}}<input name="a" size="8" placeholder="a"{{if not .Stateful}} required{{end}}>
<select name="op"><option>add</option><option>subtract</option><option>multiply</option><option>divide</option></select>
<input name="b" size="8" placeholder="b" required>
<button>=</button>
</form>
{{end}}</body></html>
`))

type formData struct {
	Mode              Mode
	Stateful, HasLast bool
	HasResult         bool
	Result, Last      float64
	Token             string
	Error, Code       string // an error the page reports
	Expired           bool   // the session is gone: no form, a link to a new one
}

// form serves the HTML calculator; on a stateful server its session token
// rides in a hidden field of the form, so it works with no cookie at all.
func (s *Server) form(w http.ResponseWriter, r *http.Request) {
	d := formData{Mode: s.mode, Stateful: s.sessions != nil}
	var st SessionState
	pending := "" // a token issued by a form page, its session not stored yet
	if d.Stateful {
		if s.sessions.Exists(r.Context(), "state") {
			st = s.sessions.Get(r.Context(), "state").(SessionState)
			d.Token = s.sessions.Token(r.Context())
		} else {
			// Nothing is stored until a calculation stores something: the
			// page carries a signed token (pendingToken), and the first
			// POST that computes stores the session under it. A token that
			// names no live session and is no such token (expired, or
			// made up) is an error, not a silent new session that drops
			// the user's work; a GET with no token (or a stale cookie)
			// gets a new pending one.
			tok, via := tokenOf(r)
			if via == viaCookie && r.Method == http.MethodPost {
				r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
				_ = r.ParseForm() // a malformed form is reported below
			}
			if via == viaCookie && r.Method == http.MethodPost && s.validPending(r.PostForm.Get(SessionParam)) {
				tok, via = r.PostForm.Get(SessionParam), viaForm // a stale cookie beside a page's token
			}
			switch {
			case tok != "" && via != viaCookie && s.validPending(tok):
				pending = tok
			case tok != "" && (r.Method == http.MethodPost || via == viaURL):
				d.Expired = true
				s.formError(w, d, &apiError{status: http.StatusUnauthorized, code: "no_session",
					msg: "this form's session has expired or does not exist: start a new session"})
				return
			default:
				pending = s.pendingToken()
			}
			if r.Method == http.MethodPost { // a GET stores nothing and takes no room
				if err := s.roomForSession(r); err != nil {
					s.formError(w, d, err) // at --max-sessions: no new session
					return
				}
			}
			d.Token = pending
		}
	}
	if d.Stateful {
		d.HasLast, d.Last = st.HasLast, st.LastResult
	}
	if r.Method == http.MethodPost {
		req, err := decodeCalc(r)
		if err != nil {
			s.formError(w, d, err)
			return
		}
		if req.B == nil {
			s.formError(w, d, badRequest("missing_operand", "the form needs b"))
			return
		}
		var a float64
		switch {
		case req.A != nil:
			a = *req.A
		case d.Stateful && st.HasLast:
			a = st.LastResult
		case d.Stateful:
			s.formError(w, d, &apiError{status: http.StatusConflict, code: "no_last_result", msg: "no last result yet: fill in a"})
			return
		default:
			s.formError(w, d, badRequest("missing_operand", "this server is stateless: fill in both a and b"))
			return
		}
		res, err := Apply(req.Op, a, *req.B)
		if err != nil {
			s.formError(w, d, err)
			return
		}
		d.HasResult, d.Result = true, res
		if d.Stateful {
			st.record(req.Op, a, *req.B, res)
			if pending == "" {
				s.sessions.Put(r.Context(), "state", st)
			} else if err := s.storePending(r.Context(), pending, st); err != nil {
				s.sessions.ErrorFunc(w, r, err) // the store failed: one 503 (serveOnce)
				return
			} else if _, via := tokenOf(r); via == viaCookie {
				http.SetCookie(w, s.sessionCookie(pending)) // replaces the stale one
			}
		}
	}
	if d.Stateful {
		d.HasLast, d.Last = st.HasLast, st.LastResult
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := formPage.Execute(w, d); err != nil {
		return
	}
}

// formError answers a form request with the form page and the error on
// it, with the error's status: a browser gets HTML, not raw JSON. The
// session state is not changed.
func (s *Server) formError(w http.ResponseWriter, d formData, err error) {
	ae := toAPIError(err)
	d.Error, d.Code, d.HasResult = ae.msg, ae.code, false
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(ae.status)
	_ = formPage.Execute(w, d)
}

// FormResult reads the result the calculator's form page shows, for a
// client of GET and POST /form.
func FormResult(body []byte) (float64, bool) {
	const open = `<output id="result">`
	i := bytes.Index(body, []byte(open))
	if i < 0 {
		return 0, false
	}
	rest := body[i+len(open):]
	j := bytes.IndexByte(rest, '<')
	if j < 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(rest[:j]), 64)
	return v, err == nil
}

// FormToken reads the session token in the hidden field of the
// calculator's form page: what a client without cookies sends back.
func FormToken(body []byte) string { return attrAfter(body, `name="session" value="`) }

// formErrorCode reads the error code a form page reports, if any.
func formErrorCode(body []byte) string { return attrAfter(body, `data-code="`) }

// attrAfter returns the quoted attribute value that open (ending in `="`)
// starts in body, or "".
func attrAfter(body []byte, open string) string {
	_, rest, ok := bytes.Cut(body, []byte(open))
	if !ok {
		return ""
	}
	v, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return ""
	}
	return string(v)
}
