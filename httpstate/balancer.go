package httpstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"

	"sync/atomic"
	"syscall"
)

// Policy is how a load balancer picks a backend.
type Policy string

// The balancing policies of the seed's diagrams.
const (
	RoundRobin Policy = "roundrobin"
	// Sticky sends a client back to the backend named in its LBCookie,
	// inserting the cookie on the first response (HAProxy's "cookie …
	// insert").
	Sticky Policy = "sticky"
)

// LBCookie is the sticky balancer's cookie: the backend's name.
const LBCookie = "lb"

// ErrNoBackend means every backend refused the connection.
var ErrNoBackend = errors.New("httpstate: no backend reachable")

// ErrBodyTooLarge means a request body is over the balancer's limit (the
// backends' own, maxBody): it is refused with a 413, never cut short.
var ErrBodyTooLarge = errors.New("httpstate: request body too large")

// Balancer is an HTTP load balancer built on httputil.ReverseProxy. A
// backend that refuses a connection is marked down and the request goes to
// the next one (the request never reached it, so retrying is safe), as
// HAProxy does with "option redispatch".
type Balancer struct {
	policy   Policy
	backends []*url.URL
	names    []string
	down     []atomic.Bool
	served   []atomic.Int64
	next     atomic.Uint64
	proxy    *httputil.ReverseProxy
}

type backendKey struct{}

// NewBalancer balances over backends (base URLs) with a policy.
func NewBalancer(policy Policy, backends ...string) (*Balancer, error) {
	if policy != RoundRobin && policy != Sticky {
		return nil, fmt.Errorf("httpstate: unknown balancing policy %q", policy)
	}
	if len(backends) == 0 {
		return nil, fmt.Errorf("%w: no backends given", ErrNoBackend)
	}
	b := &Balancer{policy: policy, down: make([]atomic.Bool, len(backends)), served: make([]atomic.Int64, len(backends))}
	for i, s := range backends {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("httpstate: backend %q: %w", s, err)
		}
		b.backends = append(b.backends, u)
		b.names = append(b.names, fmt.Sprintf("b%d", i+1))
	}
	// No keep-alive to the backends: each forwarded request dials afresh,
	// so a backend that has gone away shows as a refused connection (safe
	// to send elsewhere), never as a stale pooled connection that failed
	// after the request was written (which may not be retried).
	base := &http.Transport{DialContext: (&net.Dialer{}).DialContext, DisableKeepAlives: true, DisableCompression: true}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(b.backends[0]) // the transport picks the real backend
			pr.Out.Host = pr.In.Host
		},
		Transport: &pickTransport{b: b, base: base},
		ModifyResponse: func(resp *http.Response) error {
			i, _ := resp.Request.Context().Value(backendKey{}).(*int)
			if i == nil || *i < 0 {
				return nil
			}
			b.served[*i].Add(1)
			resp.Header.Set("X-Backend", b.names[*i])
			if b.policy == Sticky {
				if ck, err := resp.Request.Cookie(LBCookie); err != nil || ck.Value != b.names[*i] {
					resp.Header.Add("Set-Cookie", (&http.Cookie{Name: LBCookie, Value: b.names[*i], Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
				}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, ErrBodyTooLarge) {
				writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{
					"error": fmt.Sprintf("load balancer: request body over %d bytes", maxBody), "code": "body_too_large"})
				return
			}
			writeJSON(w, http.StatusBadGateway, map[string]string{"error": "load balancer: " + err.Error(), "code": "bad_gateway"})
		},
	}
	return b, nil
}

// ServeHTTP forwards the request to a backend.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	chosen := -1
	r = r.WithContext(context.WithValue(r.Context(), backendKey{}, &chosen))
	b.proxy.ServeHTTP(w, r)
}

// Served reports how many responses each backend gave, by name.
func (b *Balancer) Served() map[string]int64 {
	out := map[string]int64{}
	for i, n := range b.names {
		out[n] = b.served[i].Load()
	}
	return out
}

// Names lists the backends' names, b1…bN, in the order given.
func (b *Balancer) Names() []string { return append([]string(nil), b.names...) }

// pick returns the backend order to try for a request.
func (b *Balancer) pick(r *http.Request) []int {
	n := len(b.backends)
	first := -1
	if b.policy == Sticky {
		if ck, err := r.Cookie(LBCookie); err == nil {
			for i, name := range b.names {
				if name == ck.Value {
					first = i
				}
			}
		}
	}
	if first < 0 {
		first = int(b.next.Add(1)-1) % n
	}
	order := make([]int, 0, n)
	for k := 0; k < n; k++ {
		order = append(order, (first+k)%n)
	}
	return order
}

// pickTransport sends each request to a chosen backend, moving on to the
// next when one refuses the connection.
type pickTransport struct {
	b    *Balancer
	base http.RoundTripper
}

func (t *pickTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, maxBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(body) > maxBody {
			return nil, ErrBodyTooLarge // not forwarded cut short
		}
	}
	chosen, _ := req.Context().Value(backendKey{}).(*int)
	var lastErr error
	for _, i := range t.b.pick(req) {
		if t.b.down[i].Load() && t.b.policy == RoundRobin {
			continue
		}
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host = t.b.backends[i].Scheme, t.b.backends[i].Host
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		resp, err := t.base.RoundTrip(out)
		if err == nil {
			if chosen != nil {
				*chosen = i
			}
			return resp, nil
		}
		lastErr = err
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err // it may have reached the backend: do not retry
		}
		t.b.down[i].Store(true)
	}
	return nil, fmt.Errorf("%w: %v", ErrNoBackend, lastErr)
}
