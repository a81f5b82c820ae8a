package nat

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// UDP is a UDP NAT (and on-path middlebox): clients send to Front, and it
// forwards each client's datagrams to the server from an outside
// socket of its own (the binding), and the server's replies back. Rebind
// moves a client's flow to a new outside port or address mid-transfer and
// forgets the old binding, so the server's packets to it are dropped — the
// QUIC interop runner's rebind-port and rebind-addr scenarios.
type UDP struct {
	// Front is where clients send.
	Front netip.AddrPort

	server  netip.AddrPort
	outside netip.Addr
	front   *net.UDPConn
	wg      sync.WaitGroup

	mu       sync.Mutex
	bindings map[netip.AddrPort]*binding
	rebind   *rebindReq
	spoof    *spoofReq
	socks    []*net.UDPConn
	closed   bool
	stats    UDPStats
}

// UDPStats counts what the NAT did.
type UDPStats struct {
	ToServer, ToClient int // datagrams forwarded
	DroppedOld         int // server datagrams to a forgotten binding
	Forged             int // forged copies sent
	ToForged           int // server datagrams that reached a forged address
	ToForgedBytes      int
}

// Rebinding is a binding change the NAT made.
type Rebinding struct {
	Client, Old, New netip.AddrPort
	At               time.Time
	// FirstSize is the size of the client datagram that created the new
	// binding (NATs create bindings on outgoing packets).
	FirstSize int
}

type binding struct {
	client  netip.AddrPort
	out     *net.UDPConn
	outside netip.AddrPort
	dead    bool
}

type rebindReq struct {
	to      netip.Addr
	minSize int
	done    chan Rebinding
}

type spoofReq struct {
	from    []netip.Addr
	minSize int
	left    int
	socks   []*net.UDPConn
	addrs   []netip.AddrPort
	done    chan []netip.AddrPort
}

// NewUDP listens on front (e.g. 127.0.0.1:0) and forwards to server,
// creating bindings on outside (e.g. 127.0.0.1).
func NewUDP(front string, server netip.AddrPort, outside netip.Addr) (*UDP, error) {
	fa, err := net.ResolveUDPAddr("udp", front)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNAT, err)
	}
	fc, err := net.ListenUDP("udp", fa)
	if err != nil {
		return nil, fmt.Errorf("%w: listening on %s: %w", ErrNAT, front, err)
	}
	m := &UDP{Front: fc.LocalAddr().(*net.UDPAddr).AddrPort(), server: server, outside: outside, front: fc,
		bindings: map[netip.AddrPort]*binding{}}
	m.wg.Add(1)
	go m.fromClients()
	return m, nil
}

// Stats returns the counters so far.
func (m *UDP) Stats() UDPStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// IsForged reports whether addr is one of the attacker's forged source
// addresses (see Spoof).
func (m *UDP) IsForged(addr netip.AddrPort) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spoof != nil && slices.Contains(m.spoof.addrs, addr)
}

// Rebind arms a rebinding: the next client datagram of at least minSize
// bytes gets a new outside socket on addr (port chosen by the kernel) and
// the old binding is forgotten. The channel receives the change.
func (m *UDP) Rebind(addr netip.Addr, minSize int) <-chan Rebinding {
	ch := make(chan Rebinding, 1)
	m.mu.Lock()
	m.rebind = &rebindReq{to: addr, minSize: minSize, done: ch}
	m.mu.Unlock()
	return ch
}

// Spoof arms an on-path attacker: for the next n client datagrams of at
// least minSize bytes, a copy is first sent to the server from a socket on
// one of the forged addresses (in turn), then the original is forwarded —
// so the server sees the copy first and the original as a duplicate. What the server
// sends to the forged addresses is counted and dropped. The channel
// receives the forged source addresses once all copies are sent.
func (m *UDP) Spoof(from []netip.Addr, n, minSize int) <-chan []netip.AddrPort {
	ch := make(chan []netip.AddrPort, 1)
	m.mu.Lock()
	m.spoof = &spoofReq{from: from, minSize: minSize, left: n, done: ch}
	m.mu.Unlock()
	return ch
}

// Close stops forwarding and closes every socket.
func (m *UDP) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	socks := append([]*net.UDPConn{m.front}, m.socks...)
	m.mu.Unlock()
	for _, s := range socks {
		s.Close()
	}
	m.wg.Wait()
	return nil
}

func (m *UDP) listen(addr netip.Addr) (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
	if err != nil {
		return nil, fmt.Errorf("%w: binding on %s: %w", ErrNAT, addr, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.Close()
		return nil, fmt.Errorf("%w: closed", ErrNAT)
	}
	m.socks = append(m.socks, c)
	m.mu.Unlock()
	return c, nil
}

func (m *UDP) fromClients() {
	defer m.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, src, err := m.front.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		b, err := m.bindingFor(src, n)
		if err != nil {
			continue // closing
		}
		m.forge(pkt)
		if _, err := b.out.WriteToUDPAddrPort(pkt, m.server); err == nil {
			m.mu.Lock()
			m.stats.ToServer++
			m.mu.Unlock()
		}
	}
}

// bindingFor returns the client's binding, creating it, or replacing it
// when a rebinding is armed and this datagram is big enough.
func (m *UDP) bindingFor(client netip.AddrPort, size int) (*binding, error) {
	m.mu.Lock()
	b := m.bindings[client]
	req := m.rebind
	m.mu.Unlock()
	if b != nil && (req == nil || size < req.minSize) {
		return b, nil
	}
	addr := m.outside
	if b != nil {
		addr = req.to
	}
	out, err := m.listen(addr)
	if err != nil {
		return nil, err
	}
	nb := &binding{client: client, out: out, outside: out.LocalAddr().(*net.UDPAddr).AddrPort()}
	m.mu.Lock()
	m.bindings[client] = nb
	if b != nil {
		b.dead = true
		m.rebind = nil
	}
	m.mu.Unlock()
	m.wg.Add(1)
	go m.fromServer(nb)
	if b != nil {
		req.done <- Rebinding{Client: client, Old: b.outside, New: nb.outside, At: time.Now(), FirstSize: size}
	}
	return nb, nil
}

func (m *UDP) fromServer(b *binding) {
	defer m.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := b.out.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		m.mu.Lock()
		dead := b.dead
		if dead {
			m.stats.DroppedOld++
		}
		m.mu.Unlock()
		if dead {
			continue
		}
		if _, err := m.front.WriteToUDPAddrPort(buf[:n], b.client); err == nil {
			m.mu.Lock()
			m.stats.ToClient++
			m.mu.Unlock()
		}
	}
}

// forge sends the armed attacker's copies of pkt.
func (m *UDP) forge(pkt []byte) {
	m.mu.Lock()
	s := m.spoof
	if s == nil || s.left == 0 || len(pkt) < s.minSize {
		m.mu.Unlock()
		return
	}
	s.left--
	k := s.left
	last := s.left == 0
	m.mu.Unlock()
	if s.socks == nil {
		for _, a := range s.from {
			c, err := m.listen(a)
			if err != nil {
				continue
			}
			m.mu.Lock()
			s.socks = append(s.socks, c)
			s.addrs = append(s.addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
			m.mu.Unlock()
			m.wg.Add(1)
			go m.attackerReads(c)
		}
	}
	if len(s.socks) > 0 {
		if _, err := s.socks[k%len(s.socks)].WriteToUDPAddrPort(pkt, m.server); err == nil {
			m.mu.Lock()
			m.stats.Forged++
			m.mu.Unlock()
		}
	}
	if last {
		s.done <- s.addrs
	}
}

func (m *UDP) attackerReads(c *net.UDPConn) {
	defer m.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		m.mu.Lock()
		m.stats.ToForged++
		m.stats.ToForgedBytes += n
		m.mu.Unlock()
	}
}
