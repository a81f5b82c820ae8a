package httpstate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync/atomic"
	"time"
)

// Client speaks the calculator API over one keep-alive connection and
// counts the bytes it writes, so an experiment can compare them with what
// the capture saw.
type Client struct {
	Base    string
	HTTP    *http.Client
	written atomic.Int64
}

// NewClient returns a client for base; withCookies gives it a cookie jar, as
// a browser has.
func NewClient(base string, withCookies bool) *Client {
	c := &Client{Base: base}
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, n: &c.written}, nil
		},
		DisableCompression:  true,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
	}
	c.HTTP = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if withCookies {
		jar, _ := cookiejar.New(nil)
		c.HTTP.Jar = jar
	}
	return c
}

// Written is the number of bytes the client has written to its connections.
func (c *Client) Written() int64 { return c.written.Load() }

// Close closes the client's idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// Reply is a decoded calculator response.
type Reply struct {
	Status int
	Result float64
	Error  string
	Code   string
	Cookie string // the session cookie set by this response, if any
	Body   []byte // the reply body as received
}

// Post sends body as JSON to path and decodes the reply. A 4xx is a Reply
// with Error set, not an error; an error means no reply was had.
func (c *Client) Post(ctx context.Context, path string, body any) (Reply, error) {
	return c.Do(ctx, http.MethodPost, path, body)
}

// Get fetches path and decodes the JSON reply as Post does.
func (c *Client) Get(ctx context.Context, path string) (Reply, error) {
	return c.Do(ctx, http.MethodGet, path, nil)
}

// Do sends a request with an optional body (url.Values are form-encoded,
// anything else JSON) and decodes the reply. An HTML page is returned in
// Body undecoded.
func (c *Client) Do(ctx context.Context, method, path string, body any) (Reply, error) {
	var buf bytes.Buffer
	ctype := "application/json"
	if form, ok := body.(url.Values); ok {
		ctype = "application/x-www-form-urlencoded"
		buf.WriteString(form.Encode())
	} else if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return Reply{}, err
		}
	}
	var rd io.Reader
	if method != http.MethodGet {
		rd = &buf
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Reply{}, err
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Reply{}, fmt.Errorf("httpstate: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Reply{}, fmt.Errorf("httpstate: %s %s: reading reply: %w", method, path, err)
	}
	rep := Reply{Status: resp.StatusCode, Body: b}
	for _, ck := range resp.Cookies() {
		if ck.Name == SessionCookie {
			rep.Cookie = ck.Value
		}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/html" {
		rep.Code = formErrorCode(b) // a form page's error, if it shows one
		return rep, nil             // a page, not an API reply: the caller reads Body
	}
	var v struct {
		Result *float64 `json:"result"`
		Error  string   `json:"error"`
		Code   string   `json:"code"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return rep, fmt.Errorf("httpstate: %s %s: reply is not JSON: %q", method, path, b)
	}
	rep.Error, rep.Code = v.Error, v.Code
	if v.Result != nil {
		rep.Result = *v.Result
	}
	return rep, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.n.Add(int64(n))
	return n, err
}
