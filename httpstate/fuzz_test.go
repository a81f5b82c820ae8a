package httpstate

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Any body, any content type: the server answers with a status below 500
// and a JSON body whose message names no Go type, and never panics. (The handler is called directly: the
// subject here is the request parser, not the socket.)
func FuzzCalculateRequest(f *testing.F) {
	for _, s := range []string{`{"op":"add","a":10,"b":5}`, `op=add&a=1&b=2`, `{"op":"divide","a":1,"b":0}`, `{"a":1e400}`, `[]`, `null`, ``,
		`[1,2]`, `{"op":[1],"a":1,"b":2}`, `{"op":"add","a":{"x":1},"b":2}`, `{"op":"add","a":1,"b":2,"c":3}`, `{"op":`, `{op}`, `op=add&a=%zz`} {
		f.Add("application/json", s)
		f.Add("application/x-www-form-urlencoded", s)
	}
	srv, err := New(Config{Mode: Stateful})
	if err != nil {
		f.Fatal(err)
	}
	defer srv.Close()
	f.Fuzz(func(t *testing.T, ctype, body string) {
		for _, path := range []string{"/calculate", "/use_last"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Content-Type", ctype)
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s %q (%s): status %d %s", path, body, ctype, w.Code, w.Body)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s: reply is not JSON: %q", path, w.Body)
			}
			if w.Code != http.StatusOK && m["code"] == nil {
				t.Fatalf("%s: error reply without a code: %v", path, m)
			}
			if goTypeName.MatchString(w.Body.String()) {
				t.Fatalf("%s %q (%s): a Go type name in %s", path, body, ctype, w.Body)
			}
		}
	})
}
