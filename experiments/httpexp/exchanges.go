package httpexp

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

	"github.com/statelab/statelab/lab/capture"
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
// sent. A response whose body the capture does not hold to its end is not
// a response: its exchange has none. A stream that does not parse is
// reported in the error; the exchanges of the other streams are returned
// all the same.
func Exchanges(pkts []*capture.Packet, server netip.AddrPort) ([]*Exchange, error) {
	return exchangesIn(capture.TCPStreams(pkts), server)
}

func exchangesIn(streams []*capture.Stream, server netip.AddrPort) ([]*Exchange, error) {
	replies := map[netip.AddrPort]*capture.Stream{}
	for _, s := range streams {
		if s.Src == server {
			replies[s.Dst] = s
		}
	}
	var out []*Exchange
	var firstErr error
	for _, s := range streams {
		if s.Dst != server || len(s.Data) == 0 {
			continue
		}
		exs, err := streamExchanges(s, replies[s.Src])
		out = append(out, exs...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	sortExchanges(out)
	return out, firstErr
}

// streamExchanges parses the requests of one client's stream and the
// responses of its reply stream (nil when none was captured).
func streamExchanges(s, rs *capture.Stream) ([]*Exchange, error) {
	var out []*Exchange
	var resp *streamReader
	respOff := 0
	if rs != nil {
		resp = newStreamReader(rs.Data)
	}
	rd := newStreamReader(s.Data)
	off := 0
	for off < len(s.Data) {
		req, err := http.ReadRequest(rd.Reader)
		if err != nil {
			return out, fmt.Errorf("httpexp: request at byte %d of %s→%s: %w", off, s.Src, s.Dst, err)
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return out, fmt.Errorf("httpexp: request body at byte %d of %s→%s: %w", off, s.Src, s.Dst, err)
		}
		end := rd.offset()
		ex := &Exchange{Client: s.Src, Request: req, ReqBody: body, ReqBytes: end - off, ReqPacket: s.PacketAt(off)}
		off = end
		if resp != nil {
			r, err := http.ReadResponse(resp.Reader, req)
			var rb []byte
			if err == nil {
				rb, err = io.ReadAll(r.Body)
			}
			if err != nil {
				resp = nil // cut short: neither this response nor any later one is whole
			} else {
				rend := resp.offset()
				ex.Response, ex.RespBody, ex.RespBytes, ex.RespPacket = r, rb, rend-respOff, rs.PacketAt(respOff)
				respOff = rend
			}
		}
		out = append(out, ex)
	}
	return out, nil
}

// streamReader reads a reassembled stream through a bufio.Reader and knows
// how far the parser has read: not len(data) − Buffered, which is wrong as
// soon as the stream is longer than the bufio buffer.
type streamReader struct {
	*bufio.Reader
	src  *bytes.Reader
	size int
}

func newStreamReader(data []byte) *streamReader {
	src := bytes.NewReader(data)
	return &streamReader{Reader: bufio.NewReader(src), src: src, size: len(data)}
}

// offset is the stream byte the parser will read next.
func (r *streamReader) offset() int { return r.size - r.src.Len() - r.Buffered() }

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
