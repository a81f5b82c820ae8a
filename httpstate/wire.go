package httpstate

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/statelab/statelab/internal/capture"
)

// Exchange is one HTTP request and its response as they crossed the wire,
// parsed back out of a capture.
type Exchange struct {
	Client     netip.AddrPort
	Request    *http.Request
	ReqBody    []byte
	ReqBytes   int // request line, headers and body
	ReqPacket  *capture.Packet
	Response   *http.Response
	RespBody   []byte
	RespBytes  int
	RespPacket *capture.Packet
}

// Exchanges reassembles the TCP streams to and from server and parses every
// HTTP/1.1 request and response in them, ordered by when each request was
// sent.
func Exchanges(pkts []*capture.Packet, server netip.AddrPort) ([]*Exchange, error) {
	streams := capture.TCPStreams(pkts)
	replies := map[netip.AddrPort]*capture.Stream{}
	for _, s := range streams {
		if s.Src == server {
			replies[s.Dst] = s
		}
	}
	var out []*Exchange
	for _, s := range streams {
		if s.Dst != server || len(s.Data) == 0 {
			continue
		}
		var resp *bufio.Reader
		var respStream *capture.Stream
		var respOff int
		if rs := replies[s.Src]; rs != nil {
			respStream, resp = rs, bufio.NewReader(bytes.NewReader(rs.Data))
		}
		rd := bufio.NewReader(bytes.NewReader(s.Data))
		off := 0
		for off < len(s.Data) {
			req, err := http.ReadRequest(rd)
			if err != nil {
				return out, fmt.Errorf("httpstate: request at byte %d of %s→%s: %w", off, s.Src, s.Dst, err)
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				return out, fmt.Errorf("httpstate: request body at byte %d: %w", off, err)
			}
			end := len(s.Data) - rd.Buffered()
			ex := &Exchange{Client: s.Src, Request: req, ReqBody: body, ReqBytes: end - off, ReqPacket: s.PacketAt(off)}
			off = end
			if resp != nil {
				if r, err := http.ReadResponse(resp, req); err == nil {
					rb, _ := io.ReadAll(r.Body)
					rend := len(respStream.Data) - resp.Buffered()
					ex.Response, ex.RespBody, ex.RespBytes, ex.RespPacket = r, rb, rend-respOff, respStream.PacketAt(respOff)
					respOff = rend
				}
			}
			out = append(out, ex)
		}
	}
	sortExchanges(out)
	return out, nil
}

// sortExchanges orders exchanges by when their request's first packet was
// seen; those without a packet go last, in the order they were parsed.
// (has packet, time) is a strict weak ordering, unlike a comparison that
// calls every pair with a missing packet "not less" both ways.
func sortExchanges(out []*Exchange) {
	slices.SortStableFunc(out, func(a, b *Exchange) int {
		switch {
		case a.ReqPacket == nil && b.ReqPacket == nil:
			return 0
		case a.ReqPacket == nil:
			return 1
		case b.ReqPacket == nil:
			return -1
		}
		return a.ReqPacket.Time.Compare(b.ReqPacket.Time)
	})
}

// Numbers returns the numbers a request body carries, as written: numeric
// JSON values in document order, or form fields that parse as numbers. It is
// how the experiments measure "data sent" from the capture rather than from
// what the client meant to send.
func Numbers(contentType string, body []byte) []string {
	if contentType == "application/x-www-form-urlencoded" {
		var out []string
		for _, kv := range strings.Split(string(body), "&") {
			_, v, _ := strings.Cut(kv, "=")
			if v, err := url.QueryUnescape(v); err == nil {
				if _, err := strconv.ParseFloat(v, 64); err == nil {
					out = append(out, v)
				}
			}
		}
		return out
	}
	var out []string
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			if err == io.EOF {
				return out
			}
			return out // a malformed body carries what was read before the fault
		}
		if n, ok := tok.(json.Number); ok {
			out = append(out, n.String())
		}
	}
}
