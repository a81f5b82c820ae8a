package udpdns

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// ServerConfig configures a Server. The knobs shape how answers leave, for
// experiments; the answers themselves come from the zone and depend on the
// query alone.
type ServerConfig struct {
	// Addr to listen on; default "127.0.0.1:0" (the kernel picks the port).
	Addr string
	// Zone to answer from; default BuiltinZone().
	Zone *Zone
	// Delay holds every answer this long; Jitter adds a random [0, Jitter),
	// so answers leave in another order than their queries came.
	Delay, Jitter time.Duration
	// DropRate is the fraction of queries never answered; DupRate the
	// fraction answered twice.
	DropRate, DupRate float64
	// Seed seeds the server's random choices; 0 picks one. Each query's
	// draws (drop, duplicate, jitter) come from a stream of their own,
	// derived from the seed, the query's ID, QNAME and QTYPE, and how many
	// times that same query came before: they do not depend on the order
	// in which concurrent queries reach the handler.
	Seed uint64
	// AnswerFrom, when set, is an address (e.g. "127.0.0.2:0") of a second
	// socket that answers instead of the one queried: a spoofed source.
	AnswerFrom string
	// Policy, when set, sees every query with the action the knobs chose
	// and may change it.
	Policy func(q *dns.Msg, from netip.AddrPort, a *Action)
	// TallyFile, when set, names a file to which the server appends one
	// byte for every datagram it writes (answers and their copies), right
	// after the write: a count that survives the server's process being
	// killed, for experiments that check their capture against it.
	TallyFile string
}

// Action is what the server does with one query.
type Action struct {
	Drop   bool
	Delay  time.Duration
	Copies int // answers sent; 0 means 1
	// Hold, when set, keeps the answer until it is closed (or the server
	// stops).
	Hold <-chan struct{}
	// FromAlt answers from the AnswerFrom socket.
	FromAlt bool
	// Sent, when set, is called after the answer was written, with the
	// write's error.
	Sent func(error)
}

// ServerStats counts what the server did.
type ServerStats struct {
	Received, Answered, Dropped, Duplicated, Aborted uint64
	// Written counts datagrams written without error: answers and their
	// copies.
	Written uint64
}

// Server is a stateless authoritative DNS server over UDP built on
// miekg/dns, with knobs that delay, reorder, drop and duplicate answers. It
// can be stopped and started again on the same address.
type Server struct {
	cfg  ServerConfig
	zone *Zone

	// seen counts each query (ID, QNAME, QTYPE) that came, for its draws;
	// it forgets everything when it grows past maxSeen.
	seenMu sync.Mutex
	seen   map[drawKey]uint32

	tallyMu sync.Mutex
	tally   *os.File

	received, answered, dropped, duplicated, aborted, written atomic.Uint64

	mu   sync.Mutex
	addr netip.AddrPort
	gen  *generation
	alt  *net.UDPConn
}

// generation is one run of the server between Start and Stop.
type generation struct {
	conn *net.UDPConn
	srv  *dns.Server
	quit chan struct{}
	wg   sync.WaitGroup
	done chan error
}

// ErrServerRunning / ErrServerStopped report misuse of Start and Stop.
var (
	ErrServerRunning = errors.New("udpdns: server already running")
	ErrServerStopped = errors.New("udpdns: server not running")
)

// NewServer builds a server; Start makes it listen.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Zone == nil {
		cfg.Zone = BuiltinZone()
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	s := &Server{cfg: cfg, zone: cfg.Zone, seen: map[drawKey]uint32{}}
	if cfg.TallyFile != "" {
		f, err := os.OpenFile(cfg.TallyFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("udpdns: TallyFile: %w", err)
		}
		s.tally = f
	}
	if cfg.AnswerFrom != "" {
		ua, err := net.ResolveUDPAddr("udp", cfg.AnswerFrom)
		if err != nil {
			s.closeTally()
			return nil, fmt.Errorf("udpdns: AnswerFrom: %w", err)
		}
		if s.alt, err = net.ListenUDP("udp", ua); err != nil {
			s.closeTally()
			return nil, fmt.Errorf("udpdns: AnswerFrom socket: %w", err)
		}
	}
	return s, nil
}

// StartServer is NewServer followed by Start.
func StartServer(cfg ServerConfig) (*Server, error) {
	s, err := NewServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Addr is where the server listens (after the first Start, kept across
// restarts).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// AltAddr is the AnswerFrom socket's address, if any.
func (s *Server) AltAddr() netip.AddrPort {
	if s.alt == nil {
		return netip.AddrPort{}
	}
	return s.alt.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Running reports whether the server is listening.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen != nil
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{Received: s.received.Load(), Answered: s.answered.Load(), Dropped: s.dropped.Load(),
		Duplicated: s.duplicated.Load(), Aborted: s.aborted.Load(), Written: s.written.Load()}
}

// Start listens (on the address of the previous run after a Stop) and
// returns once miekg/dns reports the server started.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != nil {
		return ErrServerRunning
	}
	addr := s.cfg.Addr
	if s.addr.IsValid() {
		addr = s.addr.String()
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("udpdns: server address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("udpdns: server listen %s: %w", addr, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	g := &generation{conn: conn, quit: make(chan struct{}), done: make(chan error, 1)}
	started := make(chan struct{})
	g.srv = &dns.Server{PacketConn: conn, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(g, w, r) }),
		NotifyStartedFunc: func() { close(started) }}
	go func() { g.done <- g.srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-g.done:
		conn.Close()
		return fmt.Errorf("udpdns: server did not start: %w", err)
	}
	lap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.addr = netip.AddrPortFrom(lap.Addr().Unmap(), lap.Port())
	s.gen = g
	return nil
}

// Stop closes the socket; answers still held are abandoned (counted as
// Aborted). The server keeps nothing else: Start picks up where it was.
func (s *Server) Stop() error {
	s.mu.Lock()
	g := s.gen
	s.gen = nil
	s.mu.Unlock()
	if g == nil {
		return ErrServerStopped
	}
	// Shutdown returns once miekg/dns's handlers have returned, so no
	// held answer is added after quit is closed.
	err := g.srv.Shutdown()
	close(g.quit)
	g.wg.Wait()
	g.conn.Close()
	<-g.done
	return err
}

// Close stops the server if running and closes the AnswerFrom socket and
// the tally file. Safe to call twice.
func (s *Server) Close() error {
	if s.Running() {
		_ = s.Stop()
	}
	if s.alt != nil {
		s.alt.Close()
	}
	s.closeTally()
	return nil
}

func (s *Server) closeTally() {
	s.tallyMu.Lock()
	defer s.tallyMu.Unlock()
	if s.tally != nil {
		s.tally.Close()
		s.tally = nil
	}
}

// drawKey names a query for its random draws.
type drawKey struct {
	id, qtype uint16
	name      string
}

// maxSeen bounds the memory of queries seen: past it, the count restarts.
const maxSeen = 1 << 20

// draws returns the random stream for query q: derived from the seed, the
// query (ID, QNAME as sent, QTYPE) and how many times it came before, so
// that it does not depend on the order concurrent queries are handled in.
func (s *Server) draws(q *dns.Msg) *rand.Rand {
	k := drawKey{id: q.Id}
	if len(q.Question) > 0 {
		k.name, k.qtype = q.Question[0].Name, q.Question[0].Qtype
	}
	s.seenMu.Lock()
	if len(s.seen) >= maxSeen {
		clear(s.seen)
	}
	n := s.seen[k]
	s.seen[k] = n + 1
	s.seenMu.Unlock()
	h := fnv.New64a()
	fmt.Fprintf(h, "%d\x00%d\x00%s\x00%d", k.id, k.qtype, k.name, n)
	return rand.New(rand.NewPCG(s.cfg.Seed, h.Sum64()))
}

func (s *Server) decide(q *dns.Msg, from netip.AddrPort) Action {
	var a Action
	a.Delay = s.cfg.Delay
	if s.cfg.DropRate > 0 || s.cfg.DupRate > 0 || s.cfg.Jitter > 0 {
		rnd := s.draws(q)
		if s.cfg.DropRate > 0 && rnd.Float64() < s.cfg.DropRate {
			a.Drop = true
		}
		if s.cfg.DupRate > 0 && rnd.Float64() < s.cfg.DupRate {
			a.Copies = 2
		}
		if s.cfg.Jitter > 0 {
			a.Delay += time.Duration(rnd.Int64N(int64(s.cfg.Jitter)))
		}
	}
	a.FromAlt = s.alt != nil
	if s.cfg.Policy != nil {
		s.cfg.Policy(q, from, &a)
	}
	return a
}

// wrote counts a datagram written, in the counters and the tally file.
func (s *Server) wrote() {
	s.written.Add(1)
	if s.cfg.TallyFile == "" {
		return
	}
	s.tallyMu.Lock()
	defer s.tallyMu.Unlock()
	if s.tally != nil {
		_, _ = s.tally.Write([]byte{'.'})
	}
}

// ReadTally counts the datagrams a server (of this process or another,
// alive or killed) recorded in its TallyFile; a missing file counts 0.
func ReadTally(path string) (int, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return int(st.Size()), nil
}

func (s *Server) serve(g *generation, w dns.ResponseWriter, req *dns.Msg) {
	s.received.Add(1)
	ua, _ := w.RemoteAddr().(*net.UDPAddr)
	if ua == nil {
		return
	}
	to := ua.AddrPort()
	from := netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	a := s.decide(req, from)
	if a.Drop {
		s.dropped.Add(1)
		return
	}
	reply := s.zone.Answer(req)
	size := dns.MinMsgSize
	if o := req.IsEdns0(); o != nil {
		size = max(int(o.UDPSize()), dns.MinMsgSize)
	}
	reply.Truncate(size)
	b, err := reply.Pack()
	if err != nil {
		s.dropped.Add(1)
		return
	}
	conn := g.conn
	if a.FromAlt && s.alt != nil {
		conn = s.alt
	}
	copies := max(a.Copies, 1)
	send := func() {
		var err error
		for range copies {
			_, werr := conn.WriteToUDPAddrPort(b, to)
			if werr == nil {
				s.wrote()
			} else if err == nil {
				err = werr
			}
		}
		s.answered.Add(1)
		if copies > 1 {
			s.duplicated.Add(uint64(copies - 1))
		}
		if a.Sent != nil {
			a.Sent(err)
		}
	}
	if a.Delay <= 0 && a.Hold == nil {
		send()
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if a.Hold != nil {
			select {
			case <-a.Hold:
			case <-g.quit:
				s.aborted.Add(1)
				return
			}
		}
		if a.Delay > 0 {
			t := time.NewTimer(a.Delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-g.quit:
				s.aborted.Add(1)
				return
			}
		}
		send()
	}()
}
