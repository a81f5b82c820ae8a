package udpdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/miekg/dns"
)

// ErrTCP: the query retried over TCP failed (connection, write, read, or
// an answer that does not match the query).
var ErrTCP = errors.New("udpdns: tcp fallback")

// exchangeTCP sends m over a TCP connection of its own to the server (the
// UDP answer was truncated), reads one answer, and closes the connection:
// the client closes first, so its side keeps TIME-WAIT and the server's
// closes cleanly. The answer must echo the ID and question and, with
// Config.Cookies, the client's cookie. The whole exchange, connection
// included, has Config.Timeout.
func (c *Client) exchangeTCP(ctx context.Context, m *dns.Msg, rnd io.Reader) (*dns.Msg, error) {
	call, err := c.prepare(m, 0, rnd)
	if err != nil {
		return nil, c.queryErr(m, 1, err)
	}
	var id [2]byte
	if err := c.fill(rnd, id[:]); err != nil {
		return nil, c.queryErr(m, 1, err)
	}
	copy(call.packed, id[:])
	call.id = binary.BigEndian.Uint16(id[:])
	r, err := c.tcpRoundTrip(ctx, call)
	if err != nil {
		return nil, c.queryErr(m, 1, fmt.Errorf("%w: %w", ErrTCP, err))
	}
	if len(r.Question) == 1 {
		r.Question[0].Name = m.Question[0].Name
	}
	return r, nil
}

func (c *Client) tcpRoundTrip(ctx context.Context, call *Call) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: c.cfg.Local.AsSlice()}}
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Server.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	local := conn.LocalAddr().(*net.TCPAddr).AddrPort()
	// One write: the two-byte length and the query (RFC 1035 §4.2.2).
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(call.packed)), uint16(len(call.packed)))
	if _, err := conn.Write(append(out, call.packed...)); err != nil {
		return nil, err
	}
	c.tcpSent.Add(1)
	c.traceTCP(Event{Kind: EventTCPSent, ID: call.id, Name: call.name, QType: call.qtype, Local: local, Peer: c.cfg.Server})
	var lb [2]byte
	if _, err := io.ReadFull(conn, lb[:]); err != nil {
		return nil, fmt.Errorf("reading the answer's length: %w", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(lb[:]))
	if _, err := io.ReadFull(conn, b); err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	h, err := ParseHead(b)
	if err != nil {
		return nil, err
	}
	if h.ID != call.id || !h.Response() {
		return nil, fmt.Errorf("answer id=%#04x QR=%v to query id=%#04x", h.ID, h.Response(), call.id)
	}
	if why, ok := call.matches(c.cfg.Server, &h, c.cfg.Case0x20); !ok {
		return nil, fmt.Errorf("answer rejected: %v", why)
	}
	r := new(dns.Msg)
	if err := r.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if why, ok := c.checkCookie(r); !ok {
		return nil, fmt.Errorf("answer rejected: %v", why)
	}
	c.tcpAnswered.Add(1)
	c.traceTCP(Event{Kind: EventTCPAnswered, ID: call.id, Name: call.name, QType: call.qtype, Local: local, Peer: c.cfg.Server})
	return r, nil
}

func (c *Client) traceTCP(e Event) {
	if c.cfg.Trace != nil {
		c.cfg.Trace(e)
	}
}
