package httpexp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

// Small captures for the analysis tests, built packet by packet (segment
// and conversation are in complete_test.go).

var (
	testClient = netip.MustParseAddrPort("127.0.0.1:40000")
	testServer = netip.MustParseAddrPort("127.0.0.1:8080")
)

// testToken is a session token as long as the servers' (43 characters).
var testToken = strings.Repeat("T", 43)

// httpRequest is an HTTP/1.1 request as a client writes it: a cookie
// header when cookie is set, a JSON or form body when body is.
func httpRequest(method, target, cookie, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: x\r\n", method, target)
	if cookie != "" {
		fmt.Fprintf(&b, "Cookie: session=%s\r\n", cookie)
	}
	if body != "" {
		ct := "application/json"
		if !strings.HasPrefix(body, "{") {
			ct = "application/x-www-form-urlencoded"
		}
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", ct, len(body))
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// httpResponse is an HTTP/1.1 response with a JSON body, setting the
// session cookie when setCookie is set, and any extra header lines.
func httpResponse(status int, setCookie, body string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", status, len(body))
	if setCookie != "" {
		fmt.Fprintf(&b, "Set-Cookie: session=%s; Path=/; HttpOnly\r\n", setCookie)
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// oneExchange is a connection carrying one request and its response, at
// the given times (ms): the two SYNs just before the request.
func oneExchange(t *testing.T, client, server netip.AddrPort, reqAt, respAt int, req, resp string) []*capture.Packet {
	return []*capture.Packet{
		segment(t, client, server, 0, true, "", reqAt-2),
		segment(t, server, client, 0, true, "", reqAt-1),
		segment(t, client, server, 1, false, req, reqAt),
		segment(t, server, client, 1, false, resp, respAt),
	}
}

// exchangesOf parses the exchanges at server, failing the test on error.
func exchangesOf(t *testing.T, pkts []*capture.Packet, server netip.AddrPort) []*Exchange {
	t.Helper()
	exs, err := Exchanges(pkts, server)
	if err != nil {
		t.Fatal(err)
	}
	return exs
}
