package httpexp

import (
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

func TestCalculatorExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("http/calculator"), 1)
	for _, m := range []string{"stateless.numbers_sent", "stateful.numbers_sent", "store.numbers_sent",
		"stateless.request_bytes", "stateful.request_bytes", "store.request_bytes", "store.wire_bytes"} {
		if r.Metrics[m] == 0 {
			t.Errorf("metric %s not measured", m)
		}
	}
	if len(r.Captures) != 1 || !strings.HasSuffix(r.Captures[0], "http/calculator.pcapng") {
		t.Errorf("captures = %v, want DIR/http/calculator.pcapng", r.Captures)
	}
}

// Wireshark's dissectors read the capture without a malformed packet and
// show the experiment's comments beside the requests.
func TestCalculatorCaptureOpensInTshark(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("http/calculator"), 2)
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "_ws.malformed || _ws.expert.severity >= error"); n != 0 {
		t.Errorf("%d malformed or erroneous frames", n)
	}
	if n := labtest.TsharkCount(t, path, `http.request.method == "POST"`); n != 11 {
		t.Errorf("tshark sees %d POST requests, want 11 (3 stateless, 4 stateful, 4 store-backed)", n)
	}
	comments := strings.Join(labtest.TsharkComments(t, path), "\n")
	for _, want := range []string{"stateless request 2: POST /calculate multiply(15, 2)", "stateful request 3: POST /use_last multiply(2) +cookie", "last_result=27"} {
		if !strings.Contains(comments, want) {
			t.Errorf("no comment contains %q; comments:\n%s", want, comments)
		}
	}
}

// A workflow read back from a small capture: the numbers its requests
// carried, their bytes, and whether the session token the server set came
// back on every later request.
func TestReadWorkflowFromTheCapture(t *testing.T) {
	add := `{"op":"add","a":10,"b":5}`
	tests := []struct {
		name        string
		reqs, resps []string
		numbers     string
		token       string
		everyReq    bool
		cookieBytes int
		label1      string // the second request, worded
	}{
		{"stateless: 6 numbers, no session",
			[]string{httpRequest("POST", "/calculate", "", add), httpRequest("POST", "/calculate", "", `{"op":"multiply","a":15,"b":2}`),
				httpRequest("POST", "/calculate", "", `{"op":"subtract","a":30,"b":3}`)},
			[]string{httpResponse(200, "", `{"result":15}`), httpResponse(200, "", `{"result":30}`), httpResponse(200, "", `{"result":27}`)},
			"10,5,15,2,30,3", "", true, 0, "POST /calculate multiply(15, 2)"},
		{"stateful: 4 numbers, the cookie on every later request",
			[]string{httpRequest("POST", "/session", "", ""), httpRequest("POST", "/calculate", testToken, add),
				httpRequest("POST", "/use_last", testToken, `{"op":"multiply","b":2}`), httpRequest("POST", "/use_last", testToken, `{"op":"subtract","b":3}`)},
			[]string{httpResponse(201, testToken, `{"session":"started"}`), httpResponse(200, "", `{"result":15}`),
				httpResponse(200, "", `{"result":30}`), httpResponse(200, "", `{"result":27}`)},
			"10,5,2,3", testToken, true, 3 * len("Cookie: session="+testToken+"\r\n"), "POST /calculate add(10, 5) +cookie"},
		{"a later request without the cookie",
			[]string{httpRequest("POST", "/session", "", ""), httpRequest("POST", "/calculate", "", add)},
			[]string{httpResponse(201, testToken, `{}`), httpResponse(200, "", `{"result":15}`)},
			"10,5", testToken, false, 0, "POST /calculate add(10, 5)"},
		{"a later request with another token",
			[]string{httpRequest("POST", "/session", "", ""), httpRequest("POST", "/calculate", "other", add)},
			[]string{httpResponse(201, testToken, `{}`), httpResponse(200, "", `{"result":15}`)},
			"10,5", testToken, false, len("Cookie: session=other\r\n"), "POST /calculate add(10, 5) +cookie"},
		{"the last reply not captured",
			[]string{httpRequest("POST", "/calculate", "", add), httpRequest("POST", "/calculate", "", add)},
			[]string{httpResponse(200, "", `{"result":15}`)},
			"10,5,10,5", "", true, 0, "POST /calculate add(10, 5)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkts := conversation(t, testClient, testServer, 0, tt.reqs, tt.resps)
			w, err := readWorkflow(capture.TCPStreams(pkts), testServer)
			if err != nil {
				t.Fatal(err)
			}
			reqBytes := 0
			for _, r := range tt.reqs {
				reqBytes += len(r)
			}
			if got := strings.Join(w.numbers, ","); got != tt.numbers || w.reqBytes != reqBytes {
				t.Errorf("numbers %s in %d request bytes; want %s in %d", got, w.reqBytes, tt.numbers, reqBytes)
			}
			if w.token != tt.token || w.cookieEveryRequest != tt.everyReq || w.cookieBytes != tt.cookieBytes {
				t.Errorf("token %q, on every later request %v, %d cookie bytes; want %q, %v, %d",
					short(w.token), w.cookieEveryRequest, w.cookieBytes, short(tt.token), tt.everyReq, tt.cookieBytes)
			}
			if len(w.requests) != len(tt.reqs) || w.requests[1] != tt.label1 {
				t.Errorf("requests worded %q; want the second %q", w.requests, tt.label1)
			}
			if missing := len(tt.reqs) - len(tt.resps); missing > 0 && w.replies[len(w.replies)-1] != "" {
				t.Errorf("a reply not captured is worded %q", w.replies[len(w.replies)-1])
			}
			if w.wireBytes == 0 || w.frames != len(pkts) {
				t.Errorf("%d bytes in %d frames on the wire; want all %d frames", w.wireBytes, w.frames, len(pkts))
			}
		})
	}
}
