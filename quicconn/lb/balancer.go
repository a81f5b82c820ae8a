package lb

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"sync"
)

// Mode is how the balancer picks a backend.
type Mode int

const (
	// ByTuple hashes the client's 4-tuple: a client whose address
	// changes lands on another backend (two times in three, with three).
	ByTuple Mode = iota
	// ByCID reads the server ID from the destination connection ID
	// (Config.Decode); a long header packet whose DCID the client chose
	// (its Initials and 0-RTT) is routed by a hash of that DCID.
	ByCID
)

func (m Mode) String() string {
	if m == ByCID {
		return "connection ID"
	}
	return "4-tuple hash"
}

// How a datagram was routed (Route.By).
const (
	ByTupleHash = "4-tuple hash"
	ByServerID  = "server ID"
	ByDCIDHash  = "DCID hash"
)

// Route is where the balancer sends one client datagram, and why.
type Route struct {
	Backend  int    // index in the balancer's backends
	By       string // ByTupleHash, ByServerID or ByDCIDHash
	DCID     []byte // the destination connection ID read (ByCID)
	ServerID []byte // decoded from DCID (ByServerID)
	// Why says, for a DCID hash, why the DCID gave no server ID.
	Why string
}

// Stats counts what the balancer routed: per backend, per reason; the
// replies it carried back; what it dropped. These are counters, not a
// table: nothing in them is per connection.
type Stats struct {
	ToBackend []int // client datagrams sent to each backend
	// Client datagrams routed by a 4-tuple hash, by server ID, by a
	// DCID hash (Route.By).
	TupleHash, ServerID, DCIDHash int
	ToClient                      int // backend replies carried to clients
	Dropped                       int // datagrams that were neither a client's nor a backend's valid reply
	// FromClients is every datagram read from a client (any source not a
	// backend), counted once it was forwarded or dropped.
	FromClients int
	// FromBackends is every datagram read from a backend, counted once it
	// was carried to its client or dropped.
	FromBackends int
}

// Balancer is a UDP load balancer in front of QUIC backends. Clients
// send to Front; each datagram goes, encapsulated with the client's
// address (Encap), to the backend Route picks; a backend's reply names
// the client it goes to, and the balancer sends it from Front. It keeps
// no table: its fields are its configuration and its counters.
type Balancer struct {
	// Front is where clients send.
	Front netip.AddrPort

	mode     Mode
	cfg      Config
	backends []netip.AddrPort
	sock     *net.UDPConn
	wg       sync.WaitGroup
	once     sync.Once

	mu      sync.Mutex
	stats   Stats
	changed chan struct{} // closed and replaced on every count
}

// ServerID is the server ID of backend i under a config: i+1, big-endian,
// in ServerIDLen bytes.
func (c Config) ServerID(i int) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(i+1))
	return b[8-c.ServerIDLen:]
}

// New listens on front and balances over backends; cfg is the CID
// config of the backends' connection IDs (backend i issues ServerID(i)),
// used in ByCID mode and to read short headers' DCIDs.
func New(front string, backends []netip.AddrPort, mode Mode, cfg Config) (*Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(backends) == 0 {
		return nil, fmt.Errorf("%w: no backends", ErrConfig)
	}
	fa, err := net.ResolveUDPAddr("udp", front)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	sock, err := net.ListenUDP("udp", fa)
	if err != nil {
		return nil, fmt.Errorf("lb: listening on %s: %w", front, err)
	}
	b := &Balancer{Front: sock.LocalAddr().(*net.UDPAddr).AddrPort(), mode: mode, cfg: cfg, backends: backends, sock: sock,
		stats: Stats{ToBackend: make([]int, len(backends))}, changed: make(chan struct{})}
	b.wg.Add(1)
	go b.run()
	return b, nil
}

// Mode is the balancer's routing mode.
func (b *Balancer) Mode() Mode { return b.mode }

// Backend is the address of backend i.
func (b *Balancer) Backend(i int) netip.AddrPort { return b.backends[i] }

// BackendOf is the index of the backend at addr, -1 if none.
func (b *Balancer) BackendOf(addr netip.AddrPort) int {
	for i, a := range b.backends {
		if a == addr {
			return i
		}
	}
	return -1
}

// Stats returns the counters so far.
func (b *Balancer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.ToBackend = append([]int(nil), s.ToBackend...)
	return s
}

// Close stops the balancer.
func (b *Balancer) Close() error {
	b.once.Do(func() {
		b.sock.Close()
		b.wg.Wait()
	})
	return nil
}

// Route is the backend a client datagram from src goes to: a pure
// function of the datagram, its source and the configuration.
func (b *Balancer) Route(src netip.AddrPort, d []byte) Route {
	if b.mode == ByTuple {
		return Route{Backend: b.hash(src.String(), b.Front.String()), By: ByTupleHash}
	}
	dcid, err := DCID(d, b.cfg.Len())
	if err != nil {
		return Route{Backend: b.hash(src.String(), b.Front.String()), By: ByTupleHash, Why: err.Error()}
	}
	sid, err := b.cfg.Decode(dcid)
	if err == nil {
		if i := b.serverIndex(sid); i >= 0 {
			return Route{Backend: i, By: ByServerID, DCID: dcid, ServerID: sid}
		}
		err = fmt.Errorf("%w: server ID %x is no backend's", ErrCID, sid)
	}
	return Route{Backend: b.hash(string(dcid)), By: ByDCIDHash, DCID: dcid, Why: err.Error()}
}

// serverIndex is the backend whose server ID is sid, -1 if none.
func (b *Balancer) serverIndex(sid []byte) int {
	for i := range b.backends {
		if string(b.cfg.ServerID(i)) == string(sid) {
			return i
		}
	}
	return -1
}

func (b *Balancer) hash(parts ...string) int {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int(h.Sum64() % uint64(len(b.backends)))
}

// DCID is the destination connection ID of a QUIC datagram's first
// packet: from a long header its length says; a short header's is
// shortLen bytes (the receiver's choice: the header does not say).
func DCID(d []byte, shortLen int) ([]byte, error) {
	if len(d) == 0 {
		return nil, fmt.Errorf("%w: empty datagram", ErrCID)
	}
	if d[0]&0x80 == 0 {
		if len(d) < 1+shortLen {
			return nil, fmt.Errorf("%w: short header of %d bytes", ErrCID, len(d))
		}
		return d[1 : 1+shortLen], nil
	}
	if len(d) < 6 || int(d[5]) > 20 || len(d) < 6+int(d[5]) {
		return nil, fmt.Errorf("%w: long header cut short (%d bytes)", ErrCID, len(d))
	}
	return d[6 : 6+int(d[5])], nil
}

func (b *Balancer) run() {
	defer b.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, err := b.sock.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		d := buf[:n]
		if b.BackendOf(src) >= 0 {
			b.reply(d)
			continue
		}
		r := b.Route(src, d)
		// Counted once forwarded (or dropped), never before: a waiter
		// that sees the count may close the socket.
		if _, err := b.sock.WriteToUDPAddrPort(Encap(src, d), b.backends[r.Backend]); err != nil {
			b.count(func(s *Stats) { s.Dropped++; s.FromClients++ })
			continue
		}
		b.count(func(s *Stats) {
			s.FromClients++
			s.ToBackend[r.Backend]++
			switch r.By {
			case ByTupleHash:
				s.TupleHash++
			case ByServerID:
				s.ServerID++
			default:
				s.DCIDHash++
			}
		})
	}
}

// reply carries a backend's reply to the client its header names.
func (b *Balancer) reply(d []byte) {
	to, payload, err := Decap(d)
	if err == nil {
		_, err = b.sock.WriteToUDPAddrPort(payload, to)
	}
	if err != nil {
		b.count(func(s *Stats) { s.Dropped++; s.FromBackends++ })
		return
	}
	b.count(func(s *Stats) { s.ToClient++; s.FromBackends++ })
}

func (b *Balancer) count(f func(*Stats)) {
	b.mu.Lock()
	f(&b.stats)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// WaitFromClients waits until the balancer has read and forwarded (or
// dropped) n datagrams from clients (Stats.FromClients), or ctx ends. Before a balancer is closed,
// it lets whatever the clients sent reach it: a datagram that arrives
// after Close is on the wire but never routed.
func (b *Balancer) WaitFromClients(ctx context.Context, n int) error {
	return b.waitCount(ctx, n, "client", func(s *Stats) int { return s.FromClients })
}

// WaitFromBackends is WaitFromClients for the backends' side: it waits
// until the balancer has read and carried back (or dropped) n datagrams
// from backends (Stats.FromBackends), or ctx ends.
func (b *Balancer) WaitFromBackends(ctx context.Context, n int) error {
	return b.waitCount(ctx, n, "backend", func(s *Stats) int { return s.FromBackends })
}

func (b *Balancer) waitCount(ctx context.Context, n int, what string, count func(*Stats) int) error {
	for { // ends: each round returns or waits for a count or ctx
		b.mu.Lock()
		got, ch := count(&b.stats), b.changed
		b.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("lb: %d of %d %s datagrams read: %w", got, n, what, context.Cause(ctx))
		}
	}
}
