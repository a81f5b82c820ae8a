package udpdns

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Config configures a Client. Zero values pick the defaults noted.
type Config struct {
	// Server is where queries go; required.
	Server netip.AddrPort
	// Local is the address the sockets bind to; default the loopback
	// address of Server's family (127.0.0.1 or ::1) when Server is a
	// loopback address, so reports and captures show the real address,
	// else the unspecified address of its family. The port is always chosen
	// by the kernel.
	Local netip.Addr
	// Sockets is how many unconnected UDP sockets carry the queries (more
	// sockets, more source ports, more IDs); default 1.
	Sockets int
	// Timeout is how long one attempt waits for its reply; default 2s.
	Timeout time.Duration
	// Retries is how many further attempts, each with a fresh ID, follow a
	// timeout; default 0 unless set (use a negative value for exactly none).
	Retries int
	// Quarantine is how long the ID of a query that timed out or was
	// cancelled stays reserved, so a late reply is recognised as late and
	// can never complete a newer query; default 3×Timeout.
	Quarantine time.Duration
	// Linger is how long the ID of a query that was answered stays
	// reserved, so duplicate replies are counted as duplicates; default
	// 200ms.
	Linger time.Duration
	// Case0x20 randomises the letter case of each QNAME (DNS 0x20) and
	// requires the reply to echo it exactly.
	Case0x20 bool
	// Rand is where query IDs and 0x20 letter case are drawn from; default
	// crypto/rand.Reader. A seeded reader makes the draws repeatable when
	// queries are sent in a fixed order; callers that send concurrently
	// give each query a reader of its own with ExchangeRand instead, so
	// which query gets which ID does not depend on the scheduler.
	Rand io.Reader
	// FailWhenFull makes a query fail with ErrIDsExhausted when every ID of
	// every socket is taken, instead of waiting for one to free up.
	FailWhenFull bool
	// ReadBatch, above 1, reads with recvmmsg (golang.org/x/net ReadBatch),
	// up to ReadBatch datagrams per call. Default 1: one recvfrom per
	// datagram — BenchmarkExchange, run alternately in one session with 16
	// goroutines per core, measured ReadBatch=32 and 1 the same within
	// noise on loopback (≈7.5 µs per exchange each), so the simpler path
	// is the default. SendFunc callers that send from their completions
	// gain from it, with WriteBatch (see the package doc).
	ReadBatch int
	// WriteBatch, above 1, batches writes: queries sent while another
	// goroutine is writing wait in a small queue that the writer drains
	// with sendmmsg (golang.org/x/net WriteBatch), up to WriteBatch per
	// call. Default 1: one sendto per query, no queue — on loopback the
	// batched path was measured no faster (BenchmarkSend), the kernel's
	// per-datagram work, not the system call, being the cost.
	WriteBatch int
	// MaxReply is the largest reply accepted in bytes; default 4096.
	MaxReply int
	// UDPSize, when set, is the EDNS0 buffer size every query advertises
	// in an OPT record (the largest UDP answer the server may send; a
	// larger one comes back truncated, TC set). Zero: no OPT record unless
	// Cookies is set, which advertises DefaultUDPSize.
	UDPSize uint16
	// Cookies sends a DNS cookie (RFC 7873) in every query: an 8-byte
	// client cookie drawn from Config.Rand when the client is made, and
	// the server's cookie once an answer brought one. From then on an
	// answer without a cookie, or with another client cookie, is rejected
	// (MissingCookie, WrongCookie: a forgery from someone who never saw
	// the query); an answer with another client cookie is rejected even
	// before. A BADCOOKIE answer (its server cookie fresh) makes the query
	// go once more, with the new cookie.
	Cookies bool
	// TCPFallback retries a query whose UDP answer came back truncated
	// (TC set) over TCP to the same server: one connection per query,
	// closed by the client once the answer is read.
	TCPFallback bool
	// Trace, when set, is called for every event, from the goroutine where
	// it happened, outside any lock. It must be quick.
	Trace func(Event)
}

// EventKind says what happened.
type EventKind uint8

// Events reported to Config.Trace.
const (
	EventSent EventKind = iota
	EventMatched
	EventTimedOut
	EventCancelled
	EventLate
	EventDuplicate
	EventRejected
	// EventBadCookie: a matched answer said BADCOOKIE; the query goes
	// again with the server cookie it brought.
	EventBadCookie
	// EventTruncated: a matched UDP answer had TC set.
	EventTruncated
	// EventTCPSent and EventTCPAnswered: the query retried over TCP was
	// written, and its answer read (Local is the TCP connection's
	// address).
	EventTCPSent
	EventTCPAnswered
)

var eventNames = [...]string{"sent", "matched", "timed out", "cancelled", "late", "duplicate", "rejected",
	"bad cookie", "truncated", "tcp sent", "tcp answered"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", k)
}

// Event is one thing the client did or saw.
type Event struct {
	Kind    EventKind
	ID      uint16
	Name    string // the QNAME as sent (0x20 case), or as received for rejections
	QType   uint16
	Attempt int            // 0 for the first attempt
	Local   netip.AddrPort // the client socket
	Peer    netip.AddrPort // the server, or the sender of a received datagram
	Reason  Reason         // for EventRejected
}

// Client sends DNS queries over a few unconnected UDP sockets, any number
// in flight from any number of goroutines, and matches each reply to its
// query by everything RFC 5452 §9.1 names. It is safe for concurrent use.
type Client struct {
	cfg   Config
	socks []*sock
	epoch time.Time
	next  atomic.Uint32

	freeMu  sync.Mutex
	waitq   []waiter // senders waiting for a free ID, longest first
	waiters atomic.Int32

	rndMu sync.Mutex
	rnd   [256]byte
	rndN  int

	cookieMu     sync.Mutex
	clientCookie [ClientCookieLen]byte
	serverCookie []byte // learned from the server; nil until then

	badCookies, truncated, tcpSent, tcpAnswered atomic.Uint64

	closed atomic.Bool
}

// DefaultUDPSize is the EDNS0 buffer size queries advertise when Cookies
// needs an OPT record and Config.UDPSize is zero.
const DefaultUDPSize = 1232

// NewClient opens the client's sockets and starts reading them.
func NewClient(cfg Config) (*Client, error) {
	if !cfg.Server.IsValid() {
		return nil, fmt.Errorf("udpdns: Config.Server is required")
	}
	cfg.Server = netip.AddrPortFrom(cfg.Server.Addr().Unmap(), cfg.Server.Port())
	if cfg.Sockets <= 0 {
		cfg.Sockets = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Quarantine <= 0 {
		cfg.Quarantine = 3 * cfg.Timeout
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 200 * time.Millisecond
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = 1
	}
	if cfg.WriteBatch <= 0 {
		cfg.WriteBatch = 1
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = 4096
	}
	if !cfg.Local.IsValid() {
		cfg.Local = localFor(cfg.Server.Addr())
	}
	if cfg.Cookies && cfg.UDPSize == 0 {
		cfg.UDPSize = DefaultUDPSize
	}
	c := &Client{cfg: cfg, epoch: time.Now()}
	if cfg.Cookies {
		if err := c.randBytes(c.clientCookie[:]); err != nil {
			return nil, err
		}
	}
	for range cfg.Sockets {
		s, err := openSock(c)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.socks = append(c.socks, s)
	}
	return c, nil
}

// localFor is the default local address for a server: the matching
// loopback address for a loopback server, else the unspecified address.
func localFor(server netip.Addr) netip.Addr {
	switch {
	case server.Is4() && server.IsLoopback():
		return netip.AddrFrom4([4]byte{127, 0, 0, 1})
	case server.Is4():
		return netip.IPv4Unspecified()
	case server.IsLoopback():
		return netip.IPv6Loopback()
	default:
		return netip.IPv6Unspecified()
	}
}

// Server is the address queries go to.
func (c *Client) Server() netip.AddrPort { return c.cfg.Server }

// LocalAddrs are the client's socket addresses.
func (c *Client) LocalAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(c.socks))
	for i, s := range c.socks {
		out[i] = s.local
	}
	return out
}

// Stats returns a consistent snapshot of the counters, summed over sockets.
func (c *Client) Stats() Stats {
	for _, s := range c.socks {
		s.mu.Lock()
	}
	var st Stats
	for _, s := range c.socks {
		o := s.st
		o.InFlight = uint64(s.n)
		st.add(&o)
	}
	st.BadCookie, st.Truncated = c.badCookies.Load(), c.truncated.Load()
	st.TCPSent, st.TCPAnswered = c.tcpSent.Load(), c.tcpAnswered.Load()
	for i := len(c.socks) - 1; i >= 0; i-- {
		c.socks[i].mu.Unlock()
	}
	return st
}

// Close ends every query in flight with ErrClosed (counted as cancelled),
// closes the sockets and waits for their readers. Safe to call twice.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	for _, s := range c.socks {
		s.close()
	}
	c.notifyAll()
	return nil
}

// Query asks for name and type (class IN) with recursion desired.
func (c *Client) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return c.Exchange(ctx, m)
}

// Exchange sends m (its ID is ignored: each attempt gets a fresh one) and
// returns the reply that matches it. Each attempt waits Config.Timeout;
// after a timeout the query is retried up to Config.Retries times. Nothing
// is sent when ctx is already done. With DNS 0x20 on, the reply's question,
// and the owner name of every record that is the QNAME itself, are restored
// to m's letter case, so callers never see the random case; the raw reply
// (Call.Raw) keeps it as received.
func (c *Client) Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	return c.exchange(ctx, m, nil)
}

// ExchangeRand is Exchange with every attempt's ID (and 0x20 letter case)
// drawn from rnd instead of Config.Rand. Concurrent callers that each pass
// a seeded reader of their own get the same IDs whatever order the
// scheduler runs them in: an ID drawn is kept unless it is in flight or
// resting, which with a 16-bit space and a few hundred queries is rare.
func (c *Client) ExchangeRand(ctx context.Context, m *dns.Msg, rnd io.Reader) (*dns.Msg, error) {
	return c.exchange(ctx, m, rnd)
}

func (c *Client) exchange(ctx context.Context, m *dns.Msg, rnd io.Reader) (*dns.Msg, error) {
	attempts := c.cfg.Retries + 1
	badCookie := false // one more attempt after a BADCOOKIE, once
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for a := 0; a < attempts; a++ { // ends: attempts grows once at most
		call, err := c.send(ctx, m, a, rnd, nil)
		if err != nil {
			return nil, c.queryErr(m, a+1, err)
		}
		if timer == nil {
			timer = time.NewTimer(c.cfg.Timeout)
		} else {
			timer.Reset(c.cfg.Timeout)
		}
		answered := false
		select {
		case <-call.done:
			answered = true
		case <-timer.C:
			answered = !call.s.end(call, EventTimedOut, ErrTimeout) // answered meanwhile
		case <-ctx.Done():
			if call.s.end(call, EventCancelled, ctx.Err()) {
				return nil, c.queryErr(m, a+1, context.Cause(ctx))
			}
			answered = true
		}
		if !answered {
			continue
		}
		r, err := c.result(m, call, a+1)
		if err != nil {
			return nil, err
		}
		switch {
		case c.cfg.Cookies && r.Rcode == dns.RcodeBadCookie && !badCookie:
			badCookie = true
			attempts++
			c.badCookies.Add(1)
			call.s.trace(Event{Kind: EventBadCookie, ID: call.id, Name: call.name, QType: call.qtype, Attempt: call.attempt, Peer: call.server})
			continue
		case r.Truncated:
			c.truncated.Add(1)
			call.s.trace(Event{Kind: EventTruncated, ID: call.id, Name: call.name, QType: call.qtype, Attempt: call.attempt, Peer: call.server})
			if c.cfg.TCPFallback {
				return c.exchangeTCP(ctx, m, rnd)
			}
		}
		return r, nil
	}
	return nil, c.queryErr(m, attempts, ErrTimeout)
}

func (c *Client) result(m *dns.Msg, call *Call, attempts int) (*dns.Msg, error) {
	r, err := call.Reply()
	if err != nil {
		return nil, c.queryErr(m, attempts, err)
	}
	if len(r.Question) == 1 {
		r.Question[0].Name = m.Question[0].Name
	}
	if c.cfg.Case0x20 {
		for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
			for _, rr := range sec {
				if h := rr.Header(); h.Name == call.name {
					h.Name = m.Question[0].Name
				}
			}
		}
	}
	return r, nil
}

func (c *Client) queryErr(m *dns.Msg, attempts int, err error) error {
	qe := &QueryError{Attempts: attempts, Err: err}
	if len(m.Question) > 0 {
		qe.Name, qe.Type = m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype]
	}
	return qe
}

// Send makes one attempt at m and returns at once: the Call completes when
// its reply arrives, or ends when Cancel is called or the client closes.
// There is no timeout: the caller must Wait or Cancel. Send waits for a free
// ID when all are taken (honouring ctx) unless Config.FailWhenFull is set.
func (c *Client) Send(ctx context.Context, m *dns.Msg) (*Call, error) {
	return c.send(ctx, m, 0, nil, nil)
}

// SendFunc is Send with done called once the call completes or ends, on
// the goroutine that completed or ended it: for a reply, the socket's
// reader, with no hand-off to another goroutine. done must not block; it
// may send further queries (with Config.FailWhenFull, so that a full ID
// space cannot block the reader).
func (c *Client) SendFunc(ctx context.Context, m *dns.Msg, done func(*Call)) (*Call, error) {
	return c.send(ctx, m, 0, nil, done)
}

func (c *Client) send(ctx context.Context, m *dns.Msg, attempt int, rnd io.Reader, done func(*Call)) (*Call, error) {
	if err := context.Cause(ctx); err != nil {
		return nil, err // nothing goes out for a query already given up
	}
	call, err := c.prepare(m, attempt, rnd)
	if err != nil {
		return nil, err
	}
	call.onDone = done
	for { // ends: each round registers, fails, or waits for an ID to free
		ok, _, err := c.register(call)
		if ok || err != nil {
			return c.sent(call, err)
		}
		if c.cfg.FailWhenFull {
			return nil, ErrIDsExhausted
		}
		// Join the waiters first, then look again: an ID freed from here
		// on wakes this sender, one freed before is found by the second
		// look. (Looking once, then joining, loses a wakeup in between.)
		w := c.joinWaiters()
		ok, wait, err := c.register(call)
		if ok || err != nil {
			c.leaveWaiters(w)
			return c.sent(call, err)
		}
		if testHookBeforeWait != nil {
			testHookBeforeWait()
		}
		if err := c.waitFree(ctx, w, wait); err != nil {
			return nil, fmt.Errorf("%w while waiting for a free ID: %w", ErrIDsExhausted, err)
		}
	}
}

// register tries each socket in turn, starting with the next in rotation.
// It returns false and how long until the earliest resting ID frees (0: only
// a completion can free one) when no socket has a free ID.
func (c *Client) register(call *Call) (bool, time.Duration, error) {
	if c.closed.Load() {
		return false, 0, ErrClosed
	}
	start := int(c.next.Add(1))
	var wait time.Duration
	for i := range c.socks {
		ok, w, err := c.socks[(start+i)%len(c.socks)].register(call)
		if ok || err != nil {
			return ok, 0, err
		}
		if w > 0 && (wait == 0 || w < wait) {
			wait = w
		}
	}
	return false, wait, nil
}

func (c *Client) sent(call *Call, err error) (*Call, error) {
	if err != nil {
		return nil, err
	}
	return call, call.s.write(call)
}

// testHookBeforeWait, when set by a test, runs after a sender found no free
// ID and before it waits for one.
var testHookBeforeWait func()

// waiter is a sender waiting for a free ID; notifyFree wakes the longest
// waiting one per ID freed by sending on its channel.
type waiter chan struct{}

func (c *Client) joinWaiters() waiter {
	w := make(waiter, 1)
	c.freeMu.Lock()
	c.waitq = append(c.waitq, w)
	c.waiters.Add(1)
	c.freeMu.Unlock()
	return w
}

// leaveWaiters takes w out of the queue. A wakeup it was given and can no
// longer use (it leaves, or found an ID another sender freed) is passed on,
// so no freed ID is left with a waiter asleep.
func (c *Client) leaveWaiters(w waiter) {
	c.freeMu.Lock()
	for i, x := range c.waitq {
		if x == w {
			c.waitq = append(c.waitq[:i], c.waitq[i+1:]...)
			c.waiters.Add(-1)
			c.freeMu.Unlock()
			return
		}
	}
	c.freeMu.Unlock()
	select {
	case <-w: // woken: pass it on
		c.notifyFree()
	default:
	}
}

// waitFree blocks until w is woken by a freed ID, the earliest rest ends
// (wait, when positive), or ctx is done; it leaves the queue in every case.
func (c *Client) waitFree(ctx context.Context, w waiter, wait time.Duration) error {
	var tc <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		tc = t.C
	}
	select {
	case <-w:
		return nil // notifyFree took w out of the queue
	case <-tc:
	case <-ctx.Done():
		c.leaveWaiters(w)
		return context.Cause(ctx)
	}
	c.leaveWaiters(w)
	return nil
}

// notifyFree wakes the longest waiting sender, if any: an ID was freed.
func (c *Client) notifyFree() {
	if c.waiters.Load() == 0 {
		return
	}
	c.freeMu.Lock()
	if len(c.waitq) > 0 {
		w := c.waitq[0]
		c.waitq[0] = nil
		c.waitq = c.waitq[1:]
		c.waiters.Add(-1)
		w <- struct{}{}
	}
	c.freeMu.Unlock()
}

// notifyAll wakes every waiting sender (the client closed).
func (c *Client) notifyAll() {
	c.freeMu.Lock()
	for _, w := range c.waitq {
		w <- struct{}{}
	}
	c.waiters.Add(-int32(len(c.waitq)))
	c.waitq = nil
	c.freeMu.Unlock()
}

// prepare packs m as a query with ID 0 (set at registration) and records the
// question exactly as it will go on the wire. rnd, when set, is the
// attempt's random source instead of Config.Rand.
func (c *Client) prepare(m *dns.Msg, attempt int, rnd io.Reader) (*Call, error) {
	if m == nil || m.Response || len(m.Question) != 1 {
		return nil, fmt.Errorf("%w: need one question and QR=0", ErrBadQuery)
	}
	q := *m
	q.Id = 0
	name := m.Question[0].Name
	if c.cfg.Case0x20 {
		var err error
		if name, err = c.mixCase(name, rnd); err != nil {
			return nil, err
		}
	}
	// The question and the packed query live in the Call: one allocation
	// instead of three.
	call := &Call{name: name, attempt: attempt, server: c.cfg.Server, rnd: rnd, done: make(chan struct{})}
	call.question[0] = dns.Question{Name: name, Qtype: m.Question[0].Qtype, Qclass: m.Question[0].Qclass}
	q.Question = call.question[:]
	c.addEDNS(&q)
	packed, err := q.PackBuffer(call.buf[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadQuery, err)
	}
	h, err := ParseHead(packed)
	if err != nil || !h.HasQuestion {
		return nil, fmt.Errorf("%w: packed question does not parse: %v", ErrBadQuery, err)
	}
	call.packed, call.qname, call.qtype, call.qclass, call.opcode = packed, h.QName, h.QType, h.QClass, h.Opcode()
	return call, nil
}

// mixCase flips the case of each ASCII letter of name at random (0x20),
// drawing from rnd when set, else from Config.Rand.
func (c *Client) mixCase(name string, rnd io.Reader) (string, error) {
	b := []byte(name)
	var bits [32]byte
	if err := c.fill(rnd, bits[:min(len(bits), (len(b)+7)/8)]); err != nil {
		return "", err
	}
	for i, ch := range b {
		if i/8 >= len(bits) {
			break
		}
		if bits[i/8]>>(i%8)&1 == 0 {
			continue
		}
		switch {
		case 'a' <= ch && ch <= 'z':
			b[i] = ch - ('a' - 'A')
		case 'A' <= ch && ch <= 'Z':
			b[i] = ch + ('a' - 'A')
		}
	}
	return string(b), nil
}

// fill reads len(p) random bytes from rnd when set, else from Config.Rand.
func (c *Client) fill(rnd io.Reader, p []byte) error {
	if rnd == nil {
		return c.randBytes(p)
	}
	if _, err := io.ReadFull(rnd, p); err != nil {
		return fmt.Errorf("udpdns: reading the query's random source: %w", err)
	}
	return nil
}

// randBytes reads from Config.Rand, buffered (crypto/rand never fails, Go
// ≥1.24; another reader may).
func (c *Client) randBytes(p []byte) error {
	c.rndMu.Lock()
	defer c.rndMu.Unlock()
	for len(p) > 0 {
		if c.rndN == 0 {
			r := c.cfg.Rand
			if r == nil {
				r = rand.Reader
			}
			if _, err := io.ReadFull(r, c.rnd[:]); err != nil {
				return fmt.Errorf("udpdns: reading Config.Rand: %w", err)
			}
			c.rndN = len(c.rnd)
		}
		n := copy(p, c.rnd[len(c.rnd)-c.rndN:])
		c.rndN -= n
		p = p[n:]
	}
	return nil
}

func (c *Client) now() int64 { return int64(time.Since(c.epoch)) }

// Call is one attempt at a query: one ID, one datagram.
type Call struct {
	s       *sock
	id      uint16
	packed  []byte
	qname   []byte
	qtype   uint16
	qclass  uint16
	opcode  uint8
	name    string
	attempt int
	server  netip.AddrPort
	sent    time.Time
	rnd     io.Reader // the attempt's random source; nil: Config.Rand

	done   chan struct{}
	onDone func(*Call) // SendFunc's, called once done is closed
	state  EventKind   // guarded by s.mu: EventSent while in flight
	raw    []byte
	rtt    time.Duration
	err    error

	question [1]dns.Question
	buf      [128]byte // the packed query, when it fits

	// The reply, unpacked by the first Reply (the reader unpacks it only
	// when it must look inside: cookies).
	unpack   sync.Once
	reply    *dns.Msg
	replyErr error
}

// ID is the query ID the attempt carries.
func (c *Call) ID() uint16 { return c.id }

// Name is the QNAME as sent.
func (c *Call) Name() string { return c.name }

// Local is the socket the attempt went out on.
func (c *Call) Local() netip.AddrPort { return c.s.local }

// Done is closed when the call completes or ends.
func (c *Call) Done() <-chan struct{} { return c.done }

// Reply is the reply and the error the call ended with, once Done is
// closed (for SendFunc's done). The reply is unpacked on the first call,
// on the caller's goroutine, not on the socket's reader: the reader only
// checked that its records are whole (header, question and every record's
// bounds), so a reply whose RDATA does not decode matched its query and
// Reply reports ErrMalformed for it.
func (c *Call) Reply() (*dns.Msg, error) {
	if c.err != nil || c.raw == nil {
		return nil, c.err
	}
	c.unpack.Do(func() {
		if c.reply != nil {
			return // unpacked by the reader
		}
		m := new(dns.Msg)
		if err := m.Unpack(c.raw); err != nil {
			c.replyErr = fmt.Errorf("%w: %w", ErrMalformed, err)
			return
		}
		c.reply = m
	})
	return c.reply, c.replyErr
}

// Err is the error the call ended with (nil: answered), once Done is
// closed; unlike Reply it unpacks nothing.
func (c *Call) Err() error { return c.err }

// Rcode is the reply's 4-bit header RCODE (no EDNS extension), read from
// the raw reply without unpacking it; -1 when the call was not answered.
func (c *Call) Rcode() int {
	if c.err != nil || len(c.raw) < HeaderLen {
		return -1
	}
	return int(c.raw[3] & 0xf)
}

// Wait blocks until the call is done or ctx ends (which cancels the call).
func (c *Call) Wait(ctx context.Context) (*dns.Msg, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		if c.s.end(c, EventCancelled, context.Cause(ctx)) {
			return nil, context.Cause(ctx)
		}
	}
	return c.Reply()
}

// Cancel ends the call if it is still in flight, freeing its slot (the ID
// rests in quarantine); it reports whether it did.
func (c *Call) Cancel() bool { return c.s.end(c, EventCancelled, context.Canceled) }

// Raw is the reply as received; RTT the time from send to match. Both are
// valid once Done is closed and the call was answered.
func (c *Call) Raw() []byte { return c.raw }

// RTT is the time from send to match.
func (c *Call) RTT() time.Duration { return c.rtt }

// matches checks a parsed reply against the call, in RFC 5452 §9.1 order
// after the ID: source address and port, opcode, question.
func (c *Call) matches(from netip.AddrPort, h *Head, exactCase bool) (Reason, bool) {
	if from != c.server {
		return WrongSource, false
	}
	if h.Opcode() != c.opcode {
		return NotResponse, false
	}
	if !h.HasQuestion || h.QType != c.qtype || h.QClass != c.qclass {
		return WrongQuestion, false
	}
	if exactCase {
		if !equalExact(h.QName, c.qname) {
			return WrongQuestion, false
		}
	} else if !equalFold(h.QName, c.qname) {
		return WrongQuestion, false
	}
	return 0, true
}
