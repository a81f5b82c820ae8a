package udpdns

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

const numIDs = 1 << 16

// batchReader is ipv4.PacketConn or ipv6.PacketConn (their Message types
// are the same type).
type batchReader interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchWriter is ipv4.PacketConn or ipv6.PacketConn.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// rest records an ID whose call has ended, until when it stays reserved.
type rest struct {
	call  *Call
	until int64
}

// sock is one unconnected UDP socket and its table of calls in flight. The
// table is indexed by ID, so a reply finds its call without hashing; one
// mutex guards it, the counters and the ID allocator's random bytes.
type sock struct {
	c     *Client
	conn  *net.UDPConn
	local netip.AddrPort
	br    batchReader
	done  chan struct{}

	// Batched writes (nil bw: one sendto per query). A sender that finds
	// no writer at work becomes the writer and drains the queue, the
	// queries other senders added meanwhile included, one sendmmsg per
	// batch of up to WriteBatch.
	bw      batchWriter
	srvUDP  *net.UDPAddr
	wmu     sync.Mutex
	writing bool
	wq      []*Call // queued, guarded by wmu
	wspare  []*Call // the writer's batch, swapped with wq
	wmsgs   []ipv4.Message
	wsys    uint64 // write system calls, guarded by wmu
	wdgrams uint64 // datagrams they carried

	mu       sync.Mutex
	closed   bool
	n        int
	st       Stats
	inflight [numIDs]*Call
	recent   [numIDs]rest
	rnd      [512]byte
	rndN     int

	// The free set: IDs neither in flight nor resting, in freeIDs[:nFree];
	// freePos[id] is where a free id sits. An ID that ends goes to quarQ
	// (timed out, cancelled) or lingerQ (answered) and back to the free set
	// when its rest is over.
	freeIDs [numIDs]uint16
	freePos [numIDs]uint16
	nFree   int
	quarQ   restQueue
	lingerQ restQueue
}

func openSock(c *Client) (*sock, error) {
	network := "udp4"
	if !c.cfg.Local.Is4() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.cfg.Local, 0)))
	if err != nil {
		return nil, fmt.Errorf("udpdns: opening a client socket: %w", err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	_ = conn.SetWriteBuffer(4 << 20)
	lap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s := &sock{c: c, conn: conn, local: netip.AddrPortFrom(lap.Addr().Unmap(), lap.Port()), done: make(chan struct{})}
	s.initIDs()
	if c.cfg.ReadBatch > 1 {
		if network == "udp4" {
			s.br = ipv4.NewPacketConn(conn)
		} else {
			s.br = ipv6.NewPacketConn(conn)
		}
	}
	if c.cfg.WriteBatch > 1 {
		if network == "udp4" {
			s.bw = ipv4.NewPacketConn(conn)
		} else {
			s.bw = ipv6.NewPacketConn(conn)
		}
		s.srvUDP = net.UDPAddrFromAddrPort(c.cfg.Server)
		s.wmsgs = make([]ipv4.Message, c.cfg.WriteBatch)
		for i := range s.wmsgs {
			s.wmsgs[i].Buffers = make([][]byte, 1)
			s.wmsgs[i].Addr = s.srvUDP
		}
	}
	go s.readLoop()
	return s, nil
}

// initIDs puts every ID in the free set.
func (s *sock) initIDs() {
	for i := range s.freeIDs {
		s.freeIDs[i] = uint16(i)
		s.freePos[i] = uint16(i)
	}
	s.nFree = numIDs
	s.quarQ.until = s.c.cfg.Quarantine
	s.lingerQ.until = s.c.cfg.Linger
}

// fill reads len(p) ≤ 4 random bytes: from rnd (a query's own source)
// when set, else from Config.Rand through the socket's buffer. Caller
// holds mu.
func (s *sock) fill(rnd io.Reader, p []byte) error {
	if rnd != nil {
		return s.c.fill(rnd, p)
	}
	if s.rndN < len(p) {
		if err := s.c.randBytes(s.rnd[:]); err != nil {
			return err
		}
		s.rndN = len(s.rnd)
	}
	s.rndN -= copy(p, s.rnd[len(s.rnd)-s.rndN:])
	return nil
}

// randN draws a uniform integer in [0, n), rejecting the draws that would
// bias it. 0 < n ≤ 65,536. Caller holds mu.
func (s *sock) randN(n int, rnd io.Reader) (int, error) {
	limit := (1 << 32) / uint64(n) * uint64(n)
	var b [4]byte
	for { // ends: each draw is accepted with probability > 1/2
		if err := s.fill(rnd, b[:]); err != nil {
			return 0, err
		}
		r := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		if r < limit {
			return int(r % uint64(n)), nil
		}
	}
}

// free reports whether id may be given to a new call. Caller holds mu.
func (s *sock) free(id uint16, now int64) bool {
	return s.inflight[id] == nil && s.recent[id].until <= now
}

// rest puts call's ID in quarantine (timed out, cancelled) or lingering
// (answered) until now+d, queued in time order. Caller holds mu and took
// now under it, so each queue's times never decrease.
func (s *sock) rest(call *Call, now int64, q *restQueue) {
	s.recent[call.id] = rest{call: call, until: now + int64(q.until)}
	q.push(call.id)
}

// release returns an ID to the free set at once. Caller holds mu.
func (s *sock) release(id uint16) {
	s.freeIDs[s.nFree] = id
	s.freePos[id] = uint16(s.nFree)
	s.nFree++
}

// inFreeSet reports whether id is in the free set. Caller holds mu.
func (s *sock) inFreeSet(id uint16) bool {
	i := int(s.freePos[id])
	return i < s.nFree && s.freeIDs[i] == id
}

// take removes the ID at position i of the free set. Caller holds mu.
func (s *sock) take(i int) uint16 {
	id := s.freeIDs[i]
	s.nFree--
	last := s.freeIDs[s.nFree]
	s.freeIDs[i] = last
	s.freePos[last] = uint16(i)
	return id
}

// reclaim moves the IDs whose rest has ended into the free set. Caller
// holds mu.
func (s *sock) reclaim(now int64) {
	for _, q := range []*restQueue{&s.quarQ, &s.lingerQ} {
		for q.len() > 0 { // ends: each round pops one
			id := q.peek()
			if s.recent[id].until > now {
				break
			}
			q.pop()
			s.release(id)
		}
	}
}

// idDraws is how many uniform 16-bit draws allocID tries before it picks
// from the free set by position.
const idDraws = 4

// allocID picks an ID uniformly at random among the free ones, drawing from
// rnd when set, else from Config.Rand. It first draws a 16-bit ID and keeps
// it when free: which ID a draw gives depends on the draw alone, not on the
// order in which earlier IDs left and rejoined the free set, so a seeded
// source gives the same IDs run after run. After idDraws misses (a table
// nearly full) it picks a position in the free set (O(1) however full).
// Each way the ID is uniform over the free ones, so the mixture is too.
// Caller holds mu.
func (s *sock) allocID(now int64, rnd io.Reader) (uint16, bool, error) {
	s.reclaim(now)
	if s.nFree == 0 {
		return 0, false, nil
	}
	var b [2]byte
	for range idDraws {
		if err := s.fill(rnd, b[:]); err != nil {
			return 0, false, err
		}
		if id := uint16(b[0])<<8 | uint16(b[1]); s.inFreeSet(id) {
			return s.take(int(s.freePos[id])), true, nil
		}
	}
	i, err := s.randN(s.nFree, rnd)
	if err != nil {
		return 0, false, err
	}
	return s.take(i), true, nil
}

// nextExpiry is how long until the earliest resting ID frees (0: none
// rests, only a completion can free one). Caller holds mu, after reclaim.
func (s *sock) nextExpiry(now int64) time.Duration {
	earliest := int64(-1)
	for _, q := range []*restQueue{&s.quarQ, &s.lingerQ} {
		if q.len() > 0 {
			if u := s.recent[q.peek()].until; earliest < 0 || u < earliest {
				earliest = u
			}
		}
	}
	if earliest < 0 {
		return 0
	}
	return time.Duration(max(earliest-now, 1))
}

// restQueue is a FIFO ring of resting IDs. Every ID in it rests for the
// same duration (until), and they are pushed in time order, so the head is
// always the first to free. An ID is in at most one queue, at most once
// (it cannot be reused before it leaves), so 65,536 slots suffice.
type restQueue struct {
	until      time.Duration
	ids        [numIDs]uint16
	head, size int
}

func (q *restQueue) len() int     { return q.size }
func (q *restQueue) peek() uint16 { return q.ids[q.head] }
func (q *restQueue) pop()         { q.head = (q.head + 1) % numIDs; q.size-- }
func (q *restQueue) push(id uint16) {
	q.ids[(q.head+q.size)%numIDs] = id
	q.size++
}

// register gives call a free ID and enters it in the table. When none is
// free it returns false and how long until a quarantined ID frees (0: only a
// completion can free one).
func (s *sock) register(call *Call) (bool, time.Duration, error) {
	s.mu.Lock()
	now := s.c.now()
	if s.closed {
		s.mu.Unlock()
		return false, 0, ErrClosed
	}
	id, ok, err := s.allocID(now, call.rnd)
	if err != nil {
		s.mu.Unlock()
		return false, 0, err
	}
	if !ok {
		w := s.nextExpiry(now)
		s.mu.Unlock()
		return false, w, nil
	}
	call.s, call.id = s, id
	call.packed[0], call.packed[1] = byte(id>>8), byte(id)
	call.state = EventSent
	call.sent = time.Now()
	s.inflight[id] = call
	s.n++
	s.st.Sent++
	if call.attempt > 0 {
		s.st.Retries++
	}
	s.mu.Unlock()
	return true, 0, nil
}

// write sends the call's datagram; EventSent is traced once it is on the
// wire (its reply may be traced first). With batched writes, a call queued
// behind another writer returns nil at once: should its datagram then fail
// to go out, the call ends with the error (Wait and Exchange return it).
func (s *sock) write(call *Call) error {
	if s.bw == nil {
		_, err := s.written(call, s.writeOne(call))
		return err
	}
	s.wmu.Lock()
	s.wq = append(s.wq, call)
	if s.writing {
		s.wmu.Unlock()
		return nil
	}
	s.writing = true
	return s.drain(call)
}

// holdWrites makes the reader the writer while it handles a batch of
// replies (with batched writes): the queries their completions send queue
// up and go out together, one sendmmsg, when the reader calls drain after
// the batch. It reports false when another goroutine is the writer (its
// drain sends them) or writes are not batched.
func (s *sock) holdWrites() bool {
	if s.bw == nil {
		return false
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.writing {
		return false
	}
	s.writing = true
	return true
}

// releaseWrites sends what queued while the reader held the writer's role.
func (s *sock) releaseWrites() {
	s.wmu.Lock()
	_ = s.drain(nil)
}

// drain is the writer's loop: it empties the queue, the queries added
// meanwhile included, then gives up the writer's role. The caller holds
// wmu and is the writer; drain unlocks wmu. It returns the error of call's
// datagram, if call was among those sent.
func (s *sock) drain(call *Call) error {
	var mine error
	var failed []*Call  // queued calls whose datagram failed: their done runs after the loop
	for len(s.wq) > 0 { // ends: each round empties the queue, refilled only by senders in flight (done, which may send, runs after the loop)
		batch := s.wq
		s.wq = s.wspare[:0]
		s.wmu.Unlock()
		sys, errs := s.flush(batch)
		for _, e := range errs {
			ended, err := s.written(e.call, e.err)
			switch {
			case e.call == call:
				mine = err
			case ended && e.call.onDone != nil:
				failed = append(failed, e.call)
			}
		}
		s.wmu.Lock()
		s.wsys += uint64(sys)
		s.wdgrams += uint64(len(batch))
		clear(batch)
		s.wspare = batch[:0]
	}
	s.writing = false
	s.wmu.Unlock()
	// Their Sends returned before the datagram went out, so no Send
	// returns the error: done does. A done that sends again becomes a
	// writer of its own, and its failure is its Send's error.
	for _, c := range failed {
		c.onDone(c)
	}
	return mine
}

func (s *sock) writeOne(call *Call) error {
	_, err := s.conn.WriteToUDPAddrPort(call.packed, call.server)
	return err
}

type writeErr struct {
	call *Call
	err  error
}

// flush writes batch with as few sendmmsg calls as it can and traces each
// datagram sent; it returns how many system calls it made and the calls
// whose datagram failed. Only the writer calls it.
func (s *sock) flush(batch []*Call) (sys int, errs []writeErr) {
	if len(batch) == 1 {
		if err := s.writeOne(batch[0]); err != nil {
			return 1, []writeErr{{batch[0], err}}
		}
		s.traceSent(batch[0])
		return 1, nil
	}
	for len(batch) > 0 { // each round sends or fails at least one datagram
		k := min(len(batch), len(s.wmsgs))
		for i := range k {
			s.wmsgs[i].Buffers[0] = batch[i].packed
		}
		n, err := s.bw.WriteBatch(s.wmsgs[:k], 0)
		sys++
		n = max(n, 0)
		for i := range n {
			s.traceSent(batch[i])
		}
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("sendmmsg sent nothing")
			}
			errs = append(errs, writeErr{batch[n], err})
			n++
		}
		batch = batch[n:]
	}
	for i := range s.wmsgs {
		s.wmsgs[i].Buffers[0] = nil
	}
	return sys, errs
}

func (s *sock) traceSent(call *Call) {
	s.trace(Event{Kind: EventSent, ID: call.id, Name: call.name, QType: call.qtype, Attempt: call.attempt, Peer: call.server})
}

// written finishes a write: traces it, or ends the call with err. It
// reports whether it ended the call, and the error for its Send: nil when
// the call had already ended (the client closed under it, and the close
// ran SendFunc's done), so that a call never both runs done and fails its
// Send.
func (s *sock) written(call *Call, err error) (bool, error) {
	if err == nil {
		if s.bw == nil {
			s.traceSent(call)
		}
		return false, nil
	}
	if errors.Is(err, net.ErrClosed) {
		err = ErrClosed
	} else {
		err = fmt.Errorf("udpdns: sending query %#04x: %w", call.id, err)
	}
	s.mu.Lock()
	if s.inflight[call.id] == call {
		s.inflight[call.id] = nil
		s.release(call.id) // never on the wire: no reply can come
		s.n--
		s.st.Lost++
		s.st.SendFailed++
		call.state = EventCancelled
		call.err = err
		close(call.done)
	} else {
		s.mu.Unlock()
		return false, nil // ended already: its end is what its caller sees
	}
	s.mu.Unlock()
	s.c.notifyFree()
	return true, err
}

// writeStats is how many write system calls the socket made and how many
// datagrams they carried.
func (s *sock) writeStats() (syscalls, datagrams uint64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.wsys, s.wdgrams
}

// end finishes a call that is still in flight, as timed out or cancelled,
// and puts its ID in quarantine. It reports false when the call had already
// finished (its reply won the race).
func (s *sock) end(call *Call, kind EventKind, err error) bool {
	s.mu.Lock()
	if call.state != EventSent {
		s.mu.Unlock()
		return false
	}
	s.inflight[call.id] = nil
	s.rest(call, s.c.now(), &s.quarQ)
	s.n--
	s.st.Lost++
	if kind == EventTimedOut {
		s.st.TimedOut++
	} else {
		s.st.Cancelled++
	}
	call.state = kind
	call.err = err
	close(call.done)
	s.mu.Unlock()
	s.c.notifyFree()
	s.trace(Event{Kind: kind, ID: call.id, Name: call.name, QType: call.qtype, Attempt: call.attempt, Peer: call.server})
	if call.onDone != nil {
		call.onDone(call)
	}
	return true
}

func (s *sock) trace(e Event) {
	if s.c.cfg.Trace != nil {
		e.Local = s.local
		s.c.cfg.Trace(e)
	}
}

// handle judges one datagram that arrived on the socket. Only a datagram
// that passes every check of RFC 5452 §9.1 and whose records are whole
// (walkRecords; with cookies on, one that unpacks) completes a call.
func (s *sock) handle(from netip.AddrPort, b []byte) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	h, perr := ParseHead(b)
	if errors.Is(perr, ErrShort) {
		s.reject(Malformed, &h, from, false)
		return
	}
	exact := s.c.cfg.Case0x20
	now := s.c.now()
	s.mu.Lock()
	call := s.inflight[h.ID]
	switch {
	case perr != nil:
		s.rejectLocked(Malformed, &h, from, call != nil)
		return
	case !h.Response():
		s.rejectLocked(NotResponse, &h, from, call != nil)
		return
	case call == nil:
		r := s.recent[h.ID]
		if r.call == nil || now >= r.until {
			s.rejectLocked(WrongID, &h, from, false)
			return
		}
		if why, ok := r.call.matches(from, &h, exact); !ok {
			s.rejectLocked(why, &h, from, false)
			return
		}
		kind := EventLate
		if r.call.state == EventMatched {
			kind = EventDuplicate
			s.st.Duplicate++
		} else {
			s.st.Late++
		}
		s.mu.Unlock()
		s.trace(Event{Kind: kind, ID: h.ID, Name: r.call.name, QType: h.QType, Attempt: r.call.attempt, Peer: from})
		return
	}
	if why, ok := call.matches(from, &h, exact); !ok {
		s.rejectLocked(why, &h, from, true)
		return
	}
	s.mu.Unlock()

	// Header and question match: check the records outside the lock. Only
	// cookies need the message unpacked here; otherwise Call.Reply unpacks
	// it, on the caller's goroutine, if the caller asks.
	raw := append([]byte(nil), b...) // copied: the reader reuses b
	var msg *dns.Msg
	if s.c.cfg.Cookies {
		msg = new(dns.Msg)
		if err := msg.Unpack(raw); err != nil {
			s.mu.Lock()
			s.rejectLocked(Malformed, &h, from, true)
			return
		}
		if why, ok := s.c.checkCookie(msg); !ok {
			s.mu.Lock()
			s.rejectLocked(why, &h, from, true)
			return
		}
	} else if err := walkRecords(raw, HeaderLen+len(h.QName)+4); err != nil {
		s.mu.Lock()
		s.rejectLocked(Malformed, &h, from, true)
		return
	}
	s.mu.Lock()
	if call.state != EventSent { // timed out or cancelled while unpacking
		s.st.Late++
		s.mu.Unlock()
		s.trace(Event{Kind: EventLate, ID: h.ID, Name: call.name, QType: h.QType, Attempt: call.attempt, Peer: from})
		return
	}
	s.inflight[call.id] = nil
	s.rest(call, s.c.now(), &s.lingerQ)
	s.n--
	s.st.Matched++
	call.state = EventMatched
	call.reply, call.raw, call.rtt = msg, raw, time.Since(call.sent)
	close(call.done)
	s.mu.Unlock()
	s.c.notifyFree()
	s.trace(Event{Kind: EventMatched, ID: call.id, Name: call.name, QType: call.qtype, Attempt: call.attempt, Peer: from})
	if call.onDone != nil {
		call.onDone(call)
	}
}

func (s *sock) reject(why Reason, h *Head, from netip.AddrPort, idInFlight bool) {
	s.mu.Lock()
	s.rejectLocked(why, h, from, idInFlight)
}

// rejectLocked counts a rejection and unlocks mu.
func (s *sock) rejectLocked(why Reason, h *Head, from netip.AddrPort, idInFlight bool) {
	s.st.Rejected[why]++
	if idInFlight {
		s.st.IDOnly++
	}
	s.mu.Unlock()
	if s.c.cfg.Trace != nil {
		name := ""
		if h.HasQuestion {
			name = wireName(h.QName)
		}
		s.trace(Event{Kind: EventRejected, ID: h.ID, Name: name, QType: h.QType, Peer: from, Reason: why})
	}
}

// wireName renders a wire-form name as text (for traces only).
func wireName(w []byte) string {
	var out []byte
	for len(w) > 0 && w[0] != 0 && int(w[0]) < len(w) {
		out = append(out, w[1:1+w[0]]...)
		out = append(out, '.')
		w = w[1+w[0]:]
	}
	if len(out) == 0 {
		return "."
	}
	return string(out)
}

func (s *sock) readLoop() {
	defer close(s.done)
	max := s.c.cfg.MaxReply
	if s.br == nil {
		buf := make([]byte, max+1)
		for {
			n, from, err := s.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if s.stop(err) {
					return
				}
				continue
			}
			if n > max {
				n = 0 // truncated: judged malformed
			}
			held := s.holdWrites()
			s.handle(from, buf[:n])
			if held {
				s.releaseWrites()
			}
		}
	}
	msgs := make([]ipv4.Message, s.c.cfg.ReadBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, max+1)}
	}
	for {
		k, err := s.br.ReadBatch(msgs, 0)
		if err != nil {
			if s.stop(err) {
				return
			}
			continue
		}
		held := s.holdWrites()
		for i := range k {
			ua, _ := msgs[i].Addr.(*net.UDPAddr)
			var from netip.AddrPort
			if ua != nil {
				from = ua.AddrPort()
			}
			n := msgs[i].N
			if n > max {
				n = 0
			}
			s.handle(from, msgs[i].Buffers[0][:n])
		}
		if held {
			s.releaseWrites()
		}
	}
}

// stop reports whether a read error ends the reader: the socket was closed,
// or it keeps failing.
func (s *sock) stop(err error) bool {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || errors.Is(err, net.ErrClosed) {
		return true
	}
	// Transient errors (an ICMP error queued on the socket) are skipped,
	// but a socket that fails persistently must not spin.
	time.Sleep(time.Millisecond)
	return false
}

func (s *sock) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	now := s.c.now()
	var ended []*Call // SendFunc's calls, whose done is called once unlocked
	for id, call := range s.inflight {
		if call == nil {
			continue
		}
		s.inflight[id] = nil
		s.recent[id] = rest{call: call, until: now + int64(s.c.cfg.Quarantine)} // never reused: closed
		s.n--
		s.st.Lost++
		s.st.Cancelled++
		call.state = EventCancelled
		call.err = ErrClosed
		close(call.done)
		if call.onDone != nil {
			ended = append(ended, call)
		}
	}
	s.mu.Unlock()
	for _, call := range ended {
		call.onDone(call)
	}
	s.conn.Close()
	<-s.done
}
